"""Write tests/fixtures/mnist_reference.safetensors: an independent (PyTorch) reference solve of
models/mnist.safetensors that the Rust sampler must reproduce.

    pushforward-make-reference [--dtype float64|float32] [--out PATH]

* x0 [10, 1, 28, 28]: the Rust sampler's seeded initial noise for seed 3, drawn by train/rng.py
  (a NumPy port of kernels/src/rng.rs: Philox4x32-10 + Box–Muller in f32, bit for bit);
* labels 0..9 (one sample per class, `Labels::Cycle`), classifier-free guidance w = 2:
  v = v_u + w·(v_c − v_u) with v_c = model(x, t, y), v_u = model(x, t, null), null = num_classes;
* Heun (train/solvers.py `_step_heun`) on the uniform 5-step grid t = 0, 0.2, …, 1, computed in
  float64 (default) by train/models.py from the stored F32 weights and the F32 x0;
* frames [6, 10, 1, 28, 28]: the state at each grid time (frames[0] = x0, frames[5] = samples);
* samples [10, 1, 28, 28] = frames[5]. All stored F32.

The Rust test `mnist_reference_samples_are_current_and_recognisable` (tests/shipped_models.rs)
checks x0, every frame and the samples against this file; the browser test
(tests/browser/webgpu.test.mjs) compares the wasm backends against `samples`.
"""

import argparse
import json
import os

import numpy as np
import torch

from pushforward_train.export import load_model, read_safetensors, write_safetensors
from pushforward_train.paths import REPO
from pushforward_train.rng import initial_noise
from pushforward_train.solvers import _step_heun

N, SEED, STEPS, GUIDANCE = 10, 3, 5, 2.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(REPO, "models", "mnist.safetensors"))
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "mnist_reference.safetensors"))
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    args = ap.parse_args()
    torch.set_num_threads(2)
    dtype = getattr(torch, args.dtype)

    model, cfg = load_model(args.model, dtype=dtype)
    d = cfg["data"]
    nc = cfg["num_classes"]
    assert cfg["path"]["kind"] == "linear" and nc == 10, cfg
    x0 = initial_noise(SEED, N, (d["channels"], d["height"], d["width"]))  # float32, as Rust draws it
    y = torch.arange(N) % nc
    null = torch.full((N,), nc, dtype=torch.long)

    def velocity(x, t):
        tt = torch.full((N,), t, dtype=dtype)
        v = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, null]))
        vc, vu = v[:N], v[N:]
        return vu + GUIDANCE * (vc - vu)

    # uniform grid as src/ode/grid.rs: t_i = i/steps (here in float64, not rounded to f32)
    grid = [i / STEPS for i in range(STEPS + 1)]
    x = torch.from_numpy(x0).to(dtype)
    frames = [x]
    with torch.no_grad():
        for i in range(STEPS):
            t, h = grid[i], grid[i + 1] - grid[i]
            x = _step_heun(velocity, x, t, h)
            frames.append(x)
    frames = torch.stack(frames).float().numpy()
    samples = frames[-1]

    meta = {
        "script": "train/make_reference.py",
        "model": os.path.relpath(args.model, REPO),
        "options": f"n {N}, labels 0..9 (one per class), heun {STEPS} steps on the uniform grid "
                   f"t = i/{STEPS}, classifier-free guidance w {GUIDANCE:g} (v = v_u + w(v_c - v_u), "
                   f"null class {nc}), seed {SEED}",
        "x0": "train/rng.py initial_noise(seed 3): src/rng.rs Philox4x32-10 + f32 Box-Muller, "
              "stream STREAM_INIT, element i*784 + j",
        "computed_in": f"{args.dtype} (torch, train/models.py, train/solvers.py _step_heun), stored F32",
        "frames": "states at t = " + ", ".join(f"{t:g}" for t in grid),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    write_safetensors(args.out, {"x0": x0, "frames": frames, "samples": samples}, meta)

    # read back; cross-check the container with the safetensors package when installed
    back, bmeta = read_safetensors(args.out)
    assert np.array_equal(back["samples"], samples) and np.array_equal(back["x0"], x0) and bmeta == meta
    try:
        from safetensors.numpy import load_file

        st = load_file(args.out)
        assert all(np.array_equal(st[k], back[k]) for k in back)
        checked = "safetensors package reads it back identically"
    except ImportError:
        checked = "safetensors package not installed"
    print(f"{os.path.relpath(args.out, REPO)}: x0 {x0.shape} |x0|max {np.abs(x0).max():.3f}, "
          f"samples range [{samples.min():.3f}, {samples.max():.3f}], frames {frames.shape}; {checked}")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
