// The redirect guard: no request of this extension may reach a forbidden
// target, at the first hop or after any redirect, whatever the name, the
// redirect or the DNS answer. The core checks the first URL itself (the
// target policy: in a browser, only https on port 443, public names, the
// owner's block list, the relay's deny list and site cap); redirects are
// followed by the browser, so each browser's own mechanism stops forbidden
// hops before they are sent:
//
// - Firefox: a blocking webRequest listener asks the core about every
//   request of this extension (every hop), and resolves the host with the
//   dns API to refuse names that point into a private network or the
//   owner's own address.
// - Chromium (no blocking webRequest in MV3): declarativeNetRequest session
//   rules, default-deny for this extension's requests, allow only
//   https://host(:443), and block private names, the owner's blocked sites
//   and the relay's deny list. DNR sees URLs, never addresses: a name that
//   resolves into the home still passes them, and the TLS certificate check
//   is what stops it (a device at home has no valid certificate for the
//   customer's name).
//
// In both browsers, the address every answer actually came from (webRequest
// `ip`, reported after the browser connected) is checked before the core
// passes anything of the answer on: an answer from a non-public address, or
// from the owner's own, is discarded and the job fails (`verdict` below).
// What remains is written down in SECURITY.md.

// Firefox, the one browser whose MV3 extensions may block webRequest (Chromium
// now has a `browser` namespace and a non-blocking webRequest too, so neither
// tells them apart).
const globalApi = globalThis.browser ?? globalThis.chrome;
const hasBlockingWebRequest = () => globalApi.runtime.getURL('/').startsWith('moz-extension:');

// Hosts that are never public, as RE2 patterns over the URL (Chrome
// normalises hosts before matching: lower case, IPv4 in dotted decimal; a
// trailing dot stays, hence `DOT`). Several small rules, because each
// compiled pattern must stay under 2 KB.
const HOST = '^[a-z][a-z0-9+.-]*://([^/@]*@)?';
const DOT = '\\.?';
const END = '(:[0-9]+)?([/?#]|$)';
const PRIVATE_URLS = [
  `${HOST}(localhost|[^/:]*\\.(localhost|local|internal|lan|home))${DOT}${END}`,
  `${HOST}[^/:]*\\.(home\\.arpa|localdomain|intranet|corp)${DOT}${END}`,
  `${HOST}[^/:.\\[]+${DOT}${END}`, // single-label names
  `${HOST}(0|10|127)\\.[0-9.]+${END}`,
  `${HOST}(169\\.254|192\\.168|172\\.(1[6-9]|2[0-9]|3[01])|192\\.0\\.[02])\\.[0-9.]+${END}`,
  `${HOST}(100\\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])|198\\.1[89]|22[4-9]|2[3-5][0-9])\\.[0-9.]+${END}`,
  `${HOST}\\[`, // every IPv6 literal: no job of a browser node needs one
];
// The only URLs this extension's requests may use in Chromium: https on
// port 443 (explicit or not), a name or IPv4 literal, nothing else.
const HTTPS_443 = '^https://[^/?#@:\\[\\]]+(:443)?([/?#]|$)';

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function installChromeRules(api, core) {
  const ours = { tabIds: [-1], initiatorDomains: [api.runtime.id], resourceTypes: ['xmlhttprequest', 'other'] };
  const rule = (id, priority, type, condition) => ({ id, priority, action: { type }, condition: { ...ours, ...condition } });
  // Default deny, then https on 443, then the private names on top.
  const rules = [rule(1, 1, 'block', {}), rule(2, 2, 'allow', { regexFilter: HTTPS_443 })];
  PRIVATE_URLS.forEach((regexFilter, i) => rules.push(rule(10 + i, 3, 'block', { regexFilter })));
  // The owner's blocked sites and the relay's deny list, with their
  // subdomains, at every hop: above everything, test targets included.
  const domains = [...core.blockedDomains(), ...core.deniedDomains()];
  if (domains.length > 0) rules.push(rule(90, 5, 'block', { requestDomains: domains }));
  // A development build's test targets (empty in a release build).
  core.allowList().forEach((hostPort, i) => {
    rules.push(rule(100 + i, 4, 'allow', { regexFilter: `^https?://${escapeRe(hostPort)}([/?#]|$)` }));
  });
  const old = await api.declarativeNetRequest.getSessionRules();
  await api.declarativeNetRequest.updateSessionRules({
    removeRuleIds: old.map((r) => r.id),
    addRules: rules,
  });
}

function isIpLiteral(host) {
  return /^[0-9.]+$/.test(host) || host.startsWith('[');
}

// ---- where answers came from ----

// Longest the core waits for the browser to report where an answer came
// from; no report means no answer passes (fail closed).
const VERDICT_TIMEOUT_MS = 5000;
// Reports are kept this long for jobs still waiting.
const KEEP_MS = 60000;

