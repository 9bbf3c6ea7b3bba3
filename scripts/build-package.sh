#!/usr/bin/env bash
# Assembles the npm package in packages/pushforward/ from the browser bundle (www/pkg/, built by
# scripts/build-web.sh) and packs it: target/package/pushforward-VERSION.tgz. The package ships
# the simd128 build only — every browser with wasm SIMD runs it, and the relaxed build would
# double the download (npm pack stays ≤ 400 KB) — so its bindings' relaxed path is pointed at
# the simd128 file. package.json, the types, README and CHANGELOG are committed; pkg/ and the
# element are copied here (and ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=packages/pushforward
[ -f www/pkg/pushforward.js ] || bash scripts/build-web.sh
rm -rf "$dir/pkg" "$dir/pushforward-sampler.js"
mkdir -p "$dir/pkg"
cp www/pkg/pushforward.js www/pkg/pushforward_bg.wasm "$dir/pkg/"
cp -r www/pkg/snippets "$dir/pkg/"
# The element minified like the bindings (its comments are in www/pushforward-sampler.js).
./node_modules/.bin/terser www/pushforward-sampler.js --module --compress --mangle -o "$dir/pushforward-sampler.js"
node -e '
  const fs = require("fs");
  const f = process.argv[1];
  const js = fs.readFileSync(f, "utf8");
  const relaxed = "new URL(\"pushforward_relaxed_bg.wasm\",import.meta.url)";
  if (js.split(relaxed).length !== 2) { console.error("[build-package] the relaxed path is not in the bindings once"); process.exit(1); }
  fs.writeFileSync(f, js.replace(relaxed, "new URL(\"pushforward_bg.wasm\",import.meta.url)"));
' "$dir/pkg/pushforward.js"
mkdir -p target/package
rm -f target/package/*.tgz
(cd "$dir" && npm pack --silent --pack-destination ../../target/package >/dev/null)
tgz=$(ls target/package/*.tgz)
echo "[build-package] $tgz: $(stat -c %s "$tgz") bytes"
