// The native node's side of the safety promises, with the real binaries:
// a name the relay sees as public but the node's resolver sends to loopback
// (the node runs with a private /etc/hosts, in a mount namespace of its own),
// and the owner's own public address (the node runs in a network namespace
// this test creates, whose address is public by the policy's rules). Needs
// root (namespaces, ports 80 and 443), as CI has.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'target', 'debug', name);
const REBIND = 'rebind.spareband.test';
const children = [];
const cleanups = [];
let dir;

function start(cmd, args, env = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, RUST_LOG: 'info', ...env } });
  child.output = '';
  child.stdout.on('data', (d) => { child.output += d; });
  child.stderr.on('data', (d) => { child.output += d; });
  children.push(child);
  return child;
}

async function waitFor(what, check, ms = 20000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => false);
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function freePort(host = '127.0.0.1') {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, host, r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** A server that records every request and answers with a marker. */
async function canary(host, port = 0) {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.headers.host}${req.url}`);
    if (req.url.startsWith('/redirect')) {
      const u = new URL(req.url, 'http://x');
      res.statusCode = Number(u.searchParams.get('status') ?? 302);
      res.setHeader('location', u.searchParams.get('to'));
      return res.end();
    }
    return res.end('CANARY PAGE');
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  cleanups.push(() => server.close());
  return { seen, port: server.address().port };
}

/** POST /v1/fetch; over https, the relay's generated certificate is taken
 * as it is. */
function fetchJson(base, key, doc) {
  const body = JSON.stringify(doc);
  const mod = base.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(`${base}/v1/fetch`, {
      method: 'POST', headers: { authorization: `Bearer ${key}` }, rejectUnauthorized: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function healthNodes(base) {
  return fetchJsonGet(`${base}/healthz`).then((j) => j.nodes);
}

function fetchJsonGet(url) {
  const mod = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    mod.get(url, { rejectUnauthorized: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
    }).on('error', reject);
  });
}

/** The relay binary; plain HTTP on loopback, TLS (its own generated
 * certificate) elsewhere, as the relay requires. */
async function startRelay(name, listen, allow, extra = '') {
  const data = join(dir, name);
  const key = execFileSync(bin('spareband-relay'), ['keys', 'create', '--name', name, '--data-dir', data]).toString().trim();
  const hosts = join(dir, `${name}-hosts`);
  // For the relay, the rebinding name is public (an address nothing here
  // ever connects to).
  writeFileSync(hosts, `93.184.215.14 ${REBIND}\n`);
  const config = join(dir, `${name}.toml`);
  // No per-node site cap unless a test sets one.
  const cap = extra.includes('node_site_per_minute') ? '' : 'node_site_per_minute = 0\n';
  writeFileSync(config, `hosts_file = ${JSON.stringify(hosts)}\n${cap}${extra}`);
  const loopback = listen.startsWith('127.');
  const relay = start(bin('spareband-relay'), ['serve', ...(loopback ? ['--insecure-http'] : []), '--listen', listen,
    '--data-dir', data, '--config', config],
  { SPAREBAND_ALLOW_TARGETS: allow.join(',') });
  await waitFor('relay listening', async () => /relay listening/.test(relay.output));
  return { relay, key, base: `${loopback ? 'http' : 'https'}://${listen}` };
}

async function nodesOnline(base, n) {
  await waitFor(`${n} node(s) online`, async () => (await healthNodes(base)) === n);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'spareband-node-safety-'));
});

after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const f of cleanups.reverse()) {
    try { f(); } catch { /* best effort */ }
  }
  rmSync(dir, { recursive: true, force: true });
});