const badChains = new Set(); // requestIds with a hop from a forbidden address
const chains = new Set(); // Firefox: requestIds whose first request was seen
const answers = new Map(); // url → [{ t, ok }]
const waiters = new Set(); // { url, since, resolve }

const noFragment = (u) => u.split('#')[0];

let lastSweep = 0;

function record(url, t, ok) {
  const key = noFragment(url);
  const now = Date.now();
  // Forget old reports of every URL now and then, so the map stays small.
  if (now - lastSweep > KEEP_MS) {
    lastSweep = now;
    for (const [k, list] of answers) {
      const kept = list.filter((a) => now - a.t < KEEP_MS);
      if (kept.length === 0) answers.delete(k);
      else answers.set(k, kept);
    }
  }
  const list = (answers.get(key) ?? []).filter((a) => now - a.t < KEEP_MS);
  list.push({ t, ok });
  answers.set(key, list);
  for (const w of waiters) if (w.url === key) w.check();
}

// Whether every answer for `url` since `since` (ms since the epoch) came
// from an allowed address: waits for at least one.
function verdict(url, since) {
  const key = noFragment(url);
  return new Promise((resolve) => {
    const w = {
      url: key,
      check() {
        const seen = (answers.get(key) ?? []).filter((a) => a.t >= since);
        if (seen.some((a) => !a.ok)) return done(false);
        if (seen.length > 0) return done(true);
        return undefined;
      },
    };
    const timer = setTimeout(() => done(false), VERDICT_TIMEOUT_MS);
    function done(ok) {
      clearTimeout(timer);
      waiters.delete(w);
      resolve(ok);
    }
    waiters.add(w);
    w.check();
  });
}

function watchAddresses(api, ready, isOurs) {
  const filter = { urls: ['<all_urls>'] };
  const allowed = async (d) => d.ip !== undefined && d.ip !== null && (await ready).allowsAddress(d.url, d.ip);
  api.webRequest.onBeforeRedirect.addListener(async (d) => {
    if (!isOurs(d)) return;
    const core = await ready;
    // Every hop counts against the site cap. Chromium cannot hold the hop,
    // so one over the cap is sent, and its chain's answer is discarded.
    if (!(await allowed(d)) || (!hasBlockingWebRequest() && !core.allowsHop(d.redirectUrl))) {
      badChains.add(d.requestId);
    }
  }, filter);
  api.webRequest.onResponseStarted.addListener(async (d) => {
    if (!isOurs(d)) return;
    const ok = (await allowed(d)) && !badChains.has(d.requestId);
    badChains.delete(d.requestId);
    chains.delete(d.requestId);
    record(d.url, d.timeStamp, ok);
  }, filter);
  api.webRequest.onErrorOccurred.addListener((d) => {
    if (!isOurs(d)) return;
    badChains.delete(d.requestId);
    chains.delete(d.requestId);
  }, filter);
}

// After the owner changes the blocked sites, or the relay its rules:
// Chrome's rules are rebuilt (Firefox's listener asks the core each time).
export function refreshGuard(api, core) {
  if (hasBlockingWebRequest()) return Promise.resolve();
  return installChromeRules(api, core);
}

// Returns a promise that settles once the guard is in force; the core starts
// only after it.
export function installGuard(api, ready) {
  const own = new URL(api.runtime.getURL('/')).origin;
  const isOurs = (d) =>
    d.type !== 'websocket' && (d.initiator ?? d.originUrl ?? d.documentUrl ?? '').startsWith(own);
  watchAddresses(api, ready, isOurs);
  const hooked = ready.then((core) => {
    core.setGuardHooks(() => refreshGuard(api, core).catch((e) => console.error('guard rules:', e)), verdict);
    return core;
  });
  if (hasBlockingWebRequest()) {
    api.webRequest.onBeforeRequest.addListener(
      async (details) => {
        if (!isOurs(details)) return {};
        const core = await ready;
        // The core already checked and counted a job's first URL; every
        // later request of the same chain is a redirect hop.
        const hop = chains.has(details.requestId);
        chains.add(details.requestId);
        if (!(hop ? core.allowsHop(details.url) : core.allowsUrl(details.url))) return { cancel: true };
        const url = new URL(details.url);
        if (api.dns && !isIpLiteral(url.hostname)) {
          try {
            const answer = await api.dns.resolve(url.hostname);
            if (answer.addresses.some((a) => !core.allowsAddress(details.url, a))) return { cancel: true };
          } catch {
            return { cancel: true };
          }
        } else if (isIpLiteral(url.hostname) && !core.allowsAddress(details.url, url.hostname.replace(/^\[|\]$/g, ''))) {
          return { cancel: true };
        }
        return {};
      },
      { urls: ['<all_urls>'] },
      ['blocking'],
    );
    return hooked.then(() => undefined);
  }
  return hooked.then((core) => installChromeRules(api, core));
}
