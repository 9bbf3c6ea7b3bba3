// What a visitor downloads for each of the two wasm builds in www/pkg (scripts/build-web.sh):
// the module, the JS bindings and the wasm-bindgen snippets (the CPU worker pool, the model
// cache), each gzipped on its own at level 9 (Node's zlib), as a static host serves them. The
// one measure of the bundle: build-web.sh prints it, tests/browser/bundle.test.mjs holds it to
// its budget, and the bench reports it.
//
//   node scripts/bundle-size.mjs   (prints one line per build)
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function bundleSizes() {
  const pkg = path.join(root, 'www/pkg');
  const gz = (file) => zlib.gzipSync(fs.readFileSync(file), { level: 9 }).length;
  const snippets = fs.readdirSync(path.join(pkg, 'snippets'), { recursive: true })
    .filter((f) => f.endsWith('.js')).map((f) => path.join(pkg, 'snippets', f));
  const glue = [path.join(pkg, 'pushforward.js'), ...snippets].reduce((sum, f) => sum + gz(f), 0);
  return ['pushforward_bg.wasm', 'pushforward_relaxed_bg.wasm'].map((build) => {
    const wasm = path.join(pkg, build);
    return { build, wasmBytes: fs.statSync(wasm).size, gzipped: gz(wasm) + glue };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const { build, wasmBytes, gzipped } of bundleSizes()) {
    console.log(`[build-web] www/pkg/${build}: ${wasmBytes} bytes; with the JS bindings and snippets, each gzipped: ${gzipped} bytes`);
  }
}
