#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine with Rust and Node: installs only what is
# missing, and says what it did. Called by `npm start` and `npm test` (`--tests`); safe to run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }

# Debian packages the tests and the demo need: Mesa's Vulkan drivers (lavapipe, a software
# Vulkan device) and the Vulkan loader for the GPU engine's tests; headless Chromium for the
# browser tests; with `--tests` (scripts/test.sh), Firefox ESR for the browser tests that run
# in both engines.
APT_PACKAGES=(mesa-vulkan-drivers libvulkan1 chromium)
[ "${1:-}" = "--tests" ] && APT_PACKAGES+=(firefox-esr)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    exit 1
  fi
fi

command -v cargo >/dev/null || { say "cargo not found: install Rust from rustup.rs"; exit 1; }
command -v node >/dev/null || { say "node not found: install Node.js 20+"; exit 1; }

# The wasm target, for the browser build (and the `cargo check` that keeps it compiling).
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# The wasm-bindgen CLI must be exactly the version in Cargo.lock (the generated JS and the
# crate's glue have to agree). Not --locked: the CLI's own lock pins a crate since yanked.
want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ -n "$want" ] && [ "$have" != "$want" ]; then
  say "installing wasm-bindgen-cli $want (was: ${have:-none}); takes a few minutes once"
  cargo install wasm-bindgen-cli --version "$want" --force
fi

# npm packages pinned in package-lock.json (playwright-core drives Debian's Chromium; binaryen
# provides wasm-opt, terser minifies the JS glue). `npm ci` only when node_modules is missing or older than the lock.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund
  touch node_modules
fi
say "ready"
