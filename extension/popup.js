import { ask, bytes, exactBytes, reward, tokens } from './format.js';
import { loadLanguage, localize, t } from './i18n.js';

const requests = (n) => (n === 1 ? t('requests_one') : t('requests_many', n));

// The status line: the state, why the node pauses, or why it cannot reach
// the relay (that detail comes from the core, in English).
function statusWords(s) {
  switch (s.state) {
    case 'paused': return t(`pause_${s.pause ?? 'other'}`);
    case 'unreachable': return t('state_unreachable', s.problem ?? '');
    default: return t(`state_${s.state}`);
  }
}

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
  status.textContent = statusWords(s);
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
  $('payout').textContent = s.settings.payout_address ?? t('payout_none');
  const v = s.verified;
  $('verified').textContent = s.receipt_problems > 0
    ? t('verified_problems', bytes(v.up + v.down), s.receipt_problems)
    : t('verified_line', bytes(v.up + v.down), requests(v.requests));
  renderEarnings(s);
  drawChart(s.chart);
}

// What the status line leaves out: when a schedule lets sharing start
// again, a speed limit in force, and this month's data against its cap.
function why(s) {
  const parts = [];
  if (s.next_start_ms) {
    const at = new Date(s.next_start_ms).toLocaleString(document.documentElement.lang, { weekday: 'long', hour: '2-digit', minute: '2-digit' });
    parts.push(t('why_next_start', at));
  }
  const { max_mbps_down: down, max_mbps_up: up, monthly_cap_gb: cap } = s.settings;
  if (down > 0 || up > 0) {
    const d = down > 0 ? t('speed_down', down) : t('speed_no_down');
    const u = up > 0 ? t('speed_up', up) : t('speed_no_up');
    parts.push(t('why_speed', d, u));
  }
  if (cap > 0) {
    parts.push(t('why_month', s.month_start, bytes(s.this_month.up + s.this_month.down), cap));
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
  const terms = s.terms;
  const epoch = terms ? Math.floor(s.now_ms / terms.epoch_ms) : null;
  const inEpoch = s.verified_epochs.find(([e]) => e === epoch)?.[1] ?? { up: 0, down: 0 };
  const rows = {
    today: s.verified_today.up + s.verified_today.down,
    epoch: inEpoch.up + inEpoch.down,
    all: s.verified.up + s.verified.down,
  };
  for (const [k, v] of Object.entries(rows)) setCell(`earn-${k}-bytes`, exactBytes(v), v);
  $('earn-epoch-label').title = epoch === null ? '' : t('epoch_title', epoch);
  const paid = Boolean(s.settings.payout_address);
  if (!terms || !paid || !terms.earning) {
    for (const k of Object.keys(rows)) setCell(`earn-${k}-tokens`, '–', '');
    $('earn-note').textContent = !paid
      ? t('earn_no_payout')
      : !terms
        ? t('earn_waiting')
        : t('earn_not_earning');
    $('claimable').textContent = '';
    return;
  }
  const all = s.verified_epochs.reduce((sum, [, c]) => sum + reward(c.up + c.down, terms.reward_per_gib), 0n);
  const amounts = { today: reward(rows.today, terms.reward_per_gib), epoch: reward(rows.epoch, terms.reward_per_gib), all };
  for (const [k, v] of Object.entries(amounts)) setCell(`earn-${k}-tokens`, tokens(v), v);
  $('earn-note').textContent = t('earn_rate', tokens(terms.reward_per_gib), epoch, new Date((epoch + 1) * terms.epoch_ms).toLocaleString(document.documentElement.lang));
  const claim = $('claimable');
  claim.dataset.value = terms.claimable;
  claim.textContent = terms.last_closed_epoch === 0
    ? t('claim_none')
    : BigInt(terms.claimable) > 0n
      ? t('claim_some', terms.last_closed_epoch, tokens(terms.claimable))
      : t('claim_nothing', terms.last_closed_epoch);
}

async function refresh() {
  try {
    render(await ask({ type: 'status' }));
  } catch (e) {
    $('status').textContent = t('background_silent', e.message);
  }
}

$('sharing').addEventListener('change', async (e) => {
  render(await ask({ type: 'setSharing', on: e.target.checked }));
});
$('agree').addEventListener('click', async () => {
  render(await ask({ type: 'setSharing', on: true }));
});

loadLanguage().then(() => {
  localize();
  refresh();
  setInterval(refresh, 1000);
});
