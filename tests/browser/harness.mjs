// Shared set-up for the real-browser tests: a development build of the
// extension baked for this run's relay and test targets, the real relay
// binary on loopback, local target and canary servers, and a headless
// Chromium or Firefox ESR (Debian's) with the extension installed.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import crypto from 'node:crypto';
import puppeteer from 'puppeteer-core';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const artifacts = join(root, 'tests', 'artifacts');

export async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

export async function waitFor(what, check, ms = 20000, every = 100) {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export function pattern(len, seed) {
  // The same bytes every time for a (len, seed): checked by hash.
  const out = Buffer.alloc(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i += 1) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

/** A local target: records every request; routes for the browser tests. */
export async function startTarget({ host = '127.0.0.1', port = 0 } = {}) {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/hello') return res.end('hello from the target');
    if (url.pathname === '/bytes') {
      const n = Number(url.searchParams.get('n') ?? 1024);
      const body = pattern(n, Number(url.searchParams.get('seed') ?? 1));
      res.setHeader('content-length', n);
      return res.end(body);
    }
    if (url.pathname === '/chunks') {
      // N pattern bytes in C-byte pieces, chunked (no length), each piece
      // written on its own turn of the event loop so they travel apart.
      const n = Number(url.searchParams.get('n') ?? 1024);
      const chunk = Math.max(1, Number(url.searchParams.get('chunk') ?? 1000));
      const body = pattern(n, Number(url.searchParams.get('seed') ?? 1));
      let at = 0;
      const next = () => {
        if (at >= n) return res.end();
        const piece = body.subarray(at, at + chunk);
        at += piece.length;
        return res.write(piece) ? setImmediate(next) : res.once('drain', next);
      };
      return next();
    }
    if (url.pathname === '/echo') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const b = Buffer.concat(chunks);
        res.setHeader('x-body-sha256', sha256(b));
        res.end(b);
      });
      return undefined;
    }
    if (url.pathname === '/redirect') {
      res.statusCode = Number(url.searchParams.get('status') ?? 302);
      res.setHeader('location', url.searchParams.get('to'));
      return res.end();
    }
    if (url.pathname === '/set-cookies') {
      // Cookies the owner's browser would hold for this site.
      res.setHeader('set-cookie', [
        'owner_none=1; SameSite=None; Secure; Path=/',
        'owner_lax=1; SameSite=Lax; Path=/',
        'owner_strict=1; SameSite=Strict; Path=/',
      ]);
      return res.end('cookies set');
    }
    if (url.pathname === '/job-cookie') {
      res.setHeader('set-cookie', 'from_job=1; SameSite=Lax; Path=/');
      return res.end(`cookie header: ${req.headers.cookie ?? '(none)'}`);
    }
    if (url.pathname === '/show-cookies') return res.end(`cookie header: ${req.headers.cookie ?? '(none)'}`);
    res.statusCode = 404;
    return res.end('not here');
  });
  await new Promise((resolve, reject) => {
    server.once('error', (e) => reject(e.code === 'EACCES'
      ? new Error(`binding ${host}:${port} needs root (CI runs as root): ${e.message}`) : e));
    server.listen(port, host, resolve);
  });
  return { server, port: server.address().port, seen, close: () => new Promise((r) => server.close(r)) };
}

/** The name a "home device with a valid certificate" answers for. */
export const TRUSTED_DEVICE_NAME = 'device.spareband.test';

/** An https server on loopback with a self-signed certificate for
 * TRUSTED_DEVICE_NAME, and the certificate's SPKI hash (for Chromium's
 * `--ignore-certificate-errors-spki-list`, which makes it trusted). */
export async function startTrustedDevice(dir) {
  const key = join(dir, 'device.key');
  const cert = join(dir, 'device.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${TRUSTED_DEVICE_NAME}`,
    '-addext', `subjectAltName=DNS:${TRUSTED_DEVICE_NAME}`], { stdio: 'ignore' });
  const der = crypto.createPublicKey(readFileSync(cert)).export({ type: 'spki', format: 'der' });
  const spki = crypto.createHash('sha256').update(der).digest('base64');
  const seen = [];
  const server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    seen.push(req.url);
    res.end('THE HOME DEVICE PAGE');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { seen, spki, port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

/** The bytes an https target's `/blob?n=&seed=` answers: the same for the
 * same numbers, different at every offset. */
export function blob(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 17 + (i >> 8)) & 255;
  return b;
}

/** An https target on loopback, for `localhost` and 127.0.0.1, with a
 * certificate from a test CA of its own: `caFile` for Firefox's
 * certificate store, `spki` (the leaf's) for Chromium's
 * `--ignore-certificate-errors-spki-list`. `/blob?n=&seed=` answers
 * [`blob`]; `POST /echo` answers the body it got. */
