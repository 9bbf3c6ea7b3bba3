"""The class-agreement / Frechet-distance trade-off of the sampler's guidance options on mnist
and emoji (issue #18 item 5): plain classifier-free guidance at several scales, guidance on an interval of
t (`--guidance-from/--guidance-to`), and CFG-Zero* (`--cfg-zero-star`, `--zero-init-steps`).

The samples come from the crate's own sampler (the release CLI, CPU backend), not from PyTorch:
this measures what users get. Each row: 2,000 class-balanced samples (`--label all` cycles the
classes, 200 each, noise seed 4242), class agreement of the independent classifier
(`classifier.py`) with the requested class, and the Frechet distance in its features against the
2,000-sample protocol of `evaluate.py` (`fd_reference_sets`: five 4,000-digit references, the
floor from disjoint real 2,000-digit sets). With `--dataset emoji`: one sample per held-out emoji
with its category (`--label c` per category, so the samples have the held-out proportions), the
emoji classifier's agreement, and the FD against the held-out set with the floor of
`evaluate.evaluate_emoji`. Not run by tests or CI.

    cargo build --release --bin pushforward
    nice -n 10 python -m pushforward_train.guidance_table [--steps 4] [--out models/mnist_guidance.json]
    nice -n 10 python -m pushforward_train.guidance_table --dataset emoji [--steps 4]
    nice -n 10 python -m pushforward_train.guidance_table --solver ab2 --steps 8 --out models/mnist_guidance_ab2.json
"""

import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import torch

from pushforward_train import classifier as clf
from pushforward_train.data import load_emoji, load_mnist
from pushforward_train.evaluate import emoji_floor_sets, fd_reference_sets, frechet
from pushforward_train.paths import REPO

