#!/usr/bin/env bash
# Issue #17's run on a real GPU, in two halves, so that the device machine (no Rust toolchain,
# no Node, no network) only runs prepared programs:
#
#   bash scripts/device-bench-gpu.sh prepare   # here: the release CLI, the browser bundle's wasm
#                                              # (www/pkg) and Node, compressed into
#                                              # target/device-bench/ (~29 MB, with the GPU test suites), and the Vulkan
#                                              # loader's .deb files in .gl/
#   bash scripts/device-bench-gpu.sh run       # on the device machine: `pushforward bench gpu`,
#                                              # the wasm CPU (1 thread, in Node) and PyTorch
#                                              # on the same GPU, in ≤ 9 minutes
#
# With the device tool: prepare here, then
#   run(command="bash scripts/device-bench-gpu.sh run", carry=[".gl", "target/device-bench", "www/pkg"],
#       timeout_s=600)
# and copy the printed tables into BENCHMARKS.md ("GPU engine on real hardware").
#
# wgpu reaches the GPU through Vulkan: the machine has NVIDIA's driver (its ICD manifest under
# /usr/local/nvidia or /usr/share/vulkan) but may lack the Vulkan loader, which the .deb files
# in .gl/ provide. Where no manifest is found, `run` writes one for libGLX_nvidia.so.0. Without
# any Vulkan driver it says so and fails: nothing else can run wgpu there.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=target/device-bench

case "${1:-}" in
prepare)
  cargo build --release --bin pushforward
  [ -f www/pkg/pushforward_bg.wasm ] || bash scripts/build-web.sh
  # The GPU test suites too: every kernel variant against the CPU oracle on the real adapter.
  tests=$(cargo test --release --no-run --test gpu_kernels --test gpu_sampler 2>&1 | grep -o 'target/release/deps/gpu_[a-z]*-[0-9a-f]*')
  rm -rf "$DIR" && mkdir -p "$DIR/tests"
  xz -6 -T0 -c target/release/pushforward > "$DIR/pushforward.xz"
  for t in $tests; do xz -6 -T0 -c "$t" > "$DIR/tests/$(basename "$t" | sed 's/-[0-9a-f]*$//').xz"; done
  # The tests find models/ through the checkout's path at build time (CARGO_MANIFEST_DIR).
  pwd > "$DIR/tests/manifest_dir"
  xz -9 -T0 -c "$(readlink -f "$(command -v node)")" > "$DIR/node.xz"
  # The Vulkan loader (and GL dispatch libraries) as .deb files, for the machine's x86-64.
  grep -qx '/.gl/' "$(git rev-parse --git-dir)/info/exclude" 2>/dev/null || echo /.gl/ >> "$(git rev-parse --git-dir)/info/exclude"
  if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    mkdir -p .gl /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    apt-get $o update >/dev/null
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  fi
  du -sh "$DIR" .gl www/pkg
  ;;
run)
  [ -f "$DIR/pushforward.xz" ] || { echo "$DIR is missing: run 'prepare' here and carry $DIR" >&2; exit 1; }
  out="${OUT:-$DIR}"
  tmp=$(mktemp -d)
  xz -dc "$DIR/pushforward.xz" > "$tmp/pushforward" && chmod +x "$tmp/pushforward"
  if ! ldconfig -p | grep -q 'libvulkan\.so\.1 '; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  icd=""
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd*.json /usr/share/vulkan/icd.d/nvidia_icd*.json \
    /etc/vulkan/icd.d/nvidia_icd*.json; do
    [ -f "$f" ] && { icd=$f; break; }
  done
  if [ -z "$icd" ]; then
    glx=$(ldconfig -p | awk '/libGLX_nvidia\.so\.0 /{print $NF; exit}')
    if [ -n "$glx" ]; then
      icd="$tmp/nvidia_icd.json"
      printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$glx" > "$icd"
    fi
  fi
  if [ -n "$icd" ]; then export VK_ICD_FILENAMES="$icd" VK_DRIVER_FILES="$icd"; echo "Vulkan ICD: $icd"; else echo "no NVIDIA Vulkan ICD found; trying the system's" >&2; fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv || true
  lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | cut -c1-200 || true
  echo "== GPU tests on this adapter (every linear variant forced, against the CPU oracle)"
  built=$(cat "$DIR/tests/manifest_dir" 2>/dev/null || true)
  if [ -n "$built" ] && [ ! -e "$built" ]; then mkdir -p "$(dirname "$built")" && ln -s "$PWD" "$built"; fi
  # The CLI tests run the binary where it was built (CARGO_BIN_EXE_pushforward).
  mkdir -p "${built:-$PWD}/target/release" && cp "$tmp/pushforward" "${built:-$PWD}/target/release/pushforward"
  for t in "$DIR"/tests/*.xz; do
    xz -dc "$t" > "$tmp/$(basename "$t" .xz)" && chmod +x "$tmp/$(basename "$t" .xz)"
    timeout 60 "$tmp/$(basename "$t" .xz)" --test-threads=1 2>&1 | grep -E '^test |test result|GPU tests run on|panicked|assert' \
      | tee -a "$out/gpu-tests.txt" || echo "$(basename "$t" .xz): exit $?"
  done
  echo "== pushforward bench gpu"
  timeout 240 "$tmp/pushforward" bench gpu 2>&1 | tee "$out/bench-gpu.txt" || echo "bench gpu: exit $?"
  # PEERS=0 stops here (a rerun that changed only GPU kernels: the peers were measured already).
  [ "${PEERS:-1}" = 0 ] && exit 0
  echo "== wasm CPU (the browser bundle, 1 thread, Node)"
  nodebin=$(command -v node || true)
  if [ -z "$nodebin" ]; then xz -dc "$DIR/node.xz" > "$tmp/node" && chmod +x "$tmp/node" && nodebin="$tmp/node"; fi
  timeout 90 "$nodebin" --experimental-wasm-relaxed-simd scripts/bench-wasm-node.mjs www/pkg 2>&1 | tee "$out/bench-wasm.txt" || echo "wasm bench: exit $?"
  echo "== PyTorch peer on the same GPU"
  PYTHONUNBUFFERED=1 timeout 75 python3 train/bench_gpu_peer.py models/moons.safetensors models/mnist.safetensors 2>&1 \
    | tee "$out/bench-torch.txt" || echo "torch peer: exit $?"
  ;;
*)
  echo "usage: bash scripts/device-bench-gpu.sh prepare | run" >&2
  exit 2
  ;;
esac
