#!/usr/bin/env bash
# Issue #17's run on a real GPU, in two halves, so that the device machine (which may have no
# Rust toolchain and no network) only runs a prepared binary:
#
#   bash scripts/device-bench-gpu.sh prepare   # here: the release CLI and the Vulkan loader
#                                              # into target/device-bench/ (~8 MB)
#   bash scripts/device-bench-gpu.sh run       # on the device machine, with target/device-bench
#                                              # carried: `pushforward bench gpu`, ≤ 9 minutes
#
# With the device tool: prepare here, then
#   run(command="bash scripts/device-bench-gpu.sh run", carry=["target/device-bench"], timeout_s=600)
# and copy the printed tables into BENCHMARKS.md ("GPU engine on real hardware").
#
# wgpu reaches the GPU through Vulkan: the NVIDIA driver provides the ICD (libGLX_nvidia.so.0)
# and usually its manifest (nvidia_icd.json); where the manifest is missing, `run` writes one.
# Without any Vulkan driver it says so and fails: nothing else can run wgpu there.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=target/device-bench

case "${1:-}" in
prepare)
  cargo build --release --bin pushforward
  rm -rf "$DIR" && mkdir -p "$DIR/lib"
  cp target/release/pushforward "$DIR/"
  loader=$(ldconfig -p | awk '/libvulkan\.so\.1 /{print $NF; exit}')
  [ -n "$loader" ] || { echo "no libvulkan.so.1 here: bash scripts/setup.sh installs it" >&2; exit 1; }
  cp -L "$loader" "$DIR/lib/libvulkan.so.1"
  du -sh "$DIR"
  ;;
run)
  [ -x "$DIR/pushforward" ] || { echo "$DIR/pushforward is missing: run 'prepare' here and carry $DIR" >&2; exit 1; }
  # The machine's own loader first, ours where it has none.
  if ! ldconfig -p | grep -q 'libvulkan\.so\.1 '; then export LD_LIBRARY_PATH="$PWD/$DIR/lib:${LD_LIBRARY_PATH:-}"; fi
  icd=""
  for f in /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json; do
    [ -f "$f" ] && { icd=$f; break; }
  done
  if [ -z "$icd" ]; then
    glx=$(ldconfig -p | awk '/libGLX_nvidia\.so\.0 /{print $NF; exit}')
    if [ -n "$glx" ]; then
      icd="$PWD/$DIR/nvidia_icd.json"
      printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$glx" > "$icd"
    fi
  fi
  if [ -n "$icd" ]; then export VK_ICD_FILENAMES="$icd"; echo "Vulkan ICD: $icd"; else echo "no NVIDIA Vulkan ICD found; trying the system's" >&2; fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  out="${OUT:-$DIR}/bench-gpu.txt"
  timeout 540 "$DIR/pushforward" bench gpu 2>&1 | tee "$out"
  ;;
*)
  echo "usage: bash scripts/device-bench-gpu.sh prepare | run" >&2
  exit 2
  ;;
esac
