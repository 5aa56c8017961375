// Schemathesis, a property-based tester, generates requests from the
// relay's OpenAPI document and sends them to the real relay binary: every
// answer must have a documented status, content type and schema, and no
// schema-valid request may be refused (positive_data_acceptance). What the
// document cannot say (a query parameter that needs another, names refused
// by rule) is in tests/schemathesis/hooks.py; the checks turned off and why
// are in tests/schemathesis/schemathesis.toml.
//
// The relay and Schemathesis run together in a network namespace with
// loopback only: generated target names can reach no DNS server and no
// other machine.
//
// What it found when first run, each now fixed, so each is a check seen to
// fail: `"timeout_ms": 7315.0` refused (JSON Schema counts it an integer),
// TRACE on /v1/raw answered 400 instead of 405, header names and base64
// bodies unconstrained in the document, and a URL of 8,192 characters that
// normalizing made longer. Checked once more with the dependentRequired on
// session_ttl_secs taken out of the document: it failed on /v1/fetch.
//
// The seed is fixed so that CI is repeatable; SPAREBAND_FUZZ_SEED picks
// another, SPAREBAND_FUZZ_EXAMPLES more examples per operation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const relayBin = join(root, 'target', 'debug', 'spareband-relay');
// Installed by scripts/setup.sh, pinned there.
const st = join(root, 'target', 'schemathesis', 'bin', 'st');
const seed = process.env.SPAREBAND_FUZZ_SEED ?? '20261204';
const examples = process.env.SPAREBAND_FUZZ_EXAMPLES ?? '60';
// Inside the namespace nothing else listens, so a fixed port is free.
const PORT = 18443;

test('Schemathesis finds no undocumented answer and no schema-valid request refused', { timeout: 300_000 }, async (t) => {
  assert.ok(existsSync(st), `${st} is missing: run scripts/setup.sh`);
  const dir = mkdtempSync(join(tmpdir(), 'spareband-fuzz-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const data = join(dir, 'data');
  const key = execFileSync(relayBin, ['keys', 'create', '--name', 'fuzz', '--data-dir', data]).toString().trim();

  // One shell in a fresh network namespace: loopback up, the relay in the
  // background, Schemathesis in front; the relay stops with the shell.
  const script = [
    'set -e',
    'ip link set lo up',
    `"${relayBin}" serve --insecure-http --listen 127.0.0.1:${PORT} --data-dir "${data}" >"${dir}/relay.log" 2>&1 &`,
    'relay=$!',
    'trap "kill $relay 2>/dev/null" EXIT',
    'set +e',
    `"${st}" --config-file "${root}/tests/schemathesis/schemathesis.toml" --no-color run ` +
      `http://127.0.0.1:${PORT}/v1/openapi.json --wait-for-schema 60 ` +
      `-H "Authorization: Bearer $SPAREBAND_FUZZ_KEY" --exclude-path /v1/node ` +
      `--seed ${seed} --max-examples ${examples} --workers 1`,
  ].join('\n');
  const child = spawn('unshare', ['-n', 'bash', '-c', script], {
    cwd: dir,
    env: {
      ...process.env,
      SPAREBAND_FUZZ_KEY: key,
      SCHEMATHESIS_HOOKS: join(root, 'tests', 'schemathesis', 'hooks.py'),
      RUST_LOG: 'warn',
    },
  });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const code = await new Promise((resolve) => child.on('close', resolve));
  const summary = output.split('\n').filter((l) => /SUMMARY|Tested|generated|passed|failures|❌|Seed/.test(l));
  t.diagnostic(summary.join(' | '));
  // Generated values can be megabytes long: each line is cut for the report.
  const report = output.split('\n').map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l)).join('\n');
  assert.equal(code, 0, report.slice(-30000));
  assert.match(output, /Tested: (1[0-9])/, 'every operation but /v1/node was tested');
});
