// Makes the bindings' default wasm path choose between the two builds of scripts/build-web.sh:
// `pushforward_relaxed_bg.wasm` (relaxed-SIMD multiply-adds: one fused FMA per multiply-add
// where the CPU has it) where the browser validates a relaxed-SIMD module, else
// `pushforward_bg.wasm` (plain simd128). `globalThis.PUSHFORWARD_WASM_BUILD = 'simd128' |
// 'relaxed'`, set before `init()`, forces one (tests; the CPU workers use it to load the page's
// build). `init({ module_or_path })` with an explicit file still works as wasm-bindgen documents.
// Fails the build if the glue no longer has the one default path it rewrites.
//
// usage: node scripts/choose-wasm-build.mjs www/pkg/pushforward.js
import fs from 'node:fs';

const [jsPath] = process.argv.slice(2);
let js = fs.readFileSync(jsPath, 'utf8');
const DEFAULT = /new URL\(["']pushforward_bg\.wasm["'],\s*import\.meta\.url\)/g;
const found = js.match(DEFAULT) ?? [];
if (found.length !== 1) {
  console.error(`[choose-wasm-build] expected the default wasm path once in ${jsPath}, found ${found.length} times`);
  process.exit(1);
}
// (module (func (param v128 v128 v128) (result v128)
//   local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd))
const PROBE = [0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0,
  10, 13, 1, 11, 0, 32, 0, 32, 1, 32, 2, 253, 133, 2, 11];
const chooser = `function pushforwardRelaxed(){const f=globalThis.PUSHFORWARD_WASM_BUILD;`
  + `return f==="relaxed"||f!=="simd128"&&WebAssembly.validate(new Uint8Array([${PROBE}]))}\n`;
// Both paths stay literal `new URL("…", import.meta.url)` expressions, the form bundlers (Vite,
// webpack, esbuild) recognise and copy as assets.
js = chooser + js.replace(DEFAULT, '(pushforwardRelaxed()?new URL("pushforward_relaxed_bg.wasm",import.meta.url):new URL("pushforward_bg.wasm",import.meta.url))');
fs.writeFileSync(jsPath, js);
