#!/usr/bin/env bash
# Builds the browser bundle into www/pkg/, in two builds of the same crate that share one JS
# glue: `pushforward_bg.wasm` (simd128) and `pushforward_relaxed_bg.wasm` (simd128 +
# relaxed-simd: the CPU micro-kernel's multiply-adds become `f32x4.relaxed_madd`, one FMA where
# the CPU has it). The glue picks the relaxed build where the browser validates it
# (scripts/choose-wasm-build.mjs). Each: the crate for wasm32 with the `web` profile (LTO; the
# kernels crate at opt-level 3, the rest at "z"), the JS bindings from the wasm-bindgen CLI
# pinned to Cargo.lock's version, then wasm-opt from the npm package `binaryen` (Debian's
# binaryen 108 emits modules Chromium rejects) with its inlining off (wasm-opt's inlining grew
# the gzipped module by 20 KB), the functions laid out by Rust path for gzip
# (scripts/order-functions.mjs); the JS glue minified with terser (exports and the wasm import
# names are kept), then the imports renamed to short names in the glue and both modules
# (scripts/shorten-imports.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
# The flags of .cargo/config.toml (RUSTFLAGS replaces them), plus relaxed-simd for the second
# build, whose target directory of its own keeps each build's cache.
# Both builds also drop the machine's Cargo home from the dependency source paths that panic
# locations embed, so the bundle is the same bytes (and size) wherever it is built.
REMAP="--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}/registry/src/="
SIMD_FLAGS="-C target-feature=+simd128 $REMAP"
RELAXED_FLAGS="-C target-feature=+simd128,+relaxed-simd $REMAP"
grep -q 'rustflags = \["-C", "target-feature=+simd128"\]' .cargo/config.toml \
  || { echo "[build-web] .cargo/config.toml's wasm flags changed: update SIMD_FLAGS and RELAXED_FLAGS" >&2; exit 1; }
RUSTFLAGS="$SIMD_FLAGS" cargo build --lib --profile web --target wasm32-unknown-unknown
RUSTFLAGS="$RELAXED_FLAGS" CARGO_TARGET_DIR=target/relaxed cargo build --lib --profile web --target wasm32-unknown-unknown
rm -rf www/pkg /tmp/pushforward-relaxed-$$
wasm-bindgen --target web --out-dir www/pkg target/wasm32-unknown-unknown/web/pushforward.wasm
wasm-bindgen --target web --out-dir /tmp/pushforward-relaxed-$$ target/relaxed/wasm32-unknown-unknown/web/pushforward.wasm
cmp -s www/pkg/pushforward.js /tmp/pushforward-relaxed-$$/pushforward.js \
  || { echo "[build-web] the two builds' JS glue differ" >&2; exit 1; }
FEATURES="--enable-simd --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-reference-types --enable-mutable-globals --enable-multivalue"
# -Oz without inlining (-aimfs/-fimfs/-ocimfs 0: no function is small enough to inline), names
# kept (-g) for the ordering; then reordered by name and stripped (names, producers, and the
# target-features section, which no browser reads: 0.13 KB gzip). --converge repeats the passes
# while they still shrink the module; --low-memory-unused lets wasm-opt fold constant offsets
# into loads and stores, which holds for Rust's wasm layout (the stack occupies the low
# megabyte, growing down towards address 0, and data lies above it): 0.8 KB gzip together.
optimise() { # in out features...
  local in=$1 out=$2; shift 2
  ./node_modules/.bin/wasm-opt -Oz --converge --low-memory-unused -aimfs 0 -fimfs 0 -ocimfs 0 -pii 0 -g "$@" "$in" -o "$out"
  node scripts/order-functions.mjs "$out" "$out"
  ./node_modules/.bin/wasm-opt --reorder-functions-by-name --strip-debug --strip-producers --strip-target-features "$@" "$out" -o "$out"
}
optimise www/pkg/pushforward_bg.wasm www/pkg/pushforward_bg.wasm $FEATURES
optimise /tmp/pushforward-relaxed-$$/pushforward_bg.wasm www/pkg/pushforward_relaxed_bg.wasm $FEATURES --enable-relaxed-simd
rm -rf /tmp/pushforward-relaxed-$$
./node_modules/.bin/terser www/pkg/pushforward.js --module --compress --mangle -o www/pkg/pushforward.js
node scripts/shorten-imports.mjs www/pkg/pushforward_bg.wasm www/pkg/pushforward_relaxed_bg.wasm www/pkg/pushforward.js
node scripts/choose-wasm-build.mjs www/pkg/pushforward.js
# The CPU worker pool (a wasm-bindgen snippet, also the workers' entry point) ships too.
for f in www/pkg/snippets/*/src/*.js; do
  ./node_modules/.bin/terser "$f" --module --compress --mangle -o "$f"
done
# What a visitor downloads for each build, gzipped file by file (scripts/bundle-size.mjs).
node scripts/bundle-size.mjs
