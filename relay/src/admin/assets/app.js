// The admin dashboard: reads /admin/api/ and draws each page. Data is only
// ever written with textContent (never as HTML); charts are plain SVG.
const $view = document.getElementById('view');
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const SVG = 'http://www.w3.org/2000/svg';

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'on') for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

async function api(path) {
  const res = await fetch(path, { credentials: 'same-origin', headers: { accept: 'application/json' } });
  if (res.status === 401) {
    location.href = '/admin/login';
    throw new Error('signed out');
  }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
  return body;
}

// Numbers. Bytes are shown exactly (they must match what nodes see), with a
// short form beside them; token amounts are base units with 18 decimals,
// shown in full with BigInt, never through floating point.
const int = (n) => Number(n).toLocaleString('en-US');
function short(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
const bytes = (n) => (Number(n) < 1000 ? `${int(n)} B` : `${int(n)} B (${short(n)})`);
function tokens(base) {
  const v = BigInt(base);
  const one = 10n ** 18n;
  const frac = (v % one).toString().padStart(18, '0').replace(/0+$/, '');
  return `${(v / one).toLocaleString('en-US')}${frac ? `.${frac}` : ''}`;
}
const pct = (r) => (r === null || r === undefined ? '–' : `${(r * 100).toFixed(1)} %`);
const when = (ms) => (ms != null ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : '–');

function chart(hours, label) {
  const w = 720;
  const h = 180;
  const pad = 22;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const max = Math.max(1, ...hours.map((x) => x.bytes));
  const bw = (w - pad) / hours.length;
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  add('line', { x1: pad, y1: h - pad, x2: w, y2: h - pad });
  add('text', { x: 0, y: 10 }, short(max));
  hours.forEach((x, i) => {
    const bh = Math.round((x.bytes / max) * (h - pad - 14));
    const r = add('rect', { x: pad + i * bw + 1, y: h - pad - bh, width: Math.max(1, bw - 2), height: bh });
    const t = document.createElementNS(SVG, 'title');
    t.textContent = `${when(x.start_ms).slice(11, 16)} UTC: ${bytes(x.bytes)}, ${x.jobs_ok} ok, ${x.jobs_failed} failed`;
    r.append(t);
    if (i % 6 === 0) add('text', { x: pad + i * bw, y: h - 6 }, when(x.start_ms).slice(11, 16));
  });
  return svg;
}

function card(label, value, sub, id) {
  return el('div', { class: 'card', 'data-card': id },
    el('div', { class: 'label', text: label }),
    el('div', { class: 'value', text: value }),
    sub ? el('div', { class: 'sub', text: sub }) : null);
}

function table(columns, rows) {
  return el('table', {},
    el('thead', {}, el('tr', {}, ...columns.map((c) => el('th', { class: c.num ? 'num' : undefined, text: c.label })))),
    el('tbody', {}, ...rows));
}

async function overview() {
  const o = await api('/admin/api/overview');
  $view.replaceChildren(
    el('h1', { text: 'Overview' }),
    el('div', { class: 'cards' },
      card('Nodes online', int(o.nodes_online), `${int(o.nodes_known)} known`, 'nodes'),
      card('Requests / s', String(o.requests_per_second), 'over the last minute', 'rps'),
      card('Success rate', pct(o.success_rate_24h), `${int(o.jobs_ok_24h)} ok, ${int(o.jobs_failed_24h)} failed, 24 h`, 'success'),
      card('Delivered, 24 h', short(o.bytes_24h), `${int(o.bytes_24h)} B`, 'bytes'),
      card('Epoch', `#${o.epoch.index}`, `ends ${when(o.epoch.end_ms)}`, 'epoch'),
      o.cluster
        ? card('Cluster', o.cluster.connected ? `${int(o.cluster.relays)} relays` : 'NATS lost',
          o.cluster.connected ? 'connected to NATS' : 'serving this relay\'s own nodes; reconnecting', 'cluster')
        : null),
    el('div', { class: 'panel' }, el('h2', { text: 'Delivered bytes per hour, last 24 h (UTC)' }), chart(o.hours, 'bytes per hour')),
    el('h2', { text: 'Top customers, last 24 h' }),
    o.top_customers.length === 0
      ? el('p', { class: 'muted', text: 'No requests in the last 24 hours.' })
      : table([{ label: 'Customer' }, { label: 'Requests', num: true }, { label: 'Delivered', num: true }],
        o.top_customers.map((c) => el('tr', {},
          el('td', { text: `${c.name} (#${c.id})` }),
          el('td', { class: 'num', text: int(c.requests) }),
          el('td', { class: 'num', text: bytes(c.bytes) })))),
  );
}

const NODE_COLUMNS = [
  { key: 'node_id', label: 'Node' },
  { key: 'payout_address', label: 'Payout address' },
  { key: 'client_kind', label: 'Kind' },
  { key: 'country', label: 'Country' },
  { key: 'last_seen', label: 'Status' },
  { key: 'bytes_epoch', label: 'Bytes, epoch', num: true },
  { key: 'bytes_all', label: 'Bytes, all time', num: true },
  { key: 'jobs_ok', label: 'Jobs ok', num: true },
  { key: 'jobs_failed', label: 'Failed', num: true },
  { key: 'success_rate', label: 'Success', num: true },
  { key: 'earnings_epoch', label: 'Earned, epoch', num: true },
  { key: 'earnings_all', label: 'Earned, all time', num: true },
];

function nodeCells(n) {
  const status = n.online
    ? el('span', { class: 'online', text: 'online' })
    : el('span', { class: 'offline', text: `seen ${when(n.last_seen_ms)}` });
  const cell = (key, content, value, num = true) =>
    el('td', { class: num ? 'num' : undefined, 'data-col': key, 'data-value': value }, content);
  return [
    cell('node_id', el('a', { class: 'mono', href: `/admin/nodes/${n.node_id}`, text: n.node_id }), n.node_id, false),
    cell('payout_address', el('span', { class: 'mono', text: n.payout_address ?? '–' }), n.payout_address ?? '', false),
    cell('client_kind', n.client_kind, n.client_kind, false),
    cell('country', n.country ?? '–', n.country ?? '', false),
    cell('last_seen', status, n.online ? 'online' : 'offline', false),
    cell('bytes_epoch', bytes(n.bytes_epoch), n.bytes_epoch),
    cell('bytes_all', bytes(n.bytes_all), n.bytes_all),
    cell('jobs_ok', int(n.jobs_ok), n.jobs_ok),
    cell('jobs_failed', int(n.jobs_failed), n.jobs_failed),
    cell('success_rate', pct(n.success_rate), n.success_rate ?? ''),
    cell('earnings_epoch', n.earning ? tokens(n.earnings_epoch) : 'unpaid (shared IP)', n.earnings_epoch),
    cell('earnings_all', tokens(n.earnings_all), n.earnings_all),
  ];
}

const nodesState = { sort: 'bytes_epoch', order: 'desc', q: '', kind: 'all', status: 'all', page: 1, per_page: 50 };

function nodesQuery(extra = {}) {
  const p = new URLSearchParams({ ...nodesState, ...extra });
  return p.toString();
}

async function nodes() {
  const page = await api(`/admin/api/nodes?${nodesQuery()}`);
  const pages = Math.max(1, Math.ceil(page.total / page.per_page));
  const rerender = () => nodes().catch(showError);
  const search = el('input', { type: 'search', id: 'filter-q', placeholder: 'Node id, address or country', value: nodesState.q });
  search.addEventListener('change', () => { nodesState.q = search.value; nodesState.page = 1; rerender(); });
  const select = (id, key, options) => {
    const s = el('select', { id }, ...options.map(([v, label]) => el('option', { value: v, selected: nodesState[key] === v, text: label })));
    s.addEventListener('change', () => { nodesState[key] = s.value; nodesState.page = 1; rerender(); });
    return s;
  };
  const head = el('tr', {}, ...NODE_COLUMNS.map((c) => {
    const sorted = nodesState.sort === c.key;
    const b = el('button', {
      type: 'button',
      'data-sort': c.key,
      'aria-sort': sorted ? (nodesState.order === 'asc' ? 'ascending' : 'descending') : undefined,
      text: c.label,
    });
    b.addEventListener('click', () => {
      nodesState.order = sorted && nodesState.order === 'desc' ? 'asc' : 'desc';
      nodesState.sort = c.key;
      rerender();
    });
    return el('th', { class: c.num ? 'num' : undefined }, b);
  }));
  const rows = page.nodes.map((n) => el('tr', { 'data-node': n.node_id }, ...nodeCells(n)));
  const go = (p) => { nodesState.page = p; rerender(); };
  $view.replaceChildren(
    el('h1', { text: 'Nodes' }),
    el('div', { class: 'filters' },
      search,
      select('filter-kind', 'kind', [['all', 'Any kind'], ['extension', 'Extension'], ['native', 'Native']]),
      select('filter-status', 'status', [['all', 'Online or not'], ['online', 'Online'], ['offline', 'Offline']]),
      el('span', { class: 'muted', id: 'total', text: `${int(page.total)} node(s); epoch #${page.epoch.index}` }),
      el('a', { class: 'button', id: 'csv', href: `/admin/api/nodes.csv?${nodesQuery({ page: 1 })}`, text: 'Export CSV' })),
    el('div', { class: 'panel' }, el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows))),
    el('div', { class: 'pager' },
      el('button', { type: 'button', disabled: page.page <= 1, on: { click: () => go(page.page - 1) }, text: '← Previous' }),
      el('span', { text: `Page ${page.page} of ${pages}` }),
      el('button', { type: 'button', disabled: page.page >= pages, on: { click: () => go(page.page + 1) }, text: 'Next →' })),
  );
}

