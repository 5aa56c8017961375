// Rewards end to end with the real binaries: nodes register payout
// addresses, serve jobs, an epoch is closed with `spareband-relay epochs
// close`, and the published Merkle root and proofs are checked against
// OpenZeppelin's own StandardMerkleTree implementation.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'target', 'debug', name);
const children = [];
const servers = [];
const dir = mkdtempSync(join(tmpdir(), 'spareband-rewards-'));

function start(name, args, env = {}) {
  const child = spawn(bin(name), args, { env: { ...process.env, RUST_LOG: 'info', ...env } });
  child.output = '';
  child.stderr.on('data', (d) => { child.output += d; });
  child.stdout.on('data', (d) => { child.output += d; });
  children.push(child);
  return child;
}

async function waitFor(what, check, ms = 20000) {
  const until = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function getJson(url, init) {
  const r = await fetch(url, init);
  return { status: r.status, body: await r.json() };
}

after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  // A failed test must not leave a listening server holding the runner open.
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

const A = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';
const B = '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359';
const C = '0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb';
const BAD = '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6Fb'; // last letter's case is wrong
const RATE = 10n ** 18n;

test('epoch payouts match OpenZeppelin StandardMerkleTree, to the byte and the base unit', async () => {
  const site = http.createServer((req, res) => res.end(Buffer.alloc(1000 + (req.url.length * 997) % 50000, 7)));
  servers.push(site);
  await new Promise((r) => site.listen(0, '127.0.0.1', r));
  const allow = `127.0.0.1:${site.address().port}`;
  const data = join(dir, 'data');
  const key = execFileSync(bin('spareband-relay'), ['keys', 'create', '--name', 'r', '--data-dir', data]).toString().trim();
  const relay = start('spareband-relay', ['serve', '--insecure-http', '--data-dir', data, '--listen', '127.0.0.1:0'], {
    SPAREBAND_ALLOW_TARGETS: allow,
    // Many jobs to one test target: no per-node site cap here.
    SPAREBAND_NODE_SITE_PER_MINUTE: '0',
    // Every test node is on 127.0.0.1: let them all earn.
    SPAREBAND_EARNING_NODES_PER_IP: '0',
  });
  await waitFor('relay', async () => /relay listening addr=/.test(relay.output));
  const base = `http://${relay.output.match(/relay listening addr=(\S+)/)[1]}`;
  for (const [i, payout] of [A, A, B, C, BAD, null].entries()) {
    const args = ['--relay', base, '--allow-target', allow, '--key-file', join(dir, `n${i}.key`)];
    if (payout) args.push('--payout', payout);
    start('spareband-node', args);
  }
  await waitFor('6 nodes', async () => (await getJson(`${base}/healthz`)).body.nodes === 6);
  await waitFor('payouts registered', async () => (relay.output.match(/payout address registered/g) ?? []).length === 4);
  // The bad checksum's node connects beside the others: its refusal may be
  // logged after the fourth registration.
  await waitFor('the bad checksum to be refused', async () => /payout address refused/.test(relay.output));

  for (let i = 0; i < 90; i += 1) {
    const r = await getJson(`${base}/v1/fetch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
      body: JSON.stringify({ url: `http://${allow}/page/${i}` }),
    });
    assert.equal(r.status, 200);
  }
  // Records older than the close delay are all committed.
  await new Promise((r) => setTimeout(r, 2500));
  const out = execFileSync(bin('spareband-relay'), ['epochs', 'close', '--data-dir', data]).toString();
  assert.match(out, /Closed epoch \d+/);

  const { body: { epochs } } = await getJson(`${base}/v1/rewards/epochs`);
  const epoch = epochs[0];
  assert.ok(epoch.merkle_root, JSON.stringify(epoch));
  const payouts = [];
  for (const address of [A, B, C]) {
    const r = await getJson(`${base}/v1/rewards/epochs/${epoch.epoch}/${address}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    payouts.push(r.body);
    // Integer math, documented rounding: floor(bytes × rate / 2^30).
    assert.equal(BigInt(r.body.amount), (BigInt(r.body.bytes) * RATE) / 2n ** 30n);
  }
  assert.equal(epoch.payouts, 3, 'only valid addresses are paid');
  const missing = await getJson(`${base}/v1/rewards/epochs/${epoch.epoch}/${BAD.toLowerCase()}`);
  assert.equal(missing.status, 404);
  const badSum = await getJson(`${base}/v1/rewards/epochs/${epoch.epoch}/${BAD}`);
  assert.equal(badSum.status, 400);

  // Every delivered byte is either paid or reported unassigned.
  const usage = (await getJson(`${base}/v1/usage`, { headers: { authorization: `Bearer ${key}` } })).body;
  assert.equal(epoch.total_bytes + epoch.unassigned_bytes, usage.total.bytes_up + usage.total.bytes_down);
  assert.equal(BigInt(epoch.total_amount), payouts.reduce((s, p) => s + BigInt(p.amount), 0n));

  const values = payouts.map((p) => [p.address, p.amount]);
  const tree = StandardMerkleTree.of(values, ['address', 'uint256']);
  assert.equal(tree.root, epoch.merkle_root);
  for (const p of payouts) {
    assert.ok(StandardMerkleTree.verify(epoch.merkle_root, ['address', 'uint256'], [p.address, p.amount], p.proof));
    assert.ok(!StandardMerkleTree.verify(epoch.merkle_root, ['address', 'uint256'], [p.address, `${BigInt(p.amount) + 1n}`], p.proof));
  }
});
