// The relay's OpenAPI document against the OpenAPI 3.1 schema itself
// (@seriousme/openapi-schema-validator, which also resolves every $ref).
// Checked once with the /v1/raw operations written as $ref to a component,
// as they were before: the validator refused the document.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Validator } from '@seriousme/openapi-schema-validator';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const doc = JSON.parse(readFileSync(join(root, 'relay/src/api/openapi.json'), 'utf8'));

test('the OpenAPI document is valid OpenAPI 3.1, every reference resolving', async () => {
  const validator = new Validator();
  const res = await validator.validate(structuredClone(doc));
  assert.equal(res.valid, true, JSON.stringify(res.errors, null, 2));
  assert.equal(validator.version, '3.1');
  // Every operation answers with documented statuses, never "default" alone.
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === 'parameters') continue;
      const statuses = Object.keys(op.responses);
      assert.ok(statuses.some((s) => /^\d{3}$/.test(s)), `${method} ${path}: ${statuses}`);
    }
  }
});