async function node(id) {
  const n = await api(`/admin/api/nodes/${encodeURIComponent(id)}`);
  const fact = (k, v, key) => [el('dt', { text: k }), el('dd', { 'data-fact': key }, v)];
  $view.replaceChildren(
    el('h1', {}, 'Node ', el('span', { class: 'mono', text: n.node_id })),
    el('div', { class: 'panel' }, el('dl', { class: 'facts' },
      ...fact('Status', n.online ? 'online' : `offline, last seen ${when(n.last_seen_ms)}`, 'status'),
      ...fact('Kind', `${n.client_kind} (${n.agent})`, 'kind'),
      ...fact('Country', n.country ?? '–', 'country'),
      ...fact('Payout address', n.payout_address ?? 'none: its bytes are not paid', 'payout'),
      ...fact('Earning', n.earning ? 'yes' : 'no: another node on its IP address earns; this one serves unpaid', 'earning'),
      ...fact(`Delivered, epoch #${n.epoch.index}`, bytes(n.bytes_epoch), 'bytes_epoch'),
      ...fact('Delivered, all time', `${bytes(n.bytes_all)}: ${int(n.bytes_up)} up, ${int(n.bytes_down)} down`, 'bytes_all'),
      ...fact('Jobs', `${int(n.jobs_ok)} ok, ${int(n.jobs_failed)} failed (${pct(n.success_rate)})`, 'jobs'),
      ...fact('Earned this epoch', tokens(n.earnings_epoch), 'earnings_epoch'),
      ...fact('Earned all time', tokens(n.earnings_all), 'earnings_all'),
      ...fact('First seen', when(n.first_seen_ms), 'first_seen'))),
    el('div', { class: 'panel' }, el('h2', { text: 'Delivered bytes per hour, last 48 h (UTC)' }), chart(n.hours, 'bytes per hour')),
    el('h2', { text: 'Closed epochs' }),
    n.epochs.length === 0
      ? el('p', { class: 'muted', text: 'No closed epoch has paid this node yet.' })
      : table([{ label: 'Epoch' }, { label: 'Bytes', num: true }, { label: 'Amount', num: true }, { label: 'Paid to' }],
        n.epochs.map((e) => el('tr', {},
          el('td', { text: `#${e.epoch}` }),
          el('td', { class: 'num', text: bytes(e.bytes) }),
          el('td', { class: 'num', text: tokens(e.amount) }),
          el('td', { class: 'mono', text: e.address })))),
  );
}

