import { ask, bytes, requests } from './format.js';

const $ = (id) => document.getElementById(id);

const SVG = 'http://www.w3.org/2000/svg';

function drawChart(values) {
  const svg = $('chart');
  const max = Math.max(1, ...values);
  const w = 240 / values.length;
  const bars = values.map((v, i) => {
    const h = Math.round((v / max) * 46);
    const rect = document.createElementNS(SVG, 'rect');
    for (const [k, val] of Object.entries({ x: i * w + 1, y: 48 - h, width: w - 2, height: h })) {
      rect.setAttribute(k, String(val));
    }
    const title = document.createElementNS(SVG, 'title');
    title.textContent = bytes(v);
    rect.append(title);
    return rect;
  });
  svg.replaceChildren(...bars);
}

function render(s) {
  const status = $('status');
  status.textContent = s.words;
  status.className = `status ${s.state}`;
  status.dataset.state = s.state;
  $('sharing').checked = s.settings.sharing && s.settings.consent;
  $('consent').hidden = s.state !== 'needs_consent';
  $('numbers').hidden = s.state === 'needs_consent';
  $('today').textContent = bytes(s.today.up + s.today.down);
  $('today-req').textContent = requests(s.today.requests);
  $('total').textContent = bytes(s.total.up + s.total.down);
  $('total-req').textContent = requests(s.total.requests);
  $('node-id').textContent = s.node_id;
  $('payout').textContent = s.settings.payout_address ?? 'No payout address yet: set one in Options to earn rewards.';
  const v = s.verified;
  $('verified').textContent = s.receipt_problems > 0
    ? `Verified by the relay's signed receipts: ${bytes(v.up + v.down)}. ${s.receipt_problems} receipt(s) did not match: see the node's log.`
    : `Verified by the relay's signed receipts: ${bytes(v.up + v.down)} (${requests(v.requests)}).`;
  drawChart(s.chart);
}

async function refresh() {
  try {
    render(await ask({ type: 'status' }));
  } catch (e) {
    $('status').textContent = `The extension's background is not answering (${e.message}). Try reopening this window.`;
  }
}

$('sharing').addEventListener('change', async (e) => {
  render(await ask({ type: 'setSharing', on: e.target.checked }));
});
$('agree').addEventListener('click', async () => {
  render(await ask({ type: 'setSharing', on: true }));
});

refresh();
setInterval(refresh, 1000);
