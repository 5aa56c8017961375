// The browser node, end to end, in one real browser: customer requests
// served by the extension through the real relay binary, cookie isolation,
// the popup's switch, the daily cap, an idle background, a relay restart, the
// redirect guard, the proxy port's mode-fetch, and a screenshot of the popup.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProxyAgent, request as undiciRequest } from 'undici';
import * as h from './harness.mjs';

export function browserSuite(kind) {
  const ctx = {};

  before(async () => {
    ctx.target = await h.startTarget();
    ctx.canary = await h.startTarget();
    // The rebinding canary: where the browser's own resolver sends
    // REBIND_NAME. Chromium maps the name (every port) to it; Firefox maps
    // the name to 127.0.0.1 and keeps the URL's port, so its canary sits on
    // port 80, the one the relay would route plain http to.
    ctx.rebindCanary = await h.startTarget({ port: kind === 'firefox' ? 80 : 0 });
    ctx.relayPort = await h.freePort();
    ctx.proxyPort = await h.freePort();
    ctx.base = `http://127.0.0.1:${ctx.relayPort}`;
    ctx.dataDir = mkdtempSync(join(tmpdir(), `spareband-relay-${kind}-`));
    // An https target the browser trusts, for the proxy's mode-fetch.
    ctx.tls = await h.startTlsTarget(ctx.dataDir);
    ctx.allow = [`127.0.0.1:${ctx.target.port}`, `localhost:${ctx.target.port}`, `${h.DENIED_NAME}:${ctx.target.port}`,
      `localhost:${ctx.tls.port}`, `127.0.0.1:${ctx.tls.port}`];
    ctx.extDir = h.buildExtension(kind, {
      SPAREBAND_RELAY_URL: `ws://127.0.0.1:${ctx.relayPort}/v1/node`,
      SPAREBAND_ALLOW_TARGETS: ctx.allow.join(','),
      SPAREBAND_AUTOSTART: '1',
    });
    ctx.key = h.createKey(ctx.dataDir);
    // The relay also lets every spelling of the canary through, so the
    // hostile-URL test reaches the extension's own checks.
    ctx.relayAllow = [...ctx.allow, ...h.canaryAllow(ctx.canary.port), `${h.REBIND_NAME}:${ctx.canary.port}`];
    // For the relay, REBIND_NAME resolves to a public address (which
    // nothing here ever connects to).
    const hostsFile = join(ctx.dataDir, 'hosts');
    writeFileSync(hostsFile, `93.184.215.14 ${h.REBIND_NAME} ${h.TRUSTED_DEVICE_NAME}\n`);
    if (kind === 'chrome') ctx.device = await h.startTrustedDevice(ctx.dataDir);
    const denyFile = join(ctx.dataDir, 'deny-list');
    writeFileSync(denyFile, `${h.DENIED_NAME}\n`);
    ctx.relay = await h.startRelay({
      port: ctx.relayPort,
      allow: ctx.relayAllow,
      dataDir: ctx.dataDir,
      config: `hosts_file = ${JSON.stringify(hostsFile)}\ndeny_list = ${JSON.stringify(denyFile)}\n`
        + `proxy_listen = "127.0.0.1:${ctx.proxyPort}"\n`,
    });
    ctx.b = await h.launch(kind, ctx.extDir, kind === 'firefox'
      ? { prefs: { 'network.dns.localDomains': `${h.REBIND_NAME},${h.DENIED_NAME}` }, trustCa: ctx.tls.caFile }
      : {
        args: [
          `--host-resolver-rules=MAP ${h.REBIND_NAME} 127.0.0.1:${ctx.rebindCanary.port}, MAP ${h.DENIED_NAME} 127.0.0.1, `
            + `MAP ${h.TRUSTED_DEVICE_NAME} 127.0.0.1:${ctx.device.port}`,
          `--ignore-certificate-errors-spki-list=${ctx.device.spki},${ctx.tls.spki}`,
        ],
      });
    await h.waitFor('the extension node to connect', async () => (await h.healthNodes(ctx.base)) === 1, 30000);
  });

  after(async () => {
    await ctx.b?.close();
    ctx.relay?.kill('SIGKILL');
    await ctx.target?.close();
    await ctx.canary?.close();
    await ctx.rebindCanary?.close();
    await ctx.device?.close();
    await ctx.tls?.close();
    if (ctx.dataDir) rmSync(ctx.dataDir, { recursive: true, force: true });
  });

  const fetchJson = (doc) => h.api(ctx.base, ctx.key, '/v1/fetch', { method: 'POST', json: doc });
  const url = (path, host = '127.0.0.1') => `http://${host}:${ctx.target.port}${path}`;
  const raw = (target, init = {}) => h.api(ctx.base, ctx.key, `/v1/raw?url=${encodeURIComponent(target)}`, init);

  async function openPage(page) {
    const p = await ctx.b.browser.newPage();
    const target = h.extensionUrl(kind, ctx.b.id, page);
    if (kind === 'firefox') {
      // Firefox loads extension pages but reports no navigation events for
      // them over WebDriver BiDi: start the load, then watch the document.
      p.goto(target, { timeout: 60_000 }).catch(() => {});
      await h.waitFor(`${page} to load`, () =>
        p.evaluate((u) => location.href === u && document.readyState === 'complete', target).catch(() => false));
    } else {
      await p.goto(target);
    }
    return p;
  }

  async function openOptions() {
    const options = await openPage('options.html');
    await options.waitForFunction(() => document.getElementById('daily_cap_mb').value !== '', { polling: 100 });
    return options;
  }

  // Sets one field on the options page, saves, and returns what the page said.
  async function saveOption(options, field, value) {
    await options.$eval(`#${field}`, (el, v) => { el.value = v; }, value);
    await options.$eval('#message', (el) => { el.textContent = ''; });
    await options.click('#save');
    await options.waitForFunction(() => document.getElementById('message').textContent !== '', { polling: 100 });
    return options.$eval('#message', (el) => el.textContent);
  }

  async function popupStatus(p) {
    return p.evaluate(() => ({
      state: document.getElementById('status').dataset.state,
      text: document.body.innerText,
    }));
  }

  // The popup's words for the node's state now, in German (the second
  // language the extension ships): the language is set as the options page
  // sets it, a fresh popup reads it, and English comes back after.
  async function popupSaysInGerman(page, words) {
    const setLanguage = (lang) => page.evaluate(async (l) => {
      const api = globalThis.browser ?? globalThis.chrome;
      await api.storage.local.set({ language: l });
    }, lang);
    await setLanguage('de');
    try {
      const german = await openPage('popup.html');
      await h.waitFor(`the popup to say ${words}`, async () => words.test((await popupStatus(german)).text));
      await german.close();
    } finally {
      await setLanguage('');
    }
  }

  test(`${kind}: JSON and raw requests, a 5 MiB body byte for byte, 50 at once`, async () => {
    const r = await fetchJson({ url: url('/hello') });
    assert.equal(r.status, 200, r.body.toString());
    const v = r.json();
    assert.equal(Buffer.from(v.body, 'base64').toString(), 'hello from the target');
    // Metered bytes match the protocol's definition on both ends.
    const headerBytes = v.headers.reduce((n, [k, val]) => n + k.length + val.length, 0);
    assert.equal(v.bytes.down, headerBytes + 'hello from the target'.length);
    assert.equal(v.bytes.up, url('/hello').length);

    const payload = h.pattern(300000, 11);
    const post = await raw(url('/echo'), { method: 'POST', body: payload });
    assert.equal(post.status, 200);
    assert.equal(post.headers.get('x-body-sha256'), h.sha256(payload));

    const n = 5 * 1024 * 1024;
    const big = await raw(url(`/bytes?n=${n}&seed=5`));
    assert.equal(big.status, 200);
    assert.equal(big.body.length, n);
    assert.equal(h.sha256(big.body), h.sha256(h.pattern(n, 5)));

    const results = await Promise.all(Array.from({ length: 50 }, (_, i) =>
      fetchJson({ url: url(`/bytes?n=${2000 + i}&seed=${i}`) })));
    results.forEach((res, i) => {
      assert.equal(res.status, 200, `request ${i}: ${res.body}`);
      assert.ok(Buffer.from(res.json().body, 'base64').equals(h.pattern(2000 + i, i)), `request ${i} body`);
    });
  });

  test(`${kind}: the owner's cookies never go out with a job, and a job's cookies are not kept`, async () => {
    const tab = await ctx.b.browser.newPage();
    await tab.goto(url('/set-cookies', 'localhost'));
    await tab.goto(url('/show-cookies', 'localhost'));
    const held = await tab.evaluate(() => document.body.innerText);
    // The browser really holds all three cookies (else this test proves nothing).
    for (const c of ['owner_none=1', 'owner_lax=1', 'owner_strict=1']) assert.match(held, new RegExp(c), held);

    const r = await fetchJson({ url: url('/job-cookie', 'localhost') });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(Buffer.from(r.json().body, 'base64').toString(), 'cookie header: (none)');
    const jobReq = ctx.target.seen.findLast((s) => s.url === '/job-cookie');
    assert.equal(jobReq.headers.cookie, undefined);
    assert.equal(jobReq.headers.authorization, undefined);

    await tab.goto(url('/show-cookies', 'localhost'));
    const after = await tab.evaluate(() => document.body.innerText);
    assert.doesNotMatch(after, /from_job/, 'a cookie set in a job response was stored by the browser');
    await tab.close();
  });

  test(`${kind}: every hostile URL the relay lets through is refused by the extension itself`, async () => {
    const cases = h.hostileUrls(ctx.canary.port).filter((c) => c.canary);
    assert.ok(cases.length >= 25);
    for (const { url: u } of cases) {
      const r = await fetchJson({ url: u });
      assert.equal(r.status, 400, `${u}: ${r.body}`);
      assert.equal(r.json().error.code, 'target_forbidden', `${u}: ${r.body}`);
    }
    assert.equal(ctx.canary.seen.length, 0, JSON.stringify(ctx.canary.seen));
  });

  // Issue 16: the extension's core reads URLs with the browser's own URL
  // parser, not the url crate, and runs the shared policy on its parts. The
  // whole hostile-URL matrix goes through this browser's parser here, with
  // the verdicts `cargo test` gets from the url crate: the same href for
  // each URL that passes, the same reason for each one refused. The
  // end-to-end matrix (tests/hostile-urls.txt, on an allowed port) must be
  // refused too. Checked once with the address rule taken out of
  // `check_parsed` (policy.rs): every private address then came back "ok".
  test(`${kind}: the hostile-URL matrix gets the same verdicts from this browser's URL parser as from the url crate`, async () => {
    const matrix = h.policyMatrix();
    const e2e = h.hostileUrls(8080).map((c) => c.url);
    const urls = [...matrix.map((c) => c.url), ...e2e];
    const page = await openPage('popup.html');
    const verdicts = await page.evaluate(async (urls) => {
      const api = globalThis.browser ?? globalThis.chrome;
      const r = await api.runtime.sendMessage({ type: 'checkTargets', urls });
      if (!r.ok) throw new Error(r.error);
      return r.verdicts;
    }, urls);
    await page.close();
    assert.equal(verdicts.length, urls.length);
    const differ = [];
    matrix.forEach((c, n) => {
      if (verdicts[n] !== c.expect) differ.push(`${JSON.stringify(c.url)}: ${verdicts[n]}, the url crate: ${c.expect}`);
    });
    e2e.forEach((u, n) => {
      const v = verdicts[matrix.length + n];
      if (!v.startsWith('refused ')) differ.push(`${u}: ${v}`);
    });
    assert.deepEqual(differ, [], `${kind}'s URL parser and the url crate disagree`);
    assert.ok(matrix.length > 200, `${matrix.length} cases`);
  });

  test(`${kind}: a redirect to a forbidden address is never followed`, async () => {
    const targets = [
      `http://127.0.0.1:${ctx.canary.port}/hello`,
      `http://localhost:${ctx.canary.port}/hello`,
      `http://[::1]:${ctx.canary.port}/hello`,
    ];
    for (const to of targets) {
      const r = await fetchJson({ url: url(`/redirect?to=${encodeURIComponent(to)}`) });
      assert.notEqual(r.status, 200, `followed a redirect to ${to}: ${r.body}`);
      assert.ok(['target_forbidden', 'node_failed'].includes(r.json().error.code), r.body.toString());
    }
    // An allowed redirect is still followed.
    const ok = await fetchJson({ url: url(`/redirect?to=${encodeURIComponent(url('/hello'))}`) });
    assert.equal(ok.status, 200, ok.body.toString());
    assert.equal(ctx.canary.seen.length, 0, `the canary was reached: ${JSON.stringify(ctx.canary.seen)}`);
  });

  // A name the relay sees as public but the browser's resolver sends to
  // loopback (split horizon, DNS rebinding), asked directly and through
  // redirects, on allowed and odd ports, plus a trailing-dot localhost.
  // Checked once each way: with the relay's routing by node kind removed
  // (jobs.rs `browser_ok`) and the https-only rule removed from the browser
  // policy (build_config.rs `for_browser`) and the Chromium default-deny rule
  // removed (guard.js rule 1), Chromium fetched the canary's page for
  // `http://REBIND_NAME/hello` and the redirects to it.
  test(`${kind}: a name that resolves to loopback in the browser never reaches it, directly or by redirect`, async () => {
    const name = h.REBIND_NAME;
    const odd = ctx.canary.port;
    const direct = [`https://${name}/hello`, `http://${name}/hello`, `http://${name}:${odd}/hello`,
      `https://${name}:${odd}/hello`];
    const hops = [`http://${name}/hello`, `http://${name}:${odd}/hello`, `https://${name}/hello`,
      `https://${name}:${odd}/hello`, `http://localhost.:${odd}/hello`, `https://localhost./hello`];
    const asks = [
      ...direct.map((u) => ({ url: u })),
      ...hops.flatMap((to) => [302, 307].map((status) => ({
        url: url(`/redirect?status=${status}&to=${encodeURIComponent(to)}`),
        method: status === 307 ? 'POST' : 'GET',
        body: status === 307 ? Buffer.from('a body 307 would repeat').toString('base64') : undefined,
      }))),
    ];
    for (const ask of asks) {
      const r = await fetchJson(ask);
      assert.ok(r.status >= 400, `${JSON.stringify(ask)} answered ${r.status}: ${r.body}`);
      assert.ok(r.json().error?.code, r.body.toString());
    }
    // http on port 80 never reaches a browser node at all.
    const plain = await fetchJson({ url: `http://${name}/hello` });
    assert.equal(plain.status, 503, plain.body.toString());
    assert.match(plain.json().error.message, /native node/);
    assert.equal(ctx.rebindCanary.seen.length, 0, `reached: ${JSON.stringify(ctx.rebindCanary.seen)}`);
    assert.equal(ctx.canary.seen.length, 0, `reached: ${JSON.stringify(ctx.canary.seen)}`);
  });

  // The one case that remains in Chromium (SECURITY.md): a device at home
  // with a certificate the browser trusts for the name, which the owner's
  // DNS points at it. Chromium sends it the request (asserted, so the
  // documents stay true), but the answer is discarded once the browser
  // reports where it came from. Checked once: with `verdict` in guard.js
  // answering true, the device's page reached the customer (200).
  if (kind === 'chrome') {
    test(`${kind}: an answer from a home device with a trusted certificate is discarded, never passed on`, async () => {
      const r = await fetchJson({ url: `https://${h.TRUSTED_DEVICE_NAME}/hello` });
      assert.equal(r.status, 400, r.body.toString());
      assert.equal(r.json().error.code, 'target_forbidden', r.body.toString());
      assert.match(r.json().error.message, /not public/);
      assert.ok(ctx.device.seen.length >= 1, 'the request reached the device, as SECURITY.md says');
    });
  }

  // Checked once: with the relay's deny list left out of the guard
  // (Chromium: guard.js rule 90 without `deniedDomains()`; Firefox: the
  // core's `refuses_name` without the deny list) the redirect was followed
  // and the target answered.
  test(`${kind}: the relay's deny list holds at every redirect hop`, async () => {
    const denied = url('/hello', h.DENIED_NAME);
    const first = await fetchJson({ url: denied });
    assert.equal(first.status, 400, first.body.toString());
    const from = ctx.target.seen.length;
    const hop = await fetchJson({ url: url(`/redirect?to=${encodeURIComponent(denied)}`) });
    assert.ok(hop.status >= 400, hop.body.toString());
    const reached = ctx.target.seen.slice(from).filter((x) => (x.headers.host ?? '').startsWith(h.DENIED_NAME));
    assert.deepEqual(reached, []);
  });

  test(`${kind}: switching sharing off in the popup stops routing, on brings it back`, async () => {
    const popup = await openPage('popup.html');
    await h.waitFor('popup connected', async () => (await popupStatus(popup)).state === 'connected');
    await popup.click('label.switch');
    await h.waitFor('relay sees no node', async () => (await h.healthNodes(ctx.base)) === 0);
    const off = await fetchJson({ url: url('/hello') });
    assert.equal(off.status, 503);
    assert.equal(off.json().error.code, 'no_node_available');
    assert.match((await popupStatus(popup)).text, /Off\. Nothing is shared/);
    await popupSaysInGerman(popup, /Aus\. Es wird nichts geteilt/);
    await popup.click('label.switch');
    await h.waitFor('relay sees the node again', async () => (await h.healthNodes(ctx.base)) === 1);
    const on = await fetchJson({ url: url('/hello') });
    assert.equal(on.status, 200);
    await popup.close();
  });

  test(`${kind}: the daily cap stops sharing when reached`, async () => {
    const options = await openPage('options.html');
    await options.waitForFunction(() => document.getElementById('daily_cap_mb').value !== '', { polling: 100 });
    // A cap 1 MB above what earlier tests already shared today.
    const today = await options.evaluate(async () => {
      const api = globalThis.browser ?? globalThis.chrome;
      const { status } = await api.runtime.sendMessage({ type: 'status' });
      return status.today.up + status.today.down;
    });
    const capMb = Math.ceil(today / 1e6) + 1;
    await options.$eval('#daily_cap_mb', (el, v) => { el.value = String(v); }, capMb);
    await options.click('#save');
    await options.waitForFunction(() => document.getElementById('message').textContent === 'Saved.', { polling: 100 });
    // Under the cap: served. It takes the day's total past the cap.
    const big = await raw(url(`/bytes?n=${2_100_000}&seed=3`));
    assert.equal(big.status, 200);
    await h.waitFor('the node to pause', async () => (await fetchJson({ url: url('/hello') })).status === 503);
    const popup = await openPage('popup.html');
    await h.waitFor('popup says paused', async () => (await popupStatus(popup)).state === 'paused');
    assert.match((await popupStatus(popup)).text, /data cap is reached/);
    await popupSaysInGerman(popup, /Die Tagesgrenze ist erreicht/);
    await popup.close();
    // Lift the cap again for the tests that follow (a background tab is
    // frozen, so bring the options tab to the front as a user would).
    await options.bringToFront();
    await options.$eval('#daily_cap_mb', (el) => { el.value = '0'; });
    await options.click('#save');
    await h.waitFor('sharing resumes', async () => (await fetchJson({ url: url('/hello') })).status === 200);
    await options.close();
  });

  test(`${kind}: a payout address is checked, saved and registered with the relay`, async () => {
    const options = await openOptions();
    const save = (value) => saveOption(options, 'payout_address', value);
    // One wrong capital: the checksum catches it, in words.
    assert.match(await save('0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD'), /checksum/);
    // Lower case carries no checksum; it is stored in EIP-55 form.
    assert.equal(await save('0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed'), 'Saved.');
    assert.equal(await options.$eval('#payout_address', (el) => el.value), '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed');
    await h.waitFor('the relay registered the address', async () =>
      /payout address registered address=0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed/.test(ctx.relay.output));
    await options.close();
  });

  test(`${kind}: with several relays in the options, the node moves past one that is down`, async () => {
    // Checked once with the defence removed (the core kept dialling the
    // first relay after a failure): the node never came back and this test
    // timed out.
    const options = await openOptions();
    const dead = `ws://127.0.0.1:${await h.freePort()}/v1/node`;
    const live = `ws://127.0.0.1:${ctx.relayPort}/v1/node`;
    const tooMany = Array.from({ length: 17 }, (_, i) => `https://r${i}.example`).join(',');
    assert.equal(await saveOption(options, 'relay_url', tooMany), 'Relay: at most 16 relays.');
    // The first relay refuses connections: the next attempt goes to the
    // second, which serves.
    assert.equal(await saveOption(options, 'relay_url', `${dead}, ${live}`), 'Saved.');
    await h.waitFor('the node on the second relay', async () => {
      const s = await nodeStatus();
      return s.state === 'connected' && s.relay_url === live;
    }, 20000);
    await h.waitFor('the relay to see it', async () => (await h.healthNodes(ctx.base)) === 1);
    assert.equal((await fetchJson({ url: url('/hello') })).status, 200);
    // Its receipt comes in the relay's next batch; a connection closed
    // before that never gets it, and the popup's verified figures (checked
    // against the dashboard later) would stay one job short.
    await h.waitFor('the receipt of that job', async () => {
      const s = await nodeStatus();
      return s.verified.requests === s.total.requests;
    });
    // Back to the relay this build ships with.
    assert.equal(await saveOption(options, 'relay_url', ''), 'Saved.');
    await h.waitFor('the node back on the build relay', async () => (await nodeStatus()).state === 'connected');
    await h.waitFor('the relay to see it again', async () => (await h.healthNodes(ctx.base)) === 1);
    await options.close();
  });

  test(`${kind}: a site the owner blocks in the options is never fetched through this browser`, async () => {
    const options = await openOptions();
    const save = (value) => saveOption(options, 'blocked_domains', value);
    const from = ctx.target.seen.length;
    assert.match(await save('not a domain/'), /not a domain name/);
    assert.equal(await save('LOCALHOST.'), 'Saved.');
    assert.equal(await options.$eval('#blocked_domains', (el) => el.value), 'localhost');
    // The relay routes around this node (the only one) once it has heard
    // the list: nobody may take the job. (Its log says so at most once per
    // 10 s per node, so the test asks the routing itself.)
    await h.waitFor('the relay to hear the block list', async () =>
      (await fetchJson({ url: url('/hello', 'localhost'), timeout_ms: 1000 })).status === 503);
    const r = await fetchJson({ url: url('/hello', 'localhost') });
    assert.equal(r.status, 503, r.body.toString());
    // A redirect into the blocked site is stopped by the extension itself.
    const hop = await fetchJson({ url: url(`/redirect?to=${encodeURIComponent(url('/hello', 'localhost'))}`) });
    assert.ok(hop.status >= 400, hop.body.toString());
    const reached = ctx.target.seen.slice(from).filter((x) => (x.headers.host ?? '').startsWith('localhost'));
    assert.deepEqual(reached, []);
    // Unblocked, it is served again.
    assert.equal(await save(''), 'Saved.');
    await h.waitFor('the relay to hear the empty list', async () =>
      (await fetchJson({ url: url('/hello', 'localhost') })).status === 200);
    await options.close();
  });

  // The node's own state, straight from the extension's background.
  async function nodeStatus() {
    const p = await openPage('popup.html');
    const s = await p.evaluate(async () => {
      const api = globalThis.browser ?? globalThis.chrome;
      return (await api.runtime.sendMessage({ type: 'status' })).status;
    });
    await p.close();
    return s;
  }

  async function usageTotal() {
    const t = (await h.api(ctx.base, ctx.key, '/v1/usage')).json().total;
    return { up: t.bytes_up, down: t.bytes_down };
  }

  // The node's verified counts come from the relay's signed receipts, which
  // the core checks with the browser's Web Crypto (wasm/src/crypto.rs).
  // Checked once with that check forced to fail: the verified counts stayed
  // behind the relay's and this test failed.
  test(`${kind}: random body sizes and chunkings: relay, node and ledger agree to the byte`, async () => {
    const sum = (c) => ({ up: c.up, down: c.down });
    // Earlier tests' last records may still be on their way to the ledger.
    await h.ledgerSettled(ctx.base);
    const before = {
      relay: await h.meteredBytes(ctx.base),
      ledger: await usageTotal(),
      node: sum((await nodeStatus()).total),
      verified: sum((await nodeStatus()).verified),
    };
    // A seeded generator: the same sizes every run, printed on failure.
    let seed = 0x5eed;
    const rnd = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
    const jobs = [];
    for (let i = 0; i < 16; i += 1) {
      if (i % 4 === 3) {
        const body = h.pattern(rnd(200_000), i);
        const r = await raw(url('/echo'), { method: 'POST', body });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('x-body-sha256'), h.sha256(body));
        jobs.push(`POST ${body.length}`);
      } else {
        const n = rnd(4) === 0 ? rnd(10) : rnd(400_000);
        const chunk = 1 + rnd(70_000);
        const r = await raw(url(`/chunks?n=${n}&seed=${i}&chunk=${chunk}`));
        assert.equal(r.status, 200);
        assert.equal(h.sha256(r.body), h.sha256(h.pattern(n, i)), `GET ${n} in ${chunk}-byte pieces`);
        jobs.push(`GET ${n}/${chunk}`);
      }
    }
    const delta = (a, b) => ({ up: a.up - b.up, down: a.down - b.down });
    let last;
    await h.waitFor('the relay, the node and the ledger to agree', async () => {
      const st = await nodeStatus();
      last = {
        relay: delta(await h.meteredBytes(ctx.base), before.relay),
        ledger: delta(await usageTotal(), before.ledger),
        node: delta(sum(st.total), before.node),
        verified: delta(sum(st.verified), before.verified),
      };
      const same = (x, y) => x.up === y.up && x.down === y.down;
      return same(last.relay, last.ledger) && same(last.relay, last.node) && same(last.relay, last.verified);
    }, 10_000, 250).catch((e) => { throw new Error(`${e.message}\n${JSON.stringify({ jobs, last })}`); });
    assert.ok(last.relay.down > 0 && last.relay.up > 0, JSON.stringify(last));
    assert.equal((await nodeStatus()).receipt_problems, 0);
  });

  test(`${kind}: the dashboard and the popup tell the same story, to the byte`, async () => {
    const nodeId = (await nodeStatus()).node_id;
    const cookie = await h.adminCookie(ctx.base);
    // Wait until the ledger holds every job's record.
    const usage = await usageTotal();
    const row = await h.waitFor('the dashboard to show every delivered byte', async () => {
      const n = await h.adminApi(ctx.base, cookie, `/admin/api/nodes/${nodeId}`);
      return n.bytes_all === usage.up + usage.down ? n : false;
    });
    assert.equal(row.client_kind, 'extension');
    assert.equal(row.online, true);
    assert.equal(row.payout_address, '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed');

    const popup = await openPage('popup.html');
    await h.waitFor('the popup to show token amounts', () =>
      popup.$eval('#earn-epoch-tokens', (el) => el.dataset.value !== '' && el.dataset.value !== undefined));
    const shown = await popup.evaluate(() => Object.fromEntries(
      ['epoch-bytes', 'all-bytes', 'epoch-tokens', 'all-tokens']
        .map((k) => [k, document.getElementById(`earn-${k}`).dataset.value])));
    const words = await popup.evaluate(() => document.body.innerText);
    assert.equal(Number(shown['all-bytes']), row.bytes_all, words);
    assert.equal(Number(shown['epoch-bytes']), row.bytes_epoch, words);
    assert.equal(shown['epoch-tokens'], row.earnings_epoch, words);
    assert.equal(shown['all-tokens'], row.earnings_all, words);
    assert.ok(BigInt(row.earnings_epoch) > 0n);
    assert.match(words, /No epoch has closed yet|Epoch #\d+ closed/);
    await popup.setViewport({ width: 330, height: 620 });
    await popup.screenshot({ path: join(h.ensureArtifacts(), `popup-earnings-${kind}.png`) });
    await popup.close();

    if (kind !== 'chrome') return;
    // The dashboard itself, signed in through its form in headless Chromium.
    const page = await ctx.b.browser.newPage();
    await page.setViewport({ width: 1400, height: 900 });
    const first = await page.goto(`${ctx.base}/admin/nodes`);
    assert.equal(first.status(), 401);
    await page.bringToFront();
    await page.type('#token', h.ADMIN_TOKEN);
    await Promise.all([page.waitForNavigation(), page.click('#sign-in')]);
    assert.equal(new URL(page.url()).pathname, '/admin');
    await page.waitForSelector('body[data-ready="1"]');
    assert.equal(await page.$eval('[data-card="nodes"] .value', (el) => el.textContent), '1');
    await page.screenshot({ path: join(h.ensureArtifacts(), 'dashboard-overview-chrome.png') });
    await page.goto(`${ctx.base}/admin/nodes`);
    await page.waitForSelector(`tr[data-node="${nodeId}"]`);
    const cells = await page.$$eval(`tr[data-node="${nodeId}"] td`, (tds) =>
      Object.fromEntries(tds.map((td) => [td.dataset.col, td.dataset.value])));
    assert.equal(Number(cells.bytes_epoch), row.bytes_epoch);
    assert.equal(Number(cells.bytes_all), row.bytes_all);
    assert.equal(cells.earnings_epoch, shown['epoch-tokens']);
    assert.equal(cells.earnings_all, shown['all-tokens']);
    assert.equal(cells.client_kind, 'extension');
    assert.equal(cells.last_seen, 'online');
    await page.screenshot({ path: join(h.ensureArtifacts(), 'dashboard-nodes-chrome.png') });
    await page.goto(`${ctx.base}/admin/nodes/${nodeId}`);
    await page.waitForSelector('body[data-ready="1"]');
    assert.match(await page.$eval('[data-fact="bytes_all"]', (el) => el.textContent),
      new RegExp(`^${Number(row.bytes_all).toLocaleString('en-US')} B`));
    assert.ok(await page.$('svg.chart rect'));
    await page.screenshot({ path: join(h.ensureArtifacts(), 'dashboard-node-chrome.png') });
    await page.close();
  });

  // Sets several fields on the options page (checkboxes by boolean), saves,
  // and returns what the page said.
  async function saveOptions(options, fields) {
    await options.bringToFront();
    await options.evaluate((f) => {
      for (const [id, v] of Object.entries(f)) {
        const el = document.getElementById(id);
        if (typeof v === 'boolean') el.checked = v; else el.value = String(v);
      }
      document.getElementById('message').textContent = '';
    }, fields);
    await options.click('#save');
    await options.waitForFunction(() => document.getElementById('message').textContent !== '', { polling: 100 });
    return options.$eval('#message', (el) => el.textContent);
  }

  const statusOf = (page) => page.evaluate(async () => {
    const api = globalThis.browser ?? globalThis.chrome;
    return (await api.runtime.sendMessage({ type: 'status' })).status;
  });

  // The speed limit, paced by the core: 8 Mbit/s measured on a 16 MiB raw
  // job (16.7 s), within 10 %. Checked once with the pacing taken out of
  // the core's response loop (job.rs): the 16 MiB came in 0.3 s.
  test(`${kind}: a speed limit of 8 Mbit/s holds within 10 % on a 16 MiB job`, async (t) => {
    const options = await openOptions();
    assert.equal(await saveOptions(options, { max_mbps_down: 8, max_mbps_up: 8 }), 'Saved.');
    try {
      const n = 16 * 1024 * 1024;
      const started = Date.now();
      const r = await raw(url(`/bytes?n=${n}&seed=8`));
      const took = (Date.now() - started) / 1000;
      assert.equal(r.status, 200, r.body.subarray(0, 300).toString());
      assert.ok(r.body.equals(h.pattern(n, 8)), 'byte for byte');
      const want = (n - 64 * 1024) * 8 / 8e6;
      t.diagnostic(`16 MiB at 8 Mbit/s: ${took.toFixed(2)} s (${(n * 8 / took / 1e6).toFixed(2)} Mbit/s), ${want.toFixed(2)} s expected`);
      assert.ok(Math.abs(took - want) <= want * 0.1, `${took} s, not ${want} s ± 10 %`);
      const popup = await openPage('popup.html');
      await h.waitFor('the popup to show the limit', async () => /Speed limit: 8 Mbit\/s down, 8 Mbit\/s up/.test((await popupStatus(popup)).text));
      await popup.close();
    } finally {
      assert.equal(await saveOptions(options, { max_mbps_down: 0, max_mbps_up: 0 }), 'Saved.');
      await options.close();
    }
  });

  // The monthly cap, across a month boundary the core's clock is moved
  // over (a development build's shiftClock). Checked once with the monthly
  // cap left out of Limits::pause: the node kept serving.
  test(`${kind}: the monthly cap pauses the node at the relay and the next month resumes it`, async () => {
    const options = await openOptions();
    try {
      const s = await statusOf(options);
      const month = s.this_month.up + s.this_month.down;
      // 1 MB above this month's data, in GB; the plan's month starts on the 1st.
      const cap = (Math.ceil(month / 1e6) + 1) / 1000;
      assert.equal(await saveOptions(options, { monthly_cap_gb: cap, cap_reset_day: 1 }), 'Saved.');
      assert.equal((await raw(url('/bytes?n=2100000&seed=4'))).status, 200);
      await h.waitFor('the node to pause', async () => (await fetchJson({ url: url('/hello') })).status === 503);
      const popup = await openPage('popup.html');
      await h.waitFor('popup says paused', async () => (await popupStatus(popup)).state === 'paused');
      assert.match((await popupStatus(popup)).text, /this month's data cap is reached/);
      await popupSaysInGerman(popup, /Die Monatsgrenze ist erreicht/);
      assert.match((await popupStatus(popup)).text, new RegExp(`of ${cap} GB`));
      await popup.close();
      // Noon on the 1st of next month, by this computer's clock.
      const now = new Date();
      const next = new Date(now.getFullYear(), now.getMonth() + 1, 1, 12);
      await options.evaluate(async (ms) => {
        const api = globalThis.browser ?? globalThis.chrome;
        const r = await api.runtime.sendMessage({ type: 'shiftClock', ms });
        if (!r.ok) throw new Error(r.error);
      }, next - now);
      await h.waitFor('sharing resumes in the new month', async () => (await fetchJson({ url: url('/hello') })).status === 200);
      assert.equal((await statusOf(options)).month_start, `${next.getFullYear()}-${String(next.getMonth() + 1).padStart(2, '0')}-01`);
    } finally {
      await options.evaluate(async () => {
        const api = globalThis.browser ?? globalThis.chrome;
        await api.runtime.sendMessage({ type: 'shiftClock', ms: 0 });
      });
      assert.equal(await saveOptions(options, { monthly_cap_gb: 0 }), 'Saved.');
      await options.close();
    }
  });

  // A schedule that leaves today out pauses the node at the relay, and the
  // popup says when sharing starts again. Checked once with the schedule
  // left out of Limits::pause: the node kept serving.
  test(`${kind}: a schedule that excludes now pauses the node, and the popup says when it starts again`, async () => {
    const options = await openOptions();
    try {
      const days = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
      const tomorrow = days[(new Date().getDay() + 1) % 7];
      assert.equal(await saveOptions(options, { schedule: `${tomorrow} 09:00-17:00` }), 'Saved.');
      assert.equal(await options.$eval('#schedule', (el) => el.value), `${tomorrow} 09:00-17:00`);
      await h.waitFor('the node to pause', async () => (await fetchJson({ url: url('/hello') })).status === 503);
      const popup = await openPage('popup.html');
      await h.waitFor('popup says paused', async () => (await popupStatus(popup)).state === 'paused');
      const { text } = await popupStatus(popup);
      assert.match(text, /schedule does not include now/);
      assert.match(text, /Sharing starts again/);
      const s = await statusOf(popup);
      const at = new Date(s.next_start_ms);
      assert.equal(at.getDay(), (new Date().getDay() + 1) % 7, 'tomorrow');
      assert.equal(at.getHours(), 9);
      await popup.close();
      // The same in the second language the extension ships (_locales/de),
      // chosen on the options page.
      assert.equal(await saveOptions(options, { language: 'de' }), 'Gespeichert.');
      const german = await openPage('popup.html');
      await h.waitFor('the popup in German', async () => /Ihr Zeitplan schließt die jetzige Zeit nicht ein/.test((await popupStatus(german)).text));
      assert.match((await popupStatus(german)).text, /Das Teilen beginnt wieder am/);
      assert.match((await popupStatus(german)).text, /Einstellungen/);
      await german.close();
      assert.equal(await saveOptions(options, { language: '' }), 'Saved.');
      // A schedule that does not read is refused in words, and nothing changes.
      assert.match(await saveOptions(options, { schedule: 'weekdays 9-17' }), /^Schedule: .*days are mon/);
    } finally {
      assert.equal(await saveOptions(options, { schedule: '' }), 'Saved.');
      await h.waitFor('sharing resumes', async () => (await fetchJson({ url: url('/hello') })).status === 200);
      await options.close();
    }
  });

  // A metered connection: Chromium reports a request to save data through
  // navigator.connection.saveData (mobile data only on ChromeOS), here
  // faked with the DevTools protocol's emulation on the extension's service
  // worker. Firefox reports nothing, and its options page says the setting
  // has no effect there. Checked once with the metered check left out of
  // Limits::pause: the node kept serving.
  if (kind === 'chrome') {
    test(`${kind}: a metered connection pauses sharing unless the owner allows it`, async () => {
      const worker = await ctx.b.browser.waitForTarget((t) => t.type() === 'service_worker' && t.url().startsWith(`chrome-extension://${ctx.b.id}/`));
      const cdp = await worker.createCDPSession();
      // Without the parameter, the override ends.
      const saveData = (on) => cdp.send('Emulation.setDataSaverOverride', on ? { dataSaverEnabled: true } : {});
      const options = await openOptions();
      try {
        await saveData(true);
        await h.waitFor('the node to pause', async () => (await fetchJson({ url: url('/hello') })).status === 503);
        const popup = await openPage('popup.html');
        await h.waitFor('popup says paused', async () => (await popupStatus(popup)).state === 'paused');
        assert.match((await popupStatus(popup)).text, /connection is metered/);
        await popupSaysInGerman(popup, /Diese Verbindung ist getaktet/);
        await popup.close();
        assert.equal(await saveOptions(options, { allow_metered: true }), 'Saved.');
        await h.waitFor('sharing on the metered connection', async () => (await fetchJson({ url: url('/hello') })).status === 200);
        assert.equal(await saveOptions(options, { allow_metered: false }), 'Saved.');
        await h.waitFor('the node to pause again', async () => (await fetchJson({ url: url('/hello') })).status === 503);
      } finally {
        await saveData(false);
        await h.waitFor('sharing resumes', async () => (await fetchJson({ url: url('/hello') })).status === 200);
        await cdp.detach();
        await options.close();
      }
    });
  } else {
    test(`${kind}: the options page says this browser does not report metered connections`, async () => {
      const options = await openOptions();
      assert.match(await options.$eval('#metered_hint', (el) => el.textContent), /does not report whether a connection is metered/);
      assert.equal((await statusOf(options)).metered, undefined);
      await options.close();
    });
  }

  // The proxy port's mode-fetch, served by a browser node: the relay ends
  // the customer's TLS with its proxy CA and runs each request inside as an
  // https job, which this extension fetches from a target its browser
  // trusts. undici's ProxyAgent is the customer, trusting only the relay's
  // proxy CA. Checked once with the test CA left out of the browser: the
  // job failed (502 node_failed), so the answer below comes from the
  // extension's own fetch.
  test(`${kind}: https through the proxy port in mode-fetch is served by the extension, byte for byte`, async () => {
    const ca = await (await fetch(`${ctx.base}/v1/proxy-ca.pem`)).text();
    const agent = new ProxyAgent({
      uri: `http://127.0.0.1:${ctx.proxyPort}`,
      token: `Basic ${Buffer.from(`user-mode-fetch-session-f1:${ctx.key}`).toString('base64')}`,
      requestTls: { ca },
    });
    try {
      const from = ctx.tls.seen.length;
      const got = await undiciRequest(`https://localhost:${ctx.tls.port}/blob?n=300001&seed=5`, { dispatcher: agent });
      const body = Buffer.from(await got.body.arrayBuffer());
      assert.equal(got.statusCode, 200, body.toString().slice(0, 300));
      assert.ok(body.equals(h.blob(300001, 5)), `${body.length} bytes, not the target's`);
      assert.match(String(got.headers['x-spareband-node']), /\S/, 'the answer names its node');
      const upload = h.blob(70000, 9);
      const echo = await undiciRequest(`https://localhost:${ctx.tls.port}/echo`,
        { dispatcher: agent, method: 'POST', body: upload });
      assert.equal(echo.statusCode, 200);
      assert.ok(Buffer.from(await echo.body.arrayBuffer()).equals(upload), 'the upload came back byte for byte');
      const reached = ctx.tls.seen.slice(from);
      assert.deepEqual(reached.map((r) => `${r.method} ${r.url}`), ['GET /blob?n=300001&seed=5', 'POST /echo']);
      // The browser's own request, not the relay's: the extension is the
      // only node, and a browser sends its user agent.
      assert.equal(await h.healthNodes(ctx.base), 1);
      assert.match(reached[0].headers['user-agent'] ?? '', kind === 'chrome' ? /Chrom/ : /Firefox/);
    } finally {
      await agent.close();
    }
  });

  test(`${kind}: left idle for 70 s, the node is still connected and serves the next job`, async () => {
    await new Promise((r) => setTimeout(r, 70_000));
    assert.equal(await h.healthNodes(ctx.base), 1, ctx.relay.output.split('\n').slice(-40).join('\n'));
    const r = await fetchJson({ url: url('/hello') });
    assert.equal(r.status, 200, r.body.toString());
  });

  test(`${kind}: after a relay restart the extension reconnects within 10 s`, async () => {
    ctx.relay.kill('SIGTERM');
    assert.equal(await ctx.relay.exited, 0);
    ctx.relay = await h.startRelay({ port: ctx.relayPort, allow: ctx.relayAllow, dataDir: ctx.dataDir });
    const started = Date.now();
    await h.waitFor('the node to reconnect', async () => (await h.healthNodes(ctx.base)) === 1, 10_000, 50);
    assert.ok(Date.now() - started <= 10_000);
    assert.equal((await fetchJson({ url: url('/hello') })).status, 200);
  });

  // The core reads the options page's settings itself (wasm/src/jsvalue.rs,
  // no serde): a field of the wrong type is refused by name, and nothing of
  // the patch is applied.
  test(`${kind}: settings of the wrong type are refused by name, and none of them is applied`, async () => {
    const page = await openPage('popup.html');
    const send = (settings) => page.evaluate(async (settings) => {
      const api = globalThis.browser ?? globalThis.chrome;
      return api.runtime.sendMessage({ type: 'updateSettings', settings });
    }, settings);
    for (const [bad, why] of [
      [{ daily_cap_mb: 'lots' }, /daily_cap_mb must be a whole number/],
      [{ max_concurrency: 2.5 }, /max_concurrency must be a whole number/],
      [{ daily_cap_mb: -1 }, /daily_cap_mb must be a whole number/],
      [{ allow_metered: 'yes' }, /allow_metered must be true or false/],
      [{ schedule: 7 }, /schedule must be text/],
    ]) {
      const r = await send({ idle_only: true, ...bad });
      assert.equal(r.ok, false, JSON.stringify(bad));
      assert.equal(r.code, 'invalid_settings');
      assert.match(r.error, why);
    }
    const s = await statusOf(page);
    assert.equal(s.settings.idle_only, false);
    await page.close();
  });

  // What the core saves (key seed, settings, totals, the pinned relay key)
  // comes back when the background starts again: Chrome stops an idle
  // service worker (here through the DevTools protocol), Firefox's event page
  // is reloaded with the extension. The pinned keys are a plain object:
  // Chrome keeps extension storage as JSON. Checked once with them written
  // as a JS Map: Chrome saved {} and this test failed.
  const OLD_PIN = ['wss://old-relay.example:443', 'ab'.repeat(32)];
  test(`${kind}: after the background restarts it has its key, settings, totals and pinned relay key`, async () => {
    const page = await openPage('popup.html');
    const before = await statusOf(page);
    assert.ok(before.total.requests > 0);
    // Counts are saved at most once a second while jobs run: wait for them.
    await h.waitFor('the totals to be saved', async () => {
      const saved = await page.evaluate(async () => {
        const api = globalThis.browser ?? globalThis.chrome;
        return (await api.storage.local.get('node')).node;
      });
      return saved?.stats?.total?.requests === before.total.requests;
    }, 10_000, 100);
    if (kind === 'chrome') {
      const cdp = await page.createCDPSession();
      await cdp.send('ServiceWorker.enable');
      await cdp.send('ServiceWorker.stopAllWorkers');
    } else {
      // Cores before issue 16 saved the pins as a Map, which Firefox's
      // storage keeps: one more pin, saved that way, must be read back.
      // Checked once with the Map reader removed: the extra pin was lost.
      await page.evaluate(async (old) => {
        const { node } = await browser.storage.local.get('node');
        node.relay_keys = new Map([...Object.entries(node.relay_keys), old]);
        await browser.storage.local.set({ node });
        setTimeout(() => browser.runtime.reload(), 100);
      }, OLD_PIN);
    }
    // The old background is gone when its connection is.
    await h.waitFor('the node to disconnect', async () => (await h.healthNodes(ctx.base)) === 0, 20_000, 100);
    await page.close().catch(() => {});
    let after;
    await h.waitFor('the reloaded extension to answer', async () => {
      const p = await openPage('popup.html').catch(() => null);
      if (!p) return false;
      after = await statusOf(p).catch(() => null);
      const saved = await p.evaluate(async () => {
        const api = globalThis.browser ?? globalThis.chrome;
        return (await api.storage.local.get('node')).node;
      }).catch(() => null);
      await p.close().catch(() => {});
      if (after) after.saved = saved;
      return Boolean(after);
    }, 30_000, 500);
    assert.equal(after.node_id, before.node_id);
    assert.deepEqual(after.settings, before.settings);
    assert.ok(after.total.requests >= before.total.requests, JSON.stringify([before.total, after.total]));
    assert.equal(after.verified.requests, before.verified.requests);
    const pins = Object.entries(after.saved.relay_keys);
    assert.equal(pins.length, kind === 'firefox' ? 2 : 1, JSON.stringify(after.saved.relay_keys));
    for (const [, key] of pins) assert.match(key, /^[0-9a-f]{64}$/);
    if (kind === 'firefox') assert.deepEqual(pins.find(([o]) => o === OLD_PIN[0]), OLD_PIN);
    await h.waitFor('the node to reconnect', async () => (await h.healthNodes(ctx.base)) === 1, 20_000, 100);
    assert.equal((await fetchJson({ url: url('/hello') })).status, 200);
  });

  test(`${kind}: the popup, connected`, async () => {
    const popup = await openPage('popup.html');
    await popup.setViewport({ width: 330, height: 480 });
    await h.waitFor('popup connected', async () => (await popupStatus(popup)).state === 'connected');
    const { text } = await popupStatus(popup);
    assert.match(text, /Connected and sharing/);
    assert.match(text, /\d+ requests? served/);
    // Earnings the owner can trust: confirmed by the relay's signed receipts.
    assert.match(text, /Verified by the relay's signed receipts: [1-9][0-9.]* [kMG]?B/);
    assert.doesNotMatch(text, /did not match/);
    assert.match(text, /Rewards go to\s+0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed/);
    const nodeId = await popup.$eval('#node-id', (el) => el.textContent);
    assert.match(nodeId, /^[0-9a-f]{32}$/);
    await popupSaysInGerman(popup, /Verbunden, es wird geteilt[\s\S]*Durch die signierten Belege des Relays bestätigt/);
    const dir = h.ensureArtifacts();
    await popup.screenshot({ path: join(dir, `popup-${kind}.png`) });
    await popup.close();
  });
}
