// Renames the wasm module's imports from wasm-bindgen's long names
// (`__wbg_then_656f253a5dd7d8ea`, 353 of them, ~13 KB) to short ones (`_0`, `_1`, …) in both
// the .wasm import section and the JS glue's import object: ~9 KB less gzipped, since each
// long name was stored twice and compresses poorly. Run by scripts/build-web.sh after wasm-opt
// and terser, on both wasm builds at once (they share one glue, so they must import the same
// names: checked). It checks what it relies on — every import is a function of the glue module
// and each name stands exactly once in the JS — and fails the build otherwise, so a wasm-bindgen
// upgrade that changes the glue cannot produce a silently broken bundle.
//
// usage: node scripts/shorten-imports.mjs www/pkg/pushforward_bg.wasm [more.wasm …] www/pkg/pushforward.js
import fs from 'node:fs';
import { leb, encodeLeb } from './wasm-leb.mjs';

const args = process.argv.slice(2);
const jsPath = args.pop();
const wasmPaths = args;
let js = fs.readFileSync(jsPath, 'utf8');
const fail = (msg) => {
  console.error(`[shorten-imports] ${msg}`);
  process.exit(1);
};

const str = (s) => Buffer.concat([encodeLeb(Buffer.byteLength(s)), Buffer.from(s)]);

// Short names (`_0`, `_1`, …, `_a`, …) that the JS does not already use anywhere.
const taken = new Set(js.match(/[\w$]+/g));
let counter = 0;
function nextName() {
  for (;;) {
    const name = `_${(counter++).toString(36)}`;
    if (!taken.has(name)) return name;
  }
}

// The short name of each long one, chosen while reading the first module.
const renamed = new Map();

function rewrite(wasmPath, first) {
  const wasm = fs.readFileSync(wasmPath);
  let pos = 8;
  let done = false;
  const parts = [wasm.subarray(0, 8)];
  while (pos < wasm.length) {
    const start = pos;
    const id = wasm[pos++];
    let size;
    [size, pos] = leb(wasm, pos);
    const end = pos + size;
    if (id !== 2) {
      parts.push(wasm.subarray(start, end));
      pos = end;
      continue;
    }
    let count, p = pos;
    [count, p] = leb(wasm, p);
    if (!first && count !== renamed.size) fail(`${wasmPath} has ${count} imports, the first build ${renamed.size}`);
    const entries = [encodeLeb(count)];
    for (let i = 0; i < count; i++) {
      let len;
      [len, p] = leb(wasm, p);
      const module = wasm.toString('utf8', p, p + len);
      p += len;
      [len, p] = leb(wasm, p);
      const field = wasm.toString('utf8', p, p + len);
      p += len;
      const kind = wasm[p++];
      let type;
      [type, p] = leb(wasm, p);
      if (kind !== 0) fail(`import ${module}.${field} is not a function`);
      if (module !== './pushforward_bg.js') fail(`import from an unexpected module ${module}`);
      let short = renamed.get(field);
      if (first) {
        short = nextName();
        const uses = [...js.matchAll(new RegExp(`(?<![\\w$])${field.replace(/\$/g, '\\$')}(?![\\w$])`, 'g'))];
        if (uses.length !== 1) fail(`${field} stands ${uses.length} times in ${jsPath} (expected once)`);
        js = js.slice(0, uses[0].index) + short + js.slice(uses[0].index + field.length);
        renamed.set(field, short);
      } else if (short === undefined) {
        fail(`${wasmPath} imports ${field}, which the first build does not`);
      }
      entries.push(str(module), str(short), Buffer.from([kind]), encodeLeb(type));
    }
    if (p !== end) fail('import section has trailing bytes');
    const body = Buffer.concat(entries);
    parts.push(Buffer.from([2]), encodeLeb(body.length), body);
    pos = end;
    done = true;
  }
  if (!done) fail(`no import section in ${wasmPath}`);
  fs.writeFileSync(wasmPath, Buffer.concat(parts));
}

wasmPaths.forEach((w, i) => rewrite(w, i === 0));
fs.writeFileSync(jsPath, js);
