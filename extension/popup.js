import { ask, bytes, exactBytes, requests, reward, tokens } from './format.js';

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
  $('why').textContent = why(s);
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
  renderEarnings(s);
  drawChart(s.chart);
}

// What the status line leaves out: when a schedule lets sharing start
// again, a speed limit in force, and this month's data against its cap.
function why(s) {
  const parts = [];
  if (s.next_start_ms) {
    const at = new Date(s.next_start_ms).toLocaleString(undefined, { weekday: 'long', hour: '2-digit', minute: '2-digit' });
    parts.push(`Sharing starts again ${at}.`);
  }
  const { max_mbps_down: down, max_mbps_up: up, monthly_cap_gb: cap } = s.settings;
  if (down > 0 || up > 0) {
    const d = down > 0 ? `${down} Mbit/s down` : 'no limit down';
    const u = up > 0 ? `${up} Mbit/s up` : 'no limit up';
    parts.push(`Speed limit: ${d}, ${u}.`);
  }
  if (cap > 0) {
    parts.push(`This month (since ${s.month_start}): ${bytes(s.this_month.up + s.this_month.down)} of ${cap} GB.`);
  }
  return parts.join(' ');
}

function setCell(id, text, value) {
  const cell = $(id);
  cell.textContent = text;
  cell.dataset.value = String(value);
}

// Earnings confirmed by the relay's signed receipts: today, the epoch in
// progress and all time, in bytes and in tokens at the relay's rate. All
// time adds each epoch's rounded-down amount, as the relay pays them.
function renderEarnings(s) {
  const t = s.terms;
  const epoch = t ? Math.floor(s.now_ms / t.epoch_ms) : null;
  const inEpoch = s.verified_epochs.find(([e]) => e === epoch)?.[1] ?? { up: 0, down: 0 };
  const rows = {
    today: s.verified_today.up + s.verified_today.down,
    epoch: inEpoch.up + inEpoch.down,
    all: s.verified.up + s.verified.down,
  };
  for (const [k, v] of Object.entries(rows)) setCell(`earn-${k}-bytes`, exactBytes(v), v);
  $('earn-epoch-label').textContent = 'This epoch';
  $('earn-epoch-label').title = epoch === null ? '' : `Epoch #${epoch}`;
  const paid = Boolean(s.settings.payout_address);
  if (!t || !paid || !t.earning) {
    for (const k of Object.keys(rows)) setCell(`earn-${k}-tokens`, '–', '');
    $('earn-note').textContent = !paid
      ? 'Set a payout address in Options: data shared without one earns nothing.'
      : !t
        ? 'Waiting for the relay to send its reward rate.'
        : 'Another node on your internet connection (same IP address) already earns: this one shares without pay. Switch one of them off, or keep both for the network.';
    $('claimable').textContent = '';
    return;
  }
  const all = s.verified_epochs.reduce((sum, [, c]) => sum + reward(c.up + c.down, t.reward_per_gib), 0n);
  const amounts = { today: reward(rows.today, t.reward_per_gib), epoch: reward(rows.epoch, t.reward_per_gib), all };
  for (const [k, v] of Object.entries(amounts)) setCell(`earn-${k}-tokens`, tokens(v), v);
  $('earn-note').textContent = `Tokens at ${tokens(t.reward_per_gib)} per GiB delivered; epoch #${epoch} ends ${new Date((epoch + 1) * t.epoch_ms).toLocaleString()}.`;
  const claim = $('claimable');
  claim.dataset.value = t.claimable;
  claim.textContent = t.last_closed_epoch === 0
    ? 'No epoch has closed yet.'
    : BigInt(t.claimable) > 0n
      ? `Epoch #${t.last_closed_epoch} closed: ${tokens(t.claimable)} tokens to claim.`
      : `Epoch #${t.last_closed_epoch} closed: nothing to claim for this address.`;
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
