"""Write the fixtures the Rust tests read (tests/fixtures/).

    pushforward-make-fixtures [--models moons,8gaussians,...] [--only-data] [--only-fresh]

* <model>_forward.safetensors for each shipped model in models/: x [8, ...], t [8]
  (includes 0 and 1), y [8] (F32 class ids incl. the null class; conditional models
  only), h [8] (flow maps only: the step lengths, t + h <= 1) and v = forward output of the shipped weights, computed in float64 from the
  weights read back from the file, stored as F32.
* <dataset>_data.safetensors: a, b = two independent 10,000-point draws [10000, 2]
  (seeds distinct from training and evaluation); the Rust quality test's floor is SW2(a, b).
* fresh_mlp.safetensors / fresh_unet.safetensors: freshly initialised (seeded, untrained)
  models of non-default sizes, exported with export_model, plus their forward fixtures
  fresh_mlp_forward.safetensors / fresh_unet_forward.safetensors.
"""

import argparse
import json
import os

import numpy as np
import torch

from pushforward_train.data import RANGES, sample2d
from pushforward_train.export import export_model, load_model, write_safetensors
from pushforward_train.models import build_model
from pushforward_train.paths import REPO

FIX = os.path.join(REPO, "tests", "fixtures")
MODELS = os.path.join(REPO, "models")
T8 = [0.0, 1.0, 0.5, 0.25, 0.75, 0.1, 0.9, 0.333]
H8 = [1.0, 0.0, 0.5, 0.75, 0.25, 0.9, 0.1, 0.5]
# Four independent draws: SW2 at 10k points is noisy (floors from single pairs range 0.013–0.023
# for moons), so the Rust test averages the floor over all pairs and the model over all draws.
DATA_SEEDS = {"a": 2_000_001, "b": 2_000_002, "c": 2_000_003, "d": 2_000_004}


def forward_fixture(weights_path, out_path, seed=0):
    model, cfg = load_model(weights_path, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    arch = cfg["arch"]
    n = 8
    if arch["kind"] == "mlp":
        x = torch.randn(n, arch["data_dim"], generator=g, dtype=torch.float64) * 1.5
    else:
        d = cfg["data"]
        x = torch.randn(n, d["channels"], d["height"], d["width"], generator=g, dtype=torch.float64)
    # store x in F32 and compute from exactly those F32 values
    x = x.float().double()
    t = torch.tensor(T8, dtype=torch.float64).float().double()
    tensors = {"x": x.float().numpy(), "t": t.float().numpy()}
    nc = cfg["num_classes"]
    y = None
    if nc > 0:
        ids = [i % nc for i in range(n)]
        ids[1] = nc  # null class
        ids[5] = nc
        y = torch.tensor(ids, dtype=torch.long)
        tensors["y"] = y.float().numpy()
    h = None
    if getattr(model, "flow_map", False):
        # The step lengths of a flow map's average velocity, with t + h <= 1.
        h = torch.tensor(H8, dtype=torch.float64).float().double()
        tensors["h"] = h.float().numpy()
    with torch.no_grad():
        v = model(x, t, y) if h is None else model(x, t, y, h)
    tensors["v"] = v.float().numpy()
    meta = {"source": os.path.basename(weights_path), "computed_in": "float64 (torch), stored F32",
            "torch": torch.__version__}
    write_safetensors(out_path, tensors, meta)
    # sanity: float32 forward agrees closely
    m32, _ = load_model(weights_path, dtype=torch.float32)
    with torch.no_grad():
        v32 = m32(x.float(), t.float(), y) if h is None else m32(x.float(), t.float(), y, h.float())
    err = (v32.double() - v).abs().max().item()
    print(f"{out_path}: v {tuple(v.shape)} |v|max {v.abs().max().item():.3f} f32-vs-f64 max err {err:.2e}")


def data_fixtures():
    for ds in ["moons", "8gaussians", "checkerboard", "spirals"]:
        t = {k: sample2d(ds, 10_000, s) for k, s in DATA_SEEDS.items()}
        p = os.path.join(FIX, f"{ds}_data.safetensors")
        write_safetensors(p, t, {"dataset": ds, "seeds": json.dumps(DATA_SEEDS),
                                 "generator": "train/data.py sample2d"})
        from pushforward_train.evaluate import sw2

        print(f"{p}: floor SW2(a, b) = {sw2(t['a'], t['b']):.5f}")


FRESH = {
    "fresh_mlp": {
        "arch": {"kind": "mlp", "data_dim": 2, "width": 48, "depth": 2, "time_embed_dim": 16,
                 "time_scale": 1000.0},
        "num_classes": 3,
        "data": {"kind": "points2d", "range": [[-3.0, 3.0], [-3.0, 3.0]]},
        "path": "linear",
        "seed": 11,
    },
    "fresh_unet": {
        "arch": {"kind": "unet", "in_channels": 3, "base_channels": 16, "channel_mult": [1, 2],
                 "num_res_blocks": 2, "groups": 4, "time_scale": 1000.0},
        "num_classes": 2,
        "data": {"kind": "image", "channels": 3, "height": 8, "width": 8, "range": [-1.0, 1.0]},
        "path": "cosine",
        "seed": 12,
    },
}


def fresh_fixtures():
    for name, spec in FRESH.items():
        torch.manual_seed(spec["seed"])
        model = build_model(spec["arch"], spec["num_classes"])
        # default PyTorch init leaves GroupNorm at identity and some outputs tiny; perturb every
        # parameter a little so that every tensor (incl. norms and embeddings) matters
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        p = os.path.join(FIX, f"{name}.safetensors")
        export_model(model, spec["arch"], p, spec["data"], spec["num_classes"], spec["path"],
                     {"dataset": "none (untrained, seeded init)", "train_steps": 0, "seed": spec["seed"],
                      "metrics": {}})
        forward_fixture(p, os.path.join(FIX, f"{name}_forward.safetensors"), seed=spec["seed"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", help="comma-separated shipped model names (default: all in models/)")
    ap.add_argument("--only-data", action="store_true")
    ap.add_argument("--only-fresh", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(FIX, exist_ok=True)
    if args.only_data:
        data_fixtures()
        return
    if args.only_fresh:
        fresh_fixtures()
        return
    data_fixtures()
    fresh_fixtures()
    if args.models:
        names = args.models.split(",")
    else:
        names = sorted(f[:-12] for f in os.listdir(MODELS)
                       if f.endswith(".safetensors") and f != "mnist_classifier.safetensors")
    for n in names:
        forward_fixture(os.path.join(MODELS, f"{n}.safetensors"), os.path.join(FIX, f"{n}_forward.safetensors"))


if __name__ == "__main__":
    main()
