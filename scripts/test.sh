#!/usr/bin/env bash
# Every test: the Node tests of the scripts and the test harness (no build needed), the Rust
# tests (CPU kernels, GPU kernels and sampler on Vulkan — lavapipe here —, weights format,
# solvers, RNG, sampler, CLI, shipped models), then the wasm build and the
# browser tests in headless Chromium. The GPU tests fail without a Vulkan adapter unless
# PUSHFORWARD_SKIP_GPU_TESTS=1; every skip is counted and printed, and under CI it is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
# Under CI (CI set, not empty/0/false; .ci/run sets it) nothing may be skipped or shortened:
# a run that skipped the GPU tests, fuzzed fewer cases than the default or rewrote fixtures
# would pass while checking less than it claims.
ci=0
case "$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')" in '' | 0 | false) ;; *) ci=1 ;; esac
if [ "$ci" = 1 ]; then
  refused=()
  [ -z "${PUSHFORWARD_SKIP_GPU_TESTS+set}" ] ||
    refused+=("PUSHFORWARD_SKIP_GPU_TESTS=$PUSHFORWARD_SKIP_GPU_TESTS (CI runs every GPU test, on lavapipe if nothing else)")
  [ -z "${PUSHFORWARD_WRITE_FIXTURES+set}" ] ||
    refused+=("PUSHFORWARD_WRITE_FIXTURES=$PUSHFORWARD_WRITE_FIXTURES (CI checks the committed fixtures, never rewrites them)")
  if [ -n "${PUSHFORWARD_FUZZ_CASES+set}" ]; then
    # The default the fuzzer documents (tests/fuzz_common/mod.rs, DEFAULT_CASES) is CI's minimum.
    fuzz_min=$(sed -n 's/^pub const DEFAULT_CASES: u64 = \([0-9_]*\);.*/\1/p' tests/fuzz_common/mod.rs | tr -d _)
    [ -n "$fuzz_min" ] || { echo "test.sh: DEFAULT_CASES not found in tests/fuzz_common/mod.rs" >&2; exit 2; }
    cases=$(printf '%s' "$PUSHFORWARD_FUZZ_CASES" | sed 's/^0*//')
    if ! [[ "$PUSHFORWARD_FUZZ_CASES" =~ ^[0-9]+$ ]] || { [ "${#cases}" -le 18 ] && [ "${cases:-0}" -lt "$fuzz_min" ]; }; then
      refused+=("PUSHFORWARD_FUZZ_CASES=$PUSHFORWARD_FUZZ_CASES (CI fuzzes at least the default $fuzz_min cases)")
    fi
  fi
  if [ "${#refused[@]}" -gt 0 ]; then
    echo "test.sh: refusing to run under CI (CI=$CI) with:" >&2
    printf '  %s\n' "${refused[@]}" >&2
    echo "Unset them (or run outside CI) to test." >&2
    exit 2
  fi
fi
bash scripts/setup.sh --tests
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
# A skipped GPU test passes in libtest's eyes: each one appends a line to this log
# (tests/gpu_common), counted after the run.
export PUSHFORWARD_GPU_SKIP_LOG="$PWD/target/pushforward-gpu-skips.txt"
mkdir -p target && rm -f "$PUSHFORWARD_GPU_SKIP_LOG"
cargo_status=0
# --workspace: the kernels crate (kernels/) has its own unit tests.
cargo test --workspace --all-targets || cargo_status=$?
gpu_skips=0
if [ -f "$PUSHFORWARD_GPU_SKIP_LOG" ]; then
  gpu_skips=$(awk '{print $1, $2}' "$PUSHFORWARD_GPU_SKIP_LOG" | sort -u | wc -l)
  awk '{print "  skipped:", $1, $2}' "$PUSHFORWARD_GPU_SKIP_LOG" | sort -u
fi
echo "GPU tests skipped: $gpu_skips"
[ "$cargo_status" = 0 ] || exit "$cargo_status"
if [ "$ci" = 1 ] && [ "$gpu_skips" -gt 0 ]; then
  echo "test.sh: $gpu_skips GPU tests were skipped under CI (CI=$CI); CI must run them all" >&2
  exit 1
fi
# libtest hides the output of passing tests: say which adapter the GPU tests ran on.
cargo test -q --test gpu_kernels linear_matches_cpu -- --nocapture 2>&1 | grep -E "GPU tests run on|skipping GPU" | head -1
echo "== browser bundle"
bash scripts/build-web.sh
echo "== browser tests (headless Chromium)"
node --test --test-reporter=spec --test-timeout=1200000 tests/browser/*.test.mjs
echo "== browser tests (Firefox ESR, WebDriver BiDi: the CPU-backend files)"
# Headless Firefox here has no WebGPU adapter; these files run on the wasm CPU backend.
PUSHFORWARD_BROWSER=firefox node --test --test-reporter=spec --test-timeout=1200000 \
  tests/browser/engines.test.mjs tests/browser/workers.test.mjs tests/browser/wasm_builds.test.mjs tests/browser/cache.test.mjs \
  tests/browser/wasm_kernels.test.mjs
