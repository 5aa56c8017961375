// Builds the extension for Chrome and Firefox from the one manifest.json.
//
//   node scripts/build-extension.mjs            release: dist/chrome, dist/firefox
//   node scripts/build-extension.mjs --dev      dist/chrome-dev, dist/firefox-dev, reading
//                                               SPAREBAND_RELAY_URL, SPAREBAND_ALLOW_TARGETS
//                                               and SPAREBAND_AUTOSTART at compile time
//   node scripts/build-extension.mjs --package  release, then dist/spareband-{chrome,firefox}.zip
//
// Steps: cargo (wasm32) -> wasm-bindgen --target web -> wasm-opt when present
// -> stage the extension files and a per-browser manifest.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { zipDirectory } from './zip.mjs';

/**
 * The release core's size limit, gzipped (issue 16): the build fails above
 * it. docs/BENCHMARKS.md says what each part of the core costs.
 */
const WASM_GZIP_LIMIT_KIB = 100;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const args = new Set(argv);
const dev = args.has('--dev');
const pack = args.has('--package');
// For tests: one browser, into a folder of their own.
const only = args.has('--only') ? argv[argv.indexOf('--only') + 1] : null;
const outOverride = args.has('--out') ? argv[argv.indexOf('--out') + 1] : null;
const say = (m) => process.stderr.write(`[build] ${m}\n`);
const run = (cmd, argv, env = process.env) => execFileSync(cmd, argv, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env });

const profile = 'wasm-release';
const cargoArgs = ['build', '-p', 'spareband-wasm', '--target', 'wasm32-unknown-unknown', '--profile', profile];
let env = { ...process.env };
if (dev) {
  cargoArgs.push('--features', 'dev');
} else {
  // A release build must not see the development variables at all.
  for (const k of ['SPAREBAND_RELAY_URL', 'SPAREBAND_ALLOW_TARGETS', 'SPAREBAND_AUTOSTART']) delete env[k];
}
say(`compiling the core (${dev ? 'development' : 'release'} build)`);
run('cargo', cargoArgs, env);

const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, 'target');
const wasmIn = join(targetDir, 'wasm32-unknown-unknown', profile, 'spareband_wasm.wasm');
const pkg = join(targetDir, 'extension-pkg', dev ? 'dev' : 'release');
rmSync(pkg, { recursive: true, force: true });
mkdirSync(pkg, { recursive: true });
run('wasm-bindgen', ['--target', 'web', '--no-typescript', '--out-dir', pkg, wasmIn]);

const wasmOut = join(pkg, 'spareband_wasm_bg.wasm');
// wasm-opt must understand the reference types that rustc and wasm-bindgen
// now emit: binaryen 108 (Debian 12) silently breaks the externref table, so
// only version 116 or newer is used, the npm package's first.
function wasmOpt() {
  for (const cmd of [join(root, 'node_modules', '.bin', 'wasm-opt'), 'wasm-opt']) {
    try {
      const v = execFileSync(cmd, ['--version'], { encoding: 'utf8' });
      const major = Number(/version (\d+)/.exec(v)?.[1] ?? 0);
      if (major >= 116) return cmd;
      say(`${cmd} is binaryen ${major}, too old for this wasm; skipping it`);
    } catch { /* not installed */ }
  }
  return null;
}
const opt = wasmOpt();
if (opt) {
  say('optimising with wasm-opt -Oz');
  run(opt, ['-Oz', '--enable-bulk-memory', '--enable-sign-ext', '--enable-mutable-globals',
    '--enable-nontrapping-float-to-int', '--enable-reference-types', '--enable-multivalue',
    wasmOut, '-o', wasmOut]);
} else {
  say('no usable wasm-opt (npm install, or binaryen 116+): the wasm is left unoptimised');
}
const raw = statSync(wasmOut).size;
const gz = gzipSync(readFileSync(wasmOut), { level: 9 }).length;
say(`wasm: ${(raw / 1024).toFixed(1)} KiB raw, ${(gz / 1024).toFixed(1)} KiB gzipped (limit ${WASM_GZIP_LIMIT_KIB} KiB)`);
// A development build carries test-only calls and is not held to it.
if (!dev && gz > WASM_GZIP_LIMIT_KIB * 1024) {
  say(`the release core is ${(gz / 1024).toFixed(1)} KiB gzipped, over its ${WASM_GZIP_LIMIT_KIB} KiB limit`);
  process.exit(1);
}

const manifest = JSON.parse(readFileSync(join(root, 'manifest.json'), 'utf8'));
const perBrowser = {
  // Chrome runs the background as a service worker and guards redirects
  // with declarativeNetRequest; it has no blocking webRequest or dns API.
  // The non-blocking webRequest events report the address each answer came
  // from (extension/guard.js).
  chrome(m) {
    m.background = { service_worker: m.background.service_worker, type: 'module' };
    delete m.browser_specific_settings;
    m.permissions = m.permissions.filter((p) => !['webRequestBlocking', 'dns'].includes(p));
    return m;
  },
  // Firefox runs it as an event page and guards redirects with a blocking
  // webRequest listener plus the dns API.
  // minimum_chrome_version is Chrome's alone (Firefox has
  // browser_specific_settings.gecko.strict_min_version).
  firefox(m) {
    m.background = { scripts: m.background.scripts, type: 'module' };
    delete m.minimum_chrome_version;
    m.permissions = m.permissions.filter((p) => p !== 'declarativeNetRequestWithHostAccess');
    return m;
  },
};

for (const browser of only ? [only] : ['chrome', 'firefox']) {
  const out = outOverride ?? join(root, 'dist', dev ? `${browser}-dev` : browser);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  cpSync(join(root, 'extension'), out, { recursive: true });
  cpSync(pkg, join(out, 'pkg'), { recursive: true });
  const m = perBrowser[browser](structuredClone(manifest));
  if (dev) m.name = '__MSG_extension_name_dev__';
  writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(m, null, 2)}\n`);
  say(`staged ${relative(root, out)}/`);
  if (pack && !dev) {
    const zip = join(root, 'dist', `spareband-${browser}.zip`);
    zipDirectory(out, zip);
    say(`packaged ${relative(root, zip)}`);
  }
}
if (!outOverride) {
  writeFileSync(join(root, 'dist', dev ? 'wasm-size-dev.json' : 'wasm-size.json'), JSON.stringify({ raw, gzipped: gz }) + '\n');
}
