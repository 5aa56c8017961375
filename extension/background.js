// The extension's background: a thin host for the Rust core (pkg/, built from
// wasm/). It registers every listener synchronously at the top level, so a
// Chrome service worker or a Firefox event page woken by an event finds them,
// then loads the core with init().then(...): Chrome refuses top-level await
// and dynamic import() in a service worker module.
import init, { NodeCore } from './pkg/spareband_wasm.js';
import { installGuard, refreshGuard } from './guard.js';

const api = globalThis.browser ?? globalThis.chrome;
const BACKSTOP_ALARM = 'spareband-backstop';

let resolveCore;
const ready = new Promise((resolve) => { resolveCore = resolve; });

// Firefox: the redirect guard must be registered now, before any fetch.
const guarded = installGuard(api, ready);

api.runtime.onInstalled.addListener((details) => {
  ready.then((core) => {
    if (details.reason === 'install' && core.status().state === 'needs_consent') {
      api.tabs.create({ url: api.runtime.getURL('consent.html') });
    }
  });
});

// If the browser unloaded the background, the alarm brings it back and the
// core reconnects; it also rolls the daily counters over at midnight.
api.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === BACKSTOP_ALARM) ready.then((core) => core.tick());
});

api.idle.onStateChanged.addListener((state) => {
  ready.then((core) => core.setIdleState(state));
});

api.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  if (sender.id !== api.runtime.id) return false;
  ready.then((core) => {
    try {
      switch (msg?.type) {
        case 'status':
          return sendResponse({ ok: true, status: core.status() });
        case 'setSharing':
          return sendResponse({ ok: true, status: core.setSharing(Boolean(msg.on)) });
        case 'updateSettings': {
          const status = core.updateSettings(msg.settings ?? {});
          return refreshGuard(api, core).then(() => sendResponse({ ok: true, status }));
        }
        default:
          return sendResponse({ ok: false, error: `unknown message ${msg?.type}` });
      }
    } catch (e) {
      // The core throws one kind of Error (NodeError in wasm/src/error.rs):
      // its message is the owner's words; code and retryable travel beside.
      return sendResponse({
        ok: false,
        error: String(e?.message ?? e),
        code: e?.code ?? 'internal',
        retryable: Boolean(e?.retryable),
      });
    }
  });
  return true; // answered asynchronously
});

api.alarms.get(BACKSTOP_ALARM).then((existing) => {
  if (!existing) api.alarms.create(BACKSTOP_ALARM, { periodInMinutes: 1 });
});

init()
  .then(() => api.storage.local.get('node'))
  .then((saved) => {
    const core = new NodeCore(saved.node ?? null, (state) => {
      api.storage.local.set({ node: state });
    });
    resolveCore(core);
    return Promise.all([api.idle.queryState(60), guarded]).then(([state]) => {
      core.setIdleState(state);
      core.start();
    });
  })
  .catch((e) => console.error('Spareband could not start:', e));