async function epochs() {
  const d = await api('/admin/api/epochs');
  $view.replaceChildren(
    el('h1', { text: 'Epochs' }),
    el('p', { class: 'muted', text: `Epoch #${d.current.index} is in progress until ${when(d.current.end_ms)}; ${tokens(d.current.reward_per_gib)} tokens per GiB delivered.` }),
    d.epochs.length === 0
      ? el('p', { class: 'muted', text: 'No epoch has closed yet.' })
      : table([{ label: 'Epoch' }, { label: 'Period (UTC)' }, { label: 'Paid bytes', num: true },
        { label: 'Unassigned bytes', num: true }, { label: 'Total', num: true }, { label: 'Payouts', num: true },
        { label: 'Merkle root' }, { label: '' }],
      d.epochs.map((e) => el('tr', { 'data-epoch': e.epoch },
        el('td', { text: `#${e.epoch}` }),
        el('td', { text: `${when(e.start_ms)} – ${when(e.end_ms)}` }),
        el('td', { class: 'num', text: bytes(e.total_bytes) }),
        el('td', { class: 'num', text: bytes(e.unassigned_bytes) }),
        el('td', { class: 'num', text: tokens(e.total_amount) }),
        el('td', { class: 'num', text: int(e.payouts) }),
        el('td', { class: 'mono', text: e.merkle_root ?? '–' }),
        el('td', {}, el('a', { href: `/admin/api/epochs/${e.epoch}/nodes.csv`, text: 'CSV' }))))),
  );
}

function showError(e) {
  $view.replaceChildren(el('p', { class: 'bad', role: 'alert', text: `Could not load this page: ${e.message}` }));
}

document.getElementById('logout').addEventListener('click', async () => {
  await fetch('/admin/logout', { method: 'POST', headers: { 'x-csrf-token': csrf }, credentials: 'same-origin' });
  location.href = '/admin/login';
});

const path = location.pathname.replace(/\/+$/, '');
let render;
let nav = 'overview';
if (path === '/admin/nodes') { render = nodes; nav = 'nodes'; }
else if (path.startsWith('/admin/nodes/')) { render = () => node(path.slice('/admin/nodes/'.length)); nav = 'nodes'; }
else if (path === '/admin/epochs') { render = epochs; nav = 'epochs'; }
else render = overview;
for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === nav);
render().then(() => { document.body.dataset.ready = '1'; }, showError);
if (render === overview) setInterval(() => overview().catch(showError), 5000);