export async function startTlsTarget(dir) {
  const f = (name) => join(dir, `tls-target-${name}`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  execFileSync('openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2',
    '-subj', '/CN=Spareband browser tests CA', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign'], { stdio: 'ignore' });
  execFileSync('openssl', ['req', ...ec, '-keyout', f('leaf.key'), '-out', f('leaf.csr'), '-subj', '/CN=localhost'],
    { stdio: 'ignore' });
  writeFileSync(f('ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  execFileSync('openssl', ['x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
    '-CAcreateserial', '-out', f('leaf.crt'), '-days', '2', '-extfile', f('ext.cnf')], { stdio: 'ignore' });
  const der = crypto.createPublicKey(readFileSync(f('leaf.crt'))).export({ type: 'spki', format: 'der' });
  const spki = crypto.createHash('sha256').update(der).digest('base64');
  const seen = [];
  const server = https.createServer({ key: readFileSync(f('leaf.key')), cert: readFileSync(f('leaf.crt')) },
    (req, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers });
      const u = new URL(req.url, 'https://localhost');
      if (u.pathname === '/blob') {
        res.end(blob(Number(u.searchParams.get('n')), Number(u.searchParams.get('seed'))));
      } else if (u.pathname === '/echo') {
        req.pipe(res);
      } else {
        res.statusCode = 404;
        res.end('no such page');
      }
    });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { seen, spki, caFile: f('ca.crt'), port: server.address().port,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

/** Builds the development extension for one browser into its own folder. */
export function buildExtension(browser, env) {
  const out = join(root, 'target', 'browser-tests', browser);
  execFileSync('node', [join(root, 'scripts', 'build-extension.mjs'), '--dev', '--only', browser, '--out', out], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
    // A target dir of its own, so two browsers' builds never share a wasm file.
    env: { ...process.env, ...env, CARGO_TARGET_DIR: join(root, 'target', `browser-tests-${browser}-cargo`) },
  });
  return out;
}

/** The hostile-URL matrix shared with the Rust tests. */
export function hostileUrls(port) {
  return readFileSync(join(root, 'tests', 'hostile-urls.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const canary = l.startsWith('@');
      return { canary, url: (canary ? l.slice(1).trim() : l).replaceAll('{port}', String(port)) };
    });
}

/**
 * The target policy's hostile-URL matrix (protocol/src/policy/hostile-urls.json,
 * whose verdicts `cargo test` checks through the url crate), as
 * `{ url, expect }` with `expect` in the form the core's checkTargets answers.
 */
export function policyMatrix() {
  const doc = JSON.parse(readFileSync(join(root, 'protocol', 'src', 'policy', 'hostile-urls.json'), 'utf8'));
  return [
    ...doc.pass.map((c) => ({ url: c.url, expect: `ok ${c.href}` })),
    ...[...doc.refuse, ...doc.spellings].map((c) => ({ url: c.url, expect: `refused ${c.why}` })),
  ];
}

/** Allow-list entries that let a relay pass every spelling of the canary. */
export function canaryAllow(port) {
  return ['127.0.0.1', 'localhost', 'sub.localhost', '0.0.0.0', '[::1]', '[::]', '[::ffff:7f00:1]',
    '[::7f00:1]', '[64:ff9b::7f00:1]', '[2002:7f00:1::]'].map((host) => `${host}:${port}`);
}

/** The admin token the test relays run with. */
export const ADMIN_TOKEN = 'browser-tests-admin-token-0001';

/** The relay binary: the debug build, or the one the benchmark names. */
function relayBin() {
  return process.env.SPAREBAND_RELAY_BIN || join(root, 'target', 'debug', 'spareband-relay');
}

/** The name the rebinding tests use: public for the relay (its hosts file),
 * loopback for the browser's and the native node's resolvers. */
export const REBIND_NAME = 'rebind.spareband.test';
/** A name on the relay's deny list that resolves to the test target (in
 * the browser) and is allow-listed, so only the deny list can stop it. */
export const DENIED_NAME = 'denied.spareband.test';

/** The real relay binary, plain HTTP on loopback, with its dashboard on;
 * `config` is TOML for its config file (e.g. `hosts_file`). */
export async function startRelay({ port, allow, dataDir, config }) {
  const bin = relayBin();
  const args = ['serve', '--insecure-http', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir];
  if (config) {
    const file = join(dataDir, 'relay.toml');
    writeFileSync(file, config);
    args.push('--config', file);
  }
  const child = spawn(bin, args, {
    env: {
      ...process.env,
      RUST_LOG: 'info',
      SPAREBAND_ALLOW_TARGETS: allow.join(','),
      SPAREBAND_ADMIN_TOKEN: ADMIN_TOKEN,
      // The suites send hundreds of jobs to one test target.
      SPAREBAND_NODE_SITE_PER_MINUTE: '0',
    },
  });
  child.output = '';
  child.stderr.on('data', (d) => { child.output += d; });
  child.stdout.on('data', (d) => { child.output += d; });
  child.exited = new Promise((r) => child.on('exit', (code) => r(code)));
  await waitFor('relay listening', () => /relay listening/.test(child.output));
  return child;
}

export function createKey(dataDir) {
  const bin = relayBin();
  return execFileSync(bin, ['keys', 'create', '--name', 'browser-tests', '--data-dir', dataDir]).toString().trim();
}

export async function api(base, key, path, { method = 'GET', body, json } = {}) {
  const headers = { authorization: `Bearer ${key}` };
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: json ? JSON.stringify(json) : body,
  });
  const buf = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body: buf, json: () => JSON.parse(buf.toString()) };
}

