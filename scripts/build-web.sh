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
# The CPU worker pool (a wasm-bindgen snippet, also the workers' entry point) ships too.
for f in www/pkg/snippets/*/src/*.js; do
  ./node_modules/.bin/terser "$f" --module --compress --mangle -o "$f"
done
raw=$(stat -c %s www/pkg/pushforward_bg.wasm)
# What a visitor downloads, each file gzipped on its own (as a static host serves them).
gz=0
for f in www/pkg/pushforward_bg.wasm www/pkg/pushforward.js www/pkg/snippets/*/src/*.js; do
  gz=$((gz + $(gzip -9 -c "$f" | wc -c)))
done
echo "[build-web] www/pkg: wasm ${raw} bytes; wasm + JS glue + worker snippet, each gzipped: ${gz} bytes"
