#!/usr/bin/env bash
# Every test: Rust unit/integration tests (CPU kernels, GPU kernels and sampler on Vulkan —
# lavapipe here —, weights format, solvers, RNG, shipped models, CLI) and a compile check of the
# wasm build. The GPU tests fail without a Vulkan adapter unless PUSHFORWARD_SKIP_GPU_TESTS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TERM_COLOR=never
# lavapipe warns on every device open when XDG_RUNTIME_DIR is unset (containers, CI).
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/pushforward-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
echo "== cargo test"
cargo test --all-targets
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "== cargo check --target wasm32-unknown-unknown"
  cargo check --lib --target wasm32-unknown-unknown
fi