# (label, CLI flags) for each row
SETTINGS = [
    ("w 1 (no guidance)", ["--guidance", "1"]),
    ("w 2", ["--guidance", "2"]),
    ("w 3", ["--guidance", "3"]),
    ("w 2, t in [0.2, 1]", ["--guidance", "2", "--guidance-from", "0.2"]),
    ("w 3, t in [0.2, 1]", ["--guidance", "3", "--guidance-from", "0.2"]),
    ("w 2, t in [0, 0.6]", ["--guidance", "2", "--guidance-to", "0.6"]),
    ("w 1.5, t in [0.2, 1]", ["--guidance", "1.5", "--guidance-from", "0.2"]),
    ("w 2, t in [0.35, 1]", ["--guidance", "2", "--guidance-from", "0.35"]),
    ("w 1.25, t in [0.2, 1]", ["--guidance", "1.25", "--guidance-from", "0.2"]),
    ("w 1.3, t in [0.2, 1]", ["--guidance", "1.3", "--guidance-from", "0.2"]),
    ("w 1.4, t in [0.2, 1]", ["--guidance", "1.4", "--guidance-from", "0.2"]),
    ("w 1.45, t in [0.2, 1]", ["--guidance", "1.45", "--guidance-from", "0.2"]),
    ("w 1.35, t in [0.2, 1]", ["--guidance", "1.35", "--guidance-from", "0.2"]),
    ("w 1.5, t in [0.5, 1]", ["--guidance", "1.5", "--guidance-from", "0.5"]),
    ("w 2.5, t in [0.2, 1]", ["--guidance", "2.5", "--guidance-from", "0.2"]),
    ("w 2, CFG-Zero*", ["--guidance", "2", "--cfg-zero-star", "true"]),
    ("w 3, CFG-Zero*", ["--guidance", "3", "--cfg-zero-star", "true"]),
    ("w 2, CFG-Zero* + zero-init 1 step", ["--guidance", "2", "--cfg-zero-star", "true", "--zero-init-steps", "1"]),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=["mnist", "emoji"], default="mnist")
    ap.add_argument("--model", help="default models/<dataset>.safetensors")
    ap.add_argument("--solver", default="heun", help="the CLI's --solver (heun: 2 NFE per step; ab2: 1)")
    ap.add_argument("--steps", type=int, default=4, help="solver steps (with guidance each NFE runs the doubled batch)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=4242, help="noise seed (mnist; emoji adds the category): other "
                                                           "seeds are other draws of the same setting")
    ap.add_argument("--out", help="default models/<dataset>_guidance.json")
    ap.add_argument("--only", help="run only the settings whose label contains this text; the other rows "
                                   "of an existing --out file are kept")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cli = os.path.join(REPO, "target", "release", "pushforward")
    args.model = args.model or os.path.join(REPO, "models", f"{args.dataset}.safetensors")
    args.out = args.out or os.path.join(REPO, "models", f"{args.dataset}_guidance.json")
    if args.dataset == "emoji":
        md = load_emoji(0)
        cnet, _ = clf.load_or_train_emoji(md)
        counts = np.bincount(md["y_test"], minlength=cnet.head.out_features)
        labels = np.repeat(np.arange(len(counts)), counts)
        refs = [clf.features(cnet, md["x_test"])]
        sets = emoji_floor_sets(md, len(counts))  # the floor of evaluate_emoji
        floors = [frechet(clf.features(cnet, md["x_train"][ix]), refs[0]) for ix in sets]
        info = {"reference": f"the {len(labels)} held-out emoji", "floor_sets": len(sets)}
        shape = (3, 32, 32)
        runs = [(["--label", str(c), "--n", str(k), "--seed", str(args.seed + c)], k) for c, k in enumerate(counts)]
    else:
        md = load_mnist(0)
        cnet, _ = clf.load_or_train(md)
        refs, floor_parts, _, info = fd_reference_sets(cnet, md)
        floors = [v for part in floor_parts for v in part]
        labels = np.arange(args.n) % 10
        shape = (1, 28, 28)
        runs = [(["--label", "all", "--n", str(args.n), "--seed", str(args.seed)], args.n)]
    floor = float(np.mean(floors))
    print(f"floor {floor:.3f} ({min(floors):.3f}-{max(floors):.3f}, {len(floors)} sets)", flush=True)
    kept = {}
    if args.only and os.path.exists(args.out):
        with open(args.out) as f:
            kept = {r["setting"]: r for r in json.load(f)["rows"]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in SETTINGS:
            if args.only and args.only not in name:
                if name in kept:
                    rows.append(kept[name])
                continue
            npy = os.path.join(tmp, "s.npy")
            t0 = time.time()
            xs = []
            for run_flags, k in runs:
                cmd = [cli, "sample", "--model", args.model, "--solver", args.solver, "--steps", str(args.steps),
                       "--out", os.path.join(tmp, "s.png"), "--npy", npy, *run_flags, *flags]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "RAYON_NUM_THREADS": "1"})
                xs.append(np.load(npy).reshape(k, *shape))
            secs = time.time() - t0
            x = np.clip(np.concatenate(xs), -1, 1).astype(np.float32)
            agree = float((clf.predict(cnet, x) == labels).mean())
            feats = clf.features(cnet, x)
            fd = float(np.mean([frechet(feats, r) for r in refs]))
            rows.append({"setting": name, "flags": flags, "class_agreement": agree, "fd": fd,
                         "fd_over_floor": fd / floor, "sample_seconds": secs})
            print(f"{name:38s} agreement {100 * agree:6.2f}%  FD {fd:7.3f} = {fd / floor:5.2f}x floor  "
                  f"[{secs:.0f} s]", flush=True)
    out = {"model": os.path.relpath(args.model, REPO), "solver": args.solver, "steps": args.steps, "n": len(labels),
           "noise_seed": args.seed if args.dataset == "mnist" else f"{args.seed} + category", "floor_mean": floor, "floor_range": [min(floors), max(floors)],
           "protocol": info, "rows": rows}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
