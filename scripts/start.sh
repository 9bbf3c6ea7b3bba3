#!/usr/bin/env bash
# The demo. Until the browser build lands, this samples the default model with the native CLI
# and writes PNGs you can open.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --bin pushforward
mkdir -p demo-output
model=${MODEL:-models/moons.safetensors}
if [ ! -f "$model" ]; then
  echo "no $model yet; sampling needs a trained model (see train/README.md)"; exit 1
fi
./target/release/pushforward info --model "$model" | head -1
./target/release/pushforward sample --model "$model" --solver heun --steps 8 --n 20000 \
  --trajectories 1 --out demo-output/samples.png
if [ -f models/mnist.safetensors ]; then
  ./target/release/pushforward sample --model models/mnist.safetensors --steps 10 --guidance 2 \
    --n 50 --out demo-output/mnist.png
fi
echo "open $(pwd)/demo-output/samples.png"
