// The built manifests (dist/chrome, dist/firefox, made by
// scripts/build-extension.mjs before the node tests in scripts/test.sh)
// carry only what their browser accepts, and the extension's words are
// complete in every language it ships.
//
// Chrome's key and permission lists are those of its MV3 manifest and
// permissions reference; Firefox's, those of MDN's manifest.json and
// permissions pages (web-ext lint, also in npm test, checks Firefox's
// against its own schema). Checked once with the Firefox build keeping
// minimum_chrome_version, and once with a message missing from the German
// file: each failed here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const read = (...p) => JSON.parse(readFileSync(join(root, ...p), 'utf8'));

const COMMON_KEYS = ['manifest_version', 'name', 'version', 'description', 'default_locale', 'icons',
  'action', 'options_ui', 'background', 'permissions', 'host_permissions', 'content_security_policy'];
const ACCEPTS = {
  chrome: {
    keys: [...COMMON_KEYS, 'minimum_chrome_version'],
    permissions: ['storage', 'alarms', 'idle', 'declarativeNetRequestWithHostAccess', 'webRequest'],
    background: ['service_worker', 'type'],
  },
  firefox: {
    keys: [...COMMON_KEYS, 'browser_specific_settings'],
    permissions: ['storage', 'alarms', 'idle', 'webRequest', 'webRequestBlocking', 'dns'],
    background: ['scripts', 'type'],
  },
};

for (const browser of ['chrome', 'firefox']) {
  test(`the ${browser} manifest carries only what ${browser} accepts`, () => {
    const file = join(root, 'dist', browser, 'manifest.json');
    assert.ok(existsSync(file), `${file} is missing: run npm run build`);
    const m = JSON.parse(readFileSync(file, 'utf8'));
    const accepts = ACCEPTS[browser];
    for (const key of Object.keys(m)) assert.ok(accepts.keys.includes(key), `${browser} does not take "${key}"`);
    for (const p of m.permissions) assert.ok(accepts.permissions.includes(p), `${browser} does not know permission "${p}"`);
    for (const key of Object.keys(m.background)) {
      assert.ok(accepts.background.includes(key), `${browser} does not take background.${key}`);
    }
    if (browser === 'chrome') {
      // A WebSocket keeps a service worker alive from Chrome 116 on, and
      // Web Crypto signs with Ed25519 from Chrome 137 (the core's key and
      // receipts, wasm/src/crypto.rs): the node relies on both.
      assert.equal(m.minimum_chrome_version, '137');
    } else {
      assert.match(m.browser_specific_settings.gecko.strict_min_version, /^\d+\.\d+$/);
    }
    // Every __MSG_…__ names a message of the default language.
    const messages = read('extension', '_locales', m.default_locale, 'messages.json');
    for (const [, key] of JSON.stringify(m).matchAll(/__MSG_(\w+)__/g)) {
      assert.ok(messages[key], `no message ${key} for the manifest`);
    }
  });
}

test('every language has every message, with the same placeholders', () => {
  const langs = readdirSync(join(root, 'extension', '_locales'));
  assert.ok(langs.length >= 2, `${langs}`);
  const en = read('extension', '_locales', 'en', 'messages.json');
  for (const lang of langs) {
    const messages = read('extension', '_locales', lang, 'messages.json');
    assert.deepEqual(Object.keys(messages).sort(), Object.keys(en).sort(), `${lang} is not complete`);
    for (const [key, entry] of Object.entries(en)) {
      const names = (e) => Object.keys(e.placeholders ?? {}).sort();
      assert.deepEqual(names(messages[key]), names(entry), `${lang}: ${key}'s placeholders`);
      for (const name of names(entry)) {
        assert.match(messages[key].message, new RegExp(`\\$${name}\\$`, 'i'), `${lang}: ${key} leaves out $${name}$`);
      }
    }
  }
});

test('every message the pages name exists', () => {
  const en = read('extension', '_locales', 'en', 'messages.json');
  const dir = join(root, 'extension');
  for (const file of readdirSync(dir).filter((f) => /\.(html|js)$/.test(f))) {
    const text = readFileSync(join(dir, file), 'utf8');
    const named = [
      ...[...text.matchAll(/data-i18n(?:-\w+)?="(\w+)"/g)].map((x) => x[1]),
      ...[...text.matchAll(/\bt\('(\w+)'/g)].map((x) => x[1]),
    ];
    for (const key of named) assert.ok(en[key], `${file} names ${key}, which _locales/en does not hold`);
  }
});
