#!/usr/bin/env bash
# The benchmark's peers (issue #6), pinned, installed next to the project's own npm packages
# with `--no-save`: package.json / package-lock.json stay untouched, so `npm ci` and `npm test`
# never need them. Skips the install when every pinned version is already present. Called by
# `npm run bench`; the bench page loads them from node_modules through scripts/serve.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS=(
  onnxruntime-web@1.30.0
  @tensorflow/tfjs@4.22.0
  @tensorflow/tfjs-backend-webgpu@4.22.0
  @tensorflow/tfjs-backend-wasm@4.22.0
)

missing=()
for spec in "${PEERS[@]}"; do
  name=${spec%@*}
  want=${spec##*@}
  have=$(node -p "try { require('./node_modules/${name}/package.json').version } catch { '' }" 2>/dev/null || true)
  [ "$have" = "$want" ] || missing+=("$spec")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[bench-setup] installing ${missing[*]}"
  # --no-save: not in package.json, so `npm ci` (which would prune them) stays the test set-up.
  npm install --no-save --no-audit --no-fund "${PEERS[@]}"
else
  echo "[bench-setup] peers present: ${PEERS[*]}"
fi