/** Signs in to the relay's dashboard; returns the Cookie header value. */
export async function adminCookie(base) {
  const res = await fetch(`${base}/admin/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: ADMIN_TOKEN }).toString(),
    redirect: 'manual',
  });
  if (res.status !== 303) throw new Error(`sign-in answered ${res.status}`);
  return res.headers.get('set-cookie').split(';')[0];
}

export async function adminApi(base, cookie, path) {
  const res = await fetch(`${base}${path}`, { headers: { cookie } });
  if (!res.ok) throw new Error(`${path} answered ${res.status}: ${await res.text()}`);
  return res.json();
}

/** The relay's metered byte counters, from its Prometheus text. */
export async function meteredBytes(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const read = (dir) => Number(text.match(new RegExp(`spareband_bytes_total\\{direction="${dir}"\\} (\\d+)`))[1]);
  return { up: read('up'), down: read('down') };
}

/** Waits until every finished job's usage record is committed: longer than
 * the ledger's flush interval (250 ms), then an empty writer queue. */
export async function ledgerSettled(base) {
  await new Promise((r) => setTimeout(r, 400));
  await waitFor('the ledger queue to drain', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    return /^spareband_ledger_queue_depth 0$/m.test(text);
  });
}

export async function healthNodes(base) {
  const r = await fetch(`${base}/healthz`);
  return (await r.json()).nodes;
}

const FIREFOX_ADDON_ID = JSON.parse(readFileSync(join(root, 'manifest.json'), 'utf8'))
  .browser_specific_settings.gecko.id;
const FIREFOX_UUID = '5b0a6a2e-6f1c-4f4e-9d1a-7c3e2b9a0f11';

/** Launches the browser with the extension installed; returns the host of
 * its pages' URLs too. */
export async function launch(browser, extensionDir, { args = [], prefs = {}, trustCa } = {}) {
  const profile = mkdtempSync(join(tmpdir(), `spareband-${browser}-`));
  if (trustCa && browser === 'firefox') {
    // Firefox keeps its own certificate store in the profile: the test CA
    // goes in before the browser starts (certutil, from libnss3-tools).
    execFileSync('certutil', ['-N', '-d', `sql:${profile}`, '--empty-password']);
    execFileSync('certutil', ['-A', '-d', `sql:${profile}`, '-n', 'spareband-tests', '-t', 'C,,', '-i', trustCa]);
  }
  let b;
  if (browser === 'chrome') {
    b = await puppeteer.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      enableExtensions: true,
      userDataDir: profile,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', ...args],
    });
  } else {
    b = await puppeteer.launch({
      browser: 'firefox',
      executablePath: '/usr/bin/firefox-esr',
      headless: true,
      userDataDir: profile,
      // Firefox 153+ lets WebDriver open moz-extension:// pages only with this.
      args: ['--remote-allow-system-access'],
      // moz-extension:// URLs use a random per-profile UUID; fix it so the
      // tests can open the extension's pages.
      extraPrefsFirefox: {
        'extensions.webextensions.uuids': JSON.stringify({ [FIREFOX_ADDON_ID]: FIREFOX_UUID }),
        ...prefs,
      },
    });
  }
  const installed = await b.installExtension(extensionDir);
  const id = browser === 'chrome' ? installed : FIREFOX_UUID;
  return { browser: b, id, profile, close: async () => { await b.close(); rmSync(profile, { recursive: true, force: true }); } };
}

export function extensionUrl(kind, id, page) {
  return kind === 'chrome' ? `chrome-extension://${id}/${page}` : `moz-extension://${id}/${page}`;
}

export function ensureArtifacts() {
  mkdirSync(artifacts, { recursive: true });
  return artifacts;
}
