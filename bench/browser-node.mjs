// Measures one browser extension node (headless Chromium) on loopback: small
// requests per second through the real relay, and Mbit/s for a large body.
//   node bench/browser-node.mjs [--requests N] [--mib M]
// Prints one JSON line, with the release wasm's size from dist/wasm-size.json
// (written by `npm run build`). Timing lives here, never in the tests.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as h from '../tests/browser/harness.mjs';

const argv = process.argv.slice(2);
const arg = (name, dflt) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : dflt);
const requests = arg('--requests', 2000);
const mib = arg('--mib', 64);
const concurrency = 32;

const target = await h.startTarget();
const relayPort = await h.freePort();
const base = `http://127.0.0.1:${relayPort}`;
const allow = [`127.0.0.1:${target.port}`];
const dir = h.buildExtension('chrome', {
  SPAREBAND_RELAY_URL: `ws://127.0.0.1:${relayPort}/v1/node`,
  SPAREBAND_ALLOW_TARGETS: allow.join(','),
  SPAREBAND_AUTOSTART: '1',
});
const dataDir = mkdtempSync(join(tmpdir(), 'spareband-bench-'));
const key = h.createKey(dataDir);
const relay = await h.startRelay({ port: relayPort, allow, dataDir });
const b = await h.launch('chrome', dir);
try {
  await h.waitFor('node', async () => (await h.healthNodes(base)) === 1, 30000);
  // Raise the node's concurrency and lift the cap for the run.
  const opts = await b.browser.newPage();
  await opts.goto(h.extensionUrl('chrome', b.id, 'options.html'));
  await opts.evaluate(() => chrome.runtime.sendMessage({ type: 'updateSettings', settings: { max_concurrency: 64, daily_cap_mb: 0 } }));
  await opts.close();
  await h.waitFor('node back', async () => (await h.healthNodes(base)) === 1, 30000);
  const small = `/v1/raw?url=${encodeURIComponent(`http://127.0.0.1:${target.port}/bytes?n=1024`)}`;
  for (let i = 0; i < 50; i += 1) await h.api(base, key, small); // warm-up
  let next = 0;
  let failed = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < requests) {
      next += 1;
      const r = await h.api(base, key, small);
      if (r.status !== 200 || r.body.length !== 1024) failed += 1;
    }
  }));
  const rps = requests / ((performance.now() - t0) / 1000);
  const n = mib * 1024 * 1024;
  const t1 = performance.now();
  const big = await h.api(base, key, `/v1/raw?url=${encodeURIComponent(`http://127.0.0.1:${target.port}/bytes?n=${n}`)}&timeout_ms=120000`);
  const secs = (performance.now() - t1) / 1000;
  if (big.body.length !== n) throw new Error(`large body: ${big.body.length} of ${n} bytes`);
  const wasm = JSON.parse(readFileSync(new URL('../dist/wasm-size.json', import.meta.url), 'utf8'));
  console.log(JSON.stringify({
    small_requests: requests, failed, concurrency, requests_per_second: Math.round(rps),
    large_mib: mib, mbit_per_second: Math.round((n * 8) / secs / 1e6),
    wasm_bytes: wasm.raw, wasm_gzip_bytes: wasm.gzipped,
  }));
} finally {
  await b.close();
  relay.kill('SIGKILL');
  await target.close();
  rmSync(dataDir, { recursive: true, force: true });
}
