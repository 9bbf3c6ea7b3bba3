"""Independent float64 numpy re-implementation of ARCHITECTURE.md, checked against
train/models.py on the exported weights (written from the spec text, not from models.py).

    pushforward-check-reference models/mnist.safetensors tests/fixtures/fresh_unet.safetensors ...
"""

import json
import math

import numpy as np

from pushforward_train.export import read_safetensors


def temb(t, dim, scale):
    half = dim // 2
    f = np.exp(-math.log(10000.0) * np.arange(half) / half)
    a = (scale * t)[:, None] * f[None, :]
    return np.concatenate([np.cos(a), np.sin(a)], 1)


def silu(x):
    return x / (1 + np.exp(-x))


def linear(P, name, x):
    return x @ P[name + ".weight"].T + P[name + ".bias"]


def conv(P, name, x, stride=1):
    w, b = P[name + ".weight"], P[name + ".bias"]
    k = w.shape[2]
    pad = k // 2
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho = (h + 2 * pad - k) // stride + 1
    wo = (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, w.shape[0], ho, wo))
    for dy in range(k):
        for dx in range(k):
            patch = xp[:, :, dy : dy + stride * ho : stride, dx : dx + stride * wo : stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, dy, dx])
    return out + b[None, :, None, None]


def gnorm(P, name, x, g):
    n, c, h, w = x.shape
    xg = x.reshape(n, g, -1)
    mu = xg.mean(-1, keepdims=True)
    var = xg.var(-1, keepdims=True)
    xn = ((xg - mu) / np.sqrt(var + 1e-5)).reshape(n, c, h, w)
    return xn * P[name + ".weight"][None, :, None, None] + P[name + ".bias"][None, :, None, None]


def resblock(P, name, x, emb, g):
    h = conv(P, name + ".conv1", silu(gnorm(P, name + ".norm1", x, g)))
    h = h + linear(P, name + ".temb_proj", emb)[:, :, None, None]
    h = conv(P, name + ".conv2", silu(gnorm(P, name + ".norm2", h, g)))
    s = conv(P, name + ".skip", x) if name + ".skip.weight" in P else x
    return s + h


def unet(P, a, nc, x, t, y):
    g = a["groups"]
    L = len(a["channel_mult"])
    e = linear(P, "time_mlp.2", silu(linear(P, "time_mlp.0", temb(t, a["base_channels"], a["time_scale"]))))
    if nc > 0:
        e = e + P["class_emb.weight"][y]
    emb = silu(e)
    h = conv(P, "conv_in", x)
    skips = []
    for i in range(L):
        for j in range(a["num_res_blocks"]):
            h = resblock(P, f"down.{i}.blocks.{j}", h, emb, g)
        skips.append(h)
        if i < L - 1:
            h = conv(P, f"down.{i}.downsample", h, stride=2)
    h = resblock(P, "mid", h, emb, g)
    for i in reversed(range(L)):
        h = np.concatenate([h, skips.pop()], 1)
        for j in range(a["num_res_blocks"]):
            h = resblock(P, f"up.{i}.blocks.{j}", h, emb, g)
        if i > 0:
            h = conv(P, f"up.{i}.upsample", h.repeat(2, axis=2).repeat(2, axis=3))
    return conv(P, "out_conv", silu(gnorm(P, "out_norm", h, g)))


def mlp(P, a, nc, x, t, y):
    e = temb(t, a["time_embed_dim"], a["time_scale"])
    if nc > 0:
        e = e + P["class_emb.weight"][y]
    h = np.concatenate([x, e], 1)
    for i in range(a["depth"]):
        h = silu(linear(P, f"layers.{i}", h))
    return linear(P, "out", h)


def check(path):
    import torch
    from pushforward_train.export import load_model

    T, meta = read_safetensors(path)
    cfg = json.loads(meta["pushforward"])
    P = {k: v.astype(np.float64) for k, v in T.items()}
    a, nc = cfg["arch"], cfg["num_classes"]
    rng = np.random.default_rng(3)
    n = 3
    if a["kind"] == "mlp":
        x = rng.standard_normal((n, a["data_dim"]))
    else:
        d = cfg["data"]
        x = rng.standard_normal((n, d["channels"], d["height"], d["width"]))
    t = np.array([0.0, 0.37, 1.0])
    y = np.array([0, nc, nc - 1]) if nc > 0 else None
    ref = (mlp if a["kind"] == "mlp" else unet)(P, a, nc, x, t, y)
    m, _ = load_model(path, dtype=torch.float64)
    with torch.no_grad():
        v = m(torch.from_numpy(x), torch.from_numpy(t), None if y is None else torch.from_numpy(y)).numpy()
    err = np.abs(v - ref).max()
    print(f"{path}: max |torch - numpy spec| = {err:.2e} (|v| max {np.abs(ref).max():.3f})")
    assert err < 1e-9, err


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", nargs="+", help="pushforward .safetensors files")
    for p in ap.parse_args().weights:
        check(p)


if __name__ == "__main__":
    main()
