// The redirect guard: no request of this extension may reach a forbidden
// target, at the first hop or after any redirect. The core checks the first
// URL itself; redirects are followed by the browser, so each browser's own
// mechanism stops forbidden hops before they are sent:
//
// - Firefox: a blocking webRequest listener asks the core's policy about
//   every request of this extension (every hop), and resolves the host with
//   the dns API to refuse names that point into a private network.
// - Chrome (no blocking webRequest in MV3): declarativeNetRequest session
//   rules block this extension's requests to private, loopback, link-local
//   and local-name hosts, with allow rules only for a development build's
//   test targets.
//
// What remains is written down in the README ("Redirects and DNS").

const hasBlockingWebRequest = () =>
  typeof globalThis.browser !== 'undefined' && globalThis.browser.webRequest?.onBeforeRequest;

// Hosts that are never public, as RE2 patterns over the URL (Chrome
// normalises hosts before matching: lower case, IPv4 in dotted decimal).
// Several small rules, because each compiled pattern must stay under 2 KB.
const HOST = '^[a-z][a-z0-9+.-]*://([^/@]*@)?';
const END = '(:[0-9]+)?([/?#]|$)';
const PRIVATE_URLS = [
  `${HOST}(localhost|[^/:]*\\.(localhost|local|internal|lan|home\\.arpa|localdomain|intranet|corp|home))${END}`,
  `${HOST}[^/:.\\[]+${END}`, // single-label names
  `${HOST}(0|10|127)\\.[0-9.]+${END}`,
  `${HOST}(169\\.254|192\\.168|172\\.(1[6-9]|2[0-9]|3[01])|192\\.0\\.[02])\\.[0-9.]+${END}`,
  `${HOST}(100\\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])|198\\.1[89]|22[4-9]|2[3-5][0-9])\\.[0-9.]+${END}`,
  `${HOST}\\[`, // every IPv6 literal: no redirect of ours needs one
];

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function installChromeRules(api, core) {
  const ours = { tabIds: [-1], initiatorDomains: [api.runtime.id], resourceTypes: ['xmlhttprequest', 'other'] };
  const rules = PRIVATE_URLS.map((regexFilter, i) => ({
    id: 1 + i,
    priority: 1,
    action: { type: 'block' },
    condition: { ...ours, regexFilter },
  }));
  // The owner's blocked sites, with their subdomains, at every hop.
  const blocked = core.blockedDomains();
  if (blocked.length > 0) {
    rules.push({
      id: 90,
      priority: 3,
      action: { type: 'block' },
      condition: { ...ours, requestDomains: blocked },
    });
  }
  core.allowList().forEach((hostPort, i) => {
    rules.push({
      id: 100 + i,
      priority: 2,
      action: { type: 'allow' },
      condition: { ...ours, regexFilter: `^https?://${escapeRe(hostPort)}([/?#]|$)` },
    });
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

// After the owner changes the blocked sites: Chrome's rules are rebuilt
// (Firefox's listener asks the core each time, so it needs nothing).
export function refreshGuard(api, core) {
  if (hasBlockingWebRequest()) return Promise.resolve();
  return installChromeRules(api, core);
}

// Returns a promise that settles once the guard is in force; the core starts
// only after it.
export function installGuard(api, ready) {
  if (hasBlockingWebRequest()) {
    const own = new URL(api.runtime.getURL('/')).origin;
    api.webRequest.onBeforeRequest.addListener(
      async (details) => {
        const from = details.originUrl ?? details.documentUrl ?? '';
        if (!from.startsWith(own) || details.type === 'websocket') return {};
        const core = await ready;
        if (!core.allowsUrl(details.url)) return { cancel: true };
        const url = new URL(details.url);
        if (api.dns && !isIpLiteral(url.hostname)) {
          try {
            const answer = await api.dns.resolve(url.hostname);
            if (answer.addresses.some((a) => !core.allowsAddress(details.url, a))) return { cancel: true };
          } catch {
            return { cancel: true };
          }
        }
        return {};
      },
      { urls: ['<all_urls>'] },
      ['blocking'],
    );
    return Promise.resolve();
  }
  return ready.then((core) => installChromeRules(api, core));
}
