#!/usr/bin/env bash
# Every test: Rust unit/integration tests (CPU kernels, weights format, solvers, RNG, shipped
# models, CLI) and a compile check of the wasm build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TERM_COLOR=never
echo "== cargo test"
cargo test --all-targets
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "== cargo check --target wasm32-unknown-unknown"
  cargo check --lib --target wasm32-unknown-unknown
fi
