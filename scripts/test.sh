#!/usr/bin/env bash
# Every test: the Rust tests (CPU kernels, weights format, solvers, RNG, sampler, CLI, shipped
# models), then the wasm build and the browser tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TERM_COLOR=never
echo "== cargo test"
cargo test --all-targets
echo "== browser bundle"
bash scripts/build-web.sh
echo "== browser tests (headless Chromium)"
node --test --test-reporter=spec tests/browser/