// Checked once: with the resolver's address check removed
// (node/src/http.rs, PolicyResolver) the node fetched the canary's page on
// 127.0.0.2:80 for `http://REBIND/hello` and for the redirects to it.
test('a name the relay sees as public but the node resolves to loopback is never fetched, directly or by redirect', async () => {
  // The node's resolver answers 127.0.0.2 for the name: canaries on the
  // allowed ports 80 and 443 there, and on an odd port.
  const c80 = await canary('127.0.0.2', 80);
  const c443 = await canary('127.0.0.2', 443);
  const odd = await canary('127.0.0.2');
  const target = await canary('127.0.0.1');
  const allowTarget = `127.0.0.1:${target.port}`;
  const port = await freePort();
  const { key, base } = await startRelay('rebind', `127.0.0.1:${port}`, [allowTarget, `${REBIND}:${odd.port}`]);
  const hosts = join(dir, 'node-hosts');
  writeFileSync(hosts, `127.0.0.1 localhost\n127.0.0.2 ${REBIND}\n`);
  // A mount namespace of its own: the node alone sees this /etc/hosts.
  const script = 'mount --bind "$0" /etc/hosts && exec "$@"';
  start('unshare', ['--mount', 'sh', '-c', script, hosts, bin('spareband-node'), '--relay', base,
    '--key-file', join(dir, 'rebind-node.key'), '--allow-target', allowTarget]);
  await nodesOnline(base, 1);

  const direct = [`https://${REBIND}/hello`, `http://${REBIND}/hello`, `http://${REBIND}:${odd.port}/hello`];
  const hops = [`http://${REBIND}/hello`, `https://${REBIND}/hello`, `http://${REBIND}:${odd.port}/hello`,
    `http://localhost.:${odd.port}/hello`];
  const asks = [
    ...direct.map((url) => ({ url })),
    ...hops.flatMap((to) => [
      { url: `http://${allowTarget}/redirect?status=302&to=${encodeURIComponent(to)}` },
      { url: `http://${allowTarget}/redirect?status=307&to=${encodeURIComponent(to)}`, method: 'POST',
        body: Buffer.from('a body 307 repeats').toString('base64') },
    ]),
  ];
  for (const ask of asks) {
    const r = await fetchJson(base, key, ask);
    assert.doesNotMatch(Buffer.from(JSON.parse(r.text).body ?? '', 'base64').toString(), /CANARY/);
    if (ask.method === 'POST' && r.status === 200) {
      // A streamed body cannot be sent twice: the native node hands a 307
      // back to the customer instead of following it.
      assert.equal(JSON.parse(r.text).status, 307, r.text);
      continue;
    }
    assert.ok(r.status >= 400, `${JSON.stringify(ask)} answered ${r.status}: ${r.text}`);
    assert.ok(JSON.parse(r.text).error.code, r.text);
  }
  assert.deepEqual([...c80.seen, ...c443.seen, ...odd.seen], []);
  // The redirects themselves were asked of the allowed target.
  assert.ok(target.seen.length >= hops.length);
});

