#!/usr/bin/env bash
# Builds the browser bundle into www/pkg/: the crate for wasm32 (release, LTO, simd128), the
# JS bindings from the wasm-bindgen CLI pinned to Cargo.lock's version, then wasm-opt from the
# npm package `binaryen` (Debian's binaryen 108 emits modules Chromium rejects), and the JS glue
# minified with terser (exports and the wasm import names are kept), then the 353 imports renamed
# to short names in both (scripts/shorten-imports.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --lib --release --target wasm32-unknown-unknown
rm -rf www/pkg
wasm-bindgen --target web --out-dir www/pkg target/wasm32-unknown-unknown/release/pushforward.wasm
./node_modules/.bin/wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-sign-ext \
  --enable-nontrapping-float-to-int --enable-reference-types --enable-mutable-globals --enable-multivalue \
  www/pkg/pushforward_bg.wasm -o www/pkg/pushforward_bg.wasm
./node_modules/.bin/terser www/pkg/pushforward.js --module --compress --mangle -o www/pkg/pushforward.js
node scripts/shorten-imports.mjs www/pkg/pushforward_bg.wasm www/pkg/pushforward.js
raw=$(stat -c %s www/pkg/pushforward_bg.wasm)
gz=$(cat www/pkg/pushforward_bg.wasm www/pkg/pushforward.js | gzip -9 | wc -c)
echo "[build-web] www/pkg: wasm ${raw} bytes; wasm+js gzipped ${gz} bytes"
