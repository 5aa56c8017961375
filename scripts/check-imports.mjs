// Checks that no crate of the workspace has an import circle between its
// files: for each crate, a graph of which file names which (through
// `crate::…`, `super::…` or a sibling module), and every strongly connected
// part of more than one file is reported. Test modules (`#[cfg(test)]` to
// the end of a file, and `*_tests.rs`/`tests.rs` files) are left out: a test
// may reach anywhere. Exit 1 with the circles named, 0 when there is none.
//
// It can fail: run on the tree before issue 12's redesign it reports
// relay jobs <-> nodes::registry <-> nodes::stream, relay conns <-> metrics
// and wasm core <-> job.
//
// Run: node scripts/check-imports.mjs [crate-dir ...]
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative, dirname, basename } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const crates = process.argv.slice(2).length ? process.argv.slice(2) : ['protocol', 'ledger', 'relay', 'node', 'wasm'];

function files(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.rs') ? [p] : [];
  });
}

// The module path of a file: src/a/b.rs and src/a/b/mod.rs are a::b.
function modPath(src, file) {
  const rel = relative(src, file).replace(/\.rs$/, '').split('/');
  if (rel.at(-1) === 'mod' || (rel.length === 1 && (rel[0] === 'lib' || rel[0] === 'main'))) rel.pop();
  return rel;
}

function withoutTests(text) {
  const i = text.search(/#\[cfg\(test\)\]\s*mod\s+\w+\s*\{/);
  return i < 0 ? text : text.slice(0, i);
}

let circles = [];
for (const c of crates) {
  const src = join(root, c, 'src');
  if (!existsSync(src)) continue;
  const all = files(src).filter((f) => !/(^|_)tests\.rs$/.test(basename(f)) && !f.includes('/bin/'));
  const byPath = new Map(all.map((f) => [modPath(src, f).join('::'), f]));
  // Names a module re-exports (`pub use child::{A, B as C}`), so that a path
  // through the re-export counts as naming the file that defines the item.
  const reexports = new Map();
  for (const f of all) {
    const me = modPath(src, f);
    const names = new Map();
    const text = withoutTests(readFileSync(f, 'utf8'));
    for (const m of text.matchAll(/\bpub use\s+([\w:]+?)(?:::\{([^}]*)\}|\s+as\s+(\w+))?\s*;/g)) {
      const base = m[1].split('::');
      const absolute = (p) => (p[0] === 'crate' ? p.slice(1) : p[0] === 'super' ? [...me.slice(0, -1), ...p.slice(1)] : p[0] === 'self' ? [...me, ...p.slice(1)] : [...me, ...p]);
      if (m[2] !== undefined) {
        for (const item of m[2].split(',').map((x) => x.trim()).filter(Boolean)) {
          const [path, alias] = item.split(/\s+as\s+/);
          const parts = path.split('::');
          names.set(alias ?? parts.at(-1), absolute([...base, ...parts]));
        }
      } else {
        names.set(m[3] ?? base.at(-1), absolute(base));
      }
    }
    reexports.set(me.join('::'), names);
  }
  // The file that owns a path: the longest prefix that is a file, followed
  // through that file's re-exports.
  const owner = (parts, depth = 0) => {
    for (let n = parts.length; n >= 0; n -= 1) {
      const k = parts.slice(0, n).join('::');
      if (!byPath.has(k)) continue;
      const via = reexports.get(k)?.get(parts[n]);
      if (via && depth < 8) return owner([...via, ...parts.slice(n + 1)], depth + 1) ?? k;
      return k;
    }
    return null;
  };
  const edges = new Map();
  for (const f of all) {
    const me = modPath(src, f);
    const key = me.join('::');
    const text = withoutTests(readFileSync(f, 'utf8')).replace(/\/\/.*$/gm, '');
    const out = new Set();
    const add = (parts) => {
      const o = owner(parts);
      if (o !== null && o !== key) out.add(o);
    };
    for (const m of text.matchAll(/\bcrate((?:::\w+)+)/g)) add(m[1].slice(2).split('::'));
    for (const m of text.matchAll(/\b((?:super::)+)(\w+(?:::\w+)*)/g)) {
      const ups = m[1].split('super::').length - 1;
      // `super` is the parent module, whether the file is a mod.rs or not.
      add([...me.slice(0, me.length - ups), ...m[2].split('::')]);
    }
    // A parent naming its own children is not counted: a `mod.rs` (and the
    // crate root, which holds the shared state every handler reads) is where
    // its children are put together.
    edges.set(key, [...out].filter((o) => !(key === '' || o.startsWith(`${key}::`))));
  }
  // Tarjan's strongly connected components.
  let index = 0;
  const idx = new Map(); const low = new Map(); const stack = []; const on = new Set();
  const visit = (v) => {
    idx.set(v, index); low.set(v, index); index += 1; stack.push(v); on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const part = [];
      let w;
      do { w = stack.pop(); on.delete(w); part.push(w); } while (w !== v);
      if (part.length > 1) circles.push(`${c}: ${part.map((p) => p || 'lib').sort().join(' <-> ')}`);
    }
  };
  for (const v of edges.keys()) if (!idx.has(v)) visit(v);
}
if (circles.length) {
  console.error(`import circles:\n  ${circles.join('\n  ')}`);
  process.exit(1);
}
console.log(`no import circles in ${crates.join(', ')}`);
