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
// core reconnects; it also rolls the counters over at midnight and at the
// billing month, and pauses or resumes at the schedule's hours (within the
// alarm's minute).
api.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === BACKSTOP_ALARM) {
    ready.then((core) => {
      reportMetered(core);
      core.tick();
    });
  }
});

api.idle.onStateChanged.addListener((state) => {
  ready.then((core) => core.setIdleState(state));
});

// Metered connections: Chromium says through navigator.connection: when the
// system or the browser asks to save data (saveData), everywhere, and
// mobile data (type) on ChromeOS, the one desktop system that exposes the
// type. Firefox says
// nothing, and the core then treats the connection as not metered (the
// options page says so). Chromium fires no change event when only saveData
// changes, so the value is also read every few seconds.
const METERED_POLL_MS = 5000;
let lastMetered = null;
function reportMetered(core) {
  const c = globalThis.navigator?.connection;
  const metered = c ? c.type === 'cellular' || c.saveData === true : undefined;
  if (metered === lastMetered) return;
  lastMetered = metered;
  core.setMetered(metered);
}
globalThis.navigator?.connection?.addEventListener?.('change', () => ready.then(reportMetered));
if (globalThis.navigator?.connection) setInterval(() => ready.then(reportMetered), METERED_POLL_MS);

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
        case 'shiftClock':
          // Development builds only (the tests' month and day changes): a
          // release core has no shiftClock.
          if (typeof core.shiftClock !== 'function') {
            return sendResponse({ ok: false, error: 'not in this build' });
          }
          core.shiftClock(Number(msg.ms) || 0);
          return sendResponse({ ok: true, status: core.status() });
        case 'checkTargets':
          // Development builds only (the hostile-URL matrix through this
          // browser's URL parser): a release core has no checkTargets.
          if (typeof core.checkTargets !== 'function') {
            return sendResponse({ ok: false, error: 'not in this build' });
          }
          return sendResponse({ ok: true, verdicts: core.checkTargets((msg.urls ?? []).map(String)) });
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
  .then((saved) => NodeCore.create(saved.node ?? null, (state) => {
    api.storage.local.set({ node: state });
  }))
  .then((core) => {
    reportMetered(core);
    resolveCore(core);
    return Promise.all([api.idle.queryState(60), guarded]).then(([state]) => {
      core.setIdleState(state);
      core.start();
    });
  })
  .catch((e) => console.error('Spareband could not start:', e));