function ip(...args) {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

// Checked once: with the owner-address condition removed from the relay's
// pick (relay/src/nodes/registry.rs, `eligible`) and the node's interface
// check (node/src/guard.rs) the job went to the node in the namespace, which
// still refused it by the address its relay reported (400 instead of 503):
// three layers, the relay's first.
test("a node never fetches its owner's own public address; another node may", async () => {
  // A network namespace standing for one home: its node and a web server on
  // the home's public address (public by the policy's rules; the address
  // exists only on this veth pair, nothing leaves the machine).
  const tag = String(process.pid % 100000);
  const ns = `sbown${tag}`;
  const [hostIf, nsIf] = [`sbh${tag}`, `sbn${tag}`];
  const [hostIp, homeIp] = ['5.5.5.1', '5.5.5.2'];
  ip('netns', 'add', ns);
  cleanups.push(() => ip('netns', 'del', ns));
  ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
  cleanups.push(() => ip('link', 'del', hostIf));
  ip('link', 'set', nsIf, 'netns', ns);
  ip('addr', 'add', `${hostIp}/30`, 'dev', hostIf);
  ip('link', 'set', hostIf, 'up');
  ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${homeIp}/30`, 'dev', nsIf);
  ip('netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up');
  ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');

  // The home's web server (its router's page, say), inside the namespace.
  const server = start('ip', ['netns', 'exec', ns, process.execPath, '-e',
    `require('http').createServer((q, s) => s.end('THE OWNER ROUTER PAGE')).listen(80, '${homeIp}', () => console.log('up'))`]);
  await waitFor('the home server', async () => /up/.test(server.output));

  const port = await freePort(hostIp);
  const { key, base } = await startRelay('owner', `${hostIp}:${port}`, []);
  // The home's own node, connecting from the home's address.
  start('ip', ['netns', 'exec', ns, bin('spareband-node'), '--relay', base, '--insecure-tls',
    '--key-file', join(dir, 'home-node.key')]);
  await nodesOnline(base, 1);
  const own = await fetchJson(base, key, { url: `http://${homeIp}/` });
  assert.equal(own.status, 503, own.text);
  assert.equal(JSON.parse(own.text).error.code, 'no_node_available', own.text);
  assert.doesNotMatch(own.text, /ROUTER PAGE/);

  // A node elsewhere (on this machine's loopback) reaches the same address.
  start(bin('spareband-node'), ['--relay', base, '--insecure-tls', '--key-file', join(dir, 'other-node.key')]);
  await nodesOnline(base, 2);
  const other = await fetchJson(base, key, { url: `http://${homeIp}/` });
  assert.equal(other.status, 200, other.text);
  assert.equal(Buffer.from(JSON.parse(other.text).body, 'base64').toString(), 'THE OWNER ROUTER PAGE');
});

// Checked once: with the hop check removed from the native node
// (node/src/job.rs, `check_hop` on the redirect), the redirect into the
// denied name was followed and answered 200.
test("the operator's deny list and the per-site cap hold at every redirect hop, not only the first URL", async () => {
  const target = await canary('127.0.0.1');
  const byIp = `127.0.0.1:${target.port}`;
  const byName = `localhost:${target.port}`;
  const deny = join(dir, 'deny-list');
  writeFileSync(deny, 'localhost\n');
  const port = await freePort();
  const { key, base } = await startRelay('hops', `127.0.0.1:${port}`, [byIp, byName],
    `deny_list = ${JSON.stringify(deny)}\nnode_site_per_minute = 3\n`);
  start(bin('spareband-node'), ['--relay', base, '--key-file', join(dir, 'hops-node.key'),
    '--allow-target', byIp, '--allow-target', byName]);
  await nodesOnline(base, 1);

  // The first URL on the deny list is the relay's to refuse...
  const first = await fetchJson(base, key, { url: `http://${byName}/hello` });
  assert.equal(first.status, 400, first.text);
  // ...a redirect into it, the node's.
  const seen = target.seen.length;
  const hop = await fetchJson(base, key, {
    url: `http://${byIp}/redirect?to=${encodeURIComponent(`http://${byName}/hello`)}`,
  });
  assert.equal(hop.status, 400, hop.text);
  assert.match(JSON.parse(hop.text).error.message, /deny list/);
  assert.deepEqual(target.seen.slice(seen).filter((s) => s.split(' ')[1].startsWith('localhost')), []);

  // Four requests to one site in one job, with a cap of three a minute: the
  // relay counted one (the first URL), the node counts every hop.
  const chain = ['/hello', '/redirect?to=/hello'];
  for (let i = 0; i < 2; i += 1) chain.push(`/redirect?to=${encodeURIComponent(chain[chain.length - 1])}`);
  const before = target.seen.length;
  const capped = await fetchJson(base, key, { url: `http://${byIp}${chain[chain.length - 1]}` });
  assert.equal(capped.status, 429, capped.text);
  assert.ok(target.seen.length - before <= 3, `the site got ${target.seen.length - before} requests`);
});
