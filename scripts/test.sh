#!/usr/bin/env bash
# Every test: the Node tests of the scripts and the test harness (no build needed), the Rust
# tests (CPU kernels, GPU kernels and sampler on Vulkan — lavapipe here —, weights format,
# solvers, RNG, sampler, CLI, shipped models), then the wasm build and the
# browser tests in headless Chromium. The GPU tests fail without a Vulkan adapter unless
# PUSHFORWARD_SKIP_GPU_TESTS=1 (CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TERM_COLOR=never
# lavapipe warns on every device open when XDG_RUNTIME_DIR is unset (containers, CI).
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/pushforward-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
# Test files are listed by shell globs, not a directory: `node --test tests/browser/` stopped
# working in Node 21 (a directory argument is no longer searched), and Node 20 does not expand
# globs itself. --test-timeout fails a stalled test instead of hanging CI; it also bounds each
# test file as a whole (a file runs as one test in its own process; seen on Node 20), so the
# value is sized for the slowest browser file, not the slowest test (the flag needs Node ≥ 20.11).
echo "== node tests"
node --test --test-reporter=spec --test-timeout=120000 tests/node/*.test.mjs
echo "== cargo test"
cargo test --all-targets
# libtest hides the output of passing tests: say which adapter the GPU tests ran on.
cargo test -q --test gpu_kernels linear_matches_cpu -- --nocapture 2>&1 | grep -E "GPU tests run on|skipping GPU" | head -1
echo "== browser bundle"
bash scripts/build-web.sh
echo "== browser tests (headless Chromium)"
node --test --test-reporter=spec --test-timeout=1200000 tests/browser/*.test.mjs
