"""Self-check of train.py's checkpoints and --resume (by hand; not run by npm test / CI):

    nice -n 10 pushforward-test-resume            # or: python -m pushforward_train.test_resume

Trains tiny configs in subprocesses (1 thread, in a temporary folder) three ways and compares the
final states with torch.equal: straight through S steps; stopped by --stop-after-steps at S/2 (the
process exits) and continued with --resume; stopped by SIGTERM part-way and continued with
--resume. Model, EMA and AdamW state and the exported EMA weights must be bit-identical.
Cases: moons MLP with minibatch-OT and a small pool (several pool regenerations), a reflow of
models/moons.safetensors (pool reshuffled by the training generator), and a small class-
conditional U-Net on the digits (train/data, or random 28x28 images when they are missing).
Also checks that the provenance counts the segments and sums their wall time, that a resumed
--max-seconds run continues the clock (both segments together end at the budget), that --resume
refuses a changed config or budget, and that a fresh start refuses to overwrite an unfinished
checkpoint.
About a minute on one thread.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from pushforward_train.data import DATA_DIR
from pushforward_train.export import read_safetensors
from pushforward_train.paths import REPO

MOONS = """name = "{name}"
num_classes = 0
[arch]
kind = "mlp"
data_dim = 2
width = {width}
depth = {depth}
time_embed_dim = 32
time_scale = 1000.0
[data]
dataset = "moons"
[path]
kind = "linear"
[train]
seed = 3
steps = {steps}
batch_size = 256
lr = {lr}
warmup_frac = 0.05
schedule = "cosine"
final_lr_frac = 0.02
ema_decay = 0.99
checkpoint_every = 50
log_every = 10
pool = 2000
{extra}
"""

DIGITS = """name = "digits_tiny"
num_classes = 10
[arch]
kind = "unet"
in_channels = 1
base_channels = 8
channel_mult = [1, 2]
num_res_blocks = 1
groups = 4
time_scale = 1000.0
[data]
dataset = "mnist"
split_seed = 0
[path]
kind = "linear"
[train]
seed = 1
steps = 12
batch_size = 16
lr = 1e-3
warmup_frac = 0.1
grad_clip = 1.0
ema_decay = 0.9
label_dropout = 0.2
checkpoint_every = 0
log_every = 1
"""


def train(cfg, tag, tmp, env, extra=(), popen=False):
    cmd = [sys.executable, "-m", "pushforward_train.train", "--config", cfg, "--threads", "1", "--no-eval",
           "--checkpoint-seconds", "0", "--out", os.path.join(tmp, f"{tag}.safetensors"),
           "--checkpoint", os.path.join(tmp, f"{tag}.pt"), *extra]
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def ok(r, what, rc=0):
    if r.returncode != rc:
        sys.exit(f"FAIL {what}: exit {r.returncode} (expected {rc})\n{r.stdout}\n{r.stderr}")


def load(tmp, tag):
    return torch.load(os.path.join(tmp, f"{tag}.pt"), weights_only=True)


def same_state(a, b, where):
    """Every tensor of nested dicts/lists equal (torch.equal); returns the differing paths."""
    if isinstance(a, torch.Tensor):
        return [] if isinstance(b, torch.Tensor) and torch.equal(a, b) else [where]
    if isinstance(a, dict):
        if set(a) != set(b):
            return [f"{where}: keys"]
        return [d for k in a for d in same_state(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, (list, tuple)):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same_state(x, y, f"{where}[{i}]")]
    return [] if a == b else [where]


def compare(tmp, straight, resumed, label):
    a, b = load(tmp, straight), load(tmp, resumed)
    assert a["finished"] and b["finished"] and a["step"] == b["step"], (a["step"], b["step"])
    bad = []
    for k in ("model", "ema", "opt", "rng", "data"):
        bad += same_state(a[k], b[k], k)
    ta, ma = read_safetensors(os.path.join(tmp, f"{straight}.safetensors"))
    tb, mb = read_safetensors(os.path.join(tmp, f"{resumed}.safetensors"))
    bad += [f"export.{k}" for k in ta if not np.array_equal(ta[k], tb[k])]
    if bad:
        diffs = [f"{k}: max |d| {(a['model'][k] - b['model'][k]).abs().max().item():.3e}"
                 for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])][:5]
        sys.exit(f"FAIL {label}: differs in {bad[:10]} {diffs}")
    prov = json.loads(mb["pushforward"])["provenance"]
    segs = prov["train_segment_seconds"]
    assert prov["train_segments"] == len(b["segments"]) == 2, prov
    assert abs(sum(segs) - prov["train_seconds"]) < 0.3, prov
    assert json.loads(ma["pushforward"])["provenance"]["train_segments"] == 1
    n = sum(v.numel() for v in a["model"].values())
    print(f"  {label}: step {b['step']}, {len(a['model'])} model tensors ({n} values) + EMA + AdamW "
          f"state + RNG + data state + exported weights bit-identical; provenance {prov['train_segments']} "
          f"segments, train_seconds {prov['train_seconds']} = {' + '.join(str(s) for s in segs)}", flush=True)


def case(cfg, tag, tmp, env, steps, label, sigterm_after):
    t0 = time.time()
    ok(train(cfg, f"{tag}_straight", tmp, env), "straight run")
    # 1. stopped at S/2 by --stop-after-steps (the process exits), then --resume
    r = train(cfg, f"{tag}_stop", tmp, env, ["--stop-after-steps", str(steps // 2)])
    ok(r, "--stop-after-steps")
    c = load(tmp, f"{tag}_stop")
    assert c["step"] == steps // 2 and not c["finished"], (c["step"], c["finished"])
    r = train(cfg, f"{tag}_stop", tmp, env, ["--resume"])
    ok(r, "--resume")
    assert f"resumed" in r.stdout, r.stdout
    compare(tmp, f"{tag}_straight", f"{tag}_stop", f"{label}, stopped at {steps // 2}/{steps} + --resume")
    # 2. SIGTERM once the log shows `sigterm_after` steps: the step finishes, a checkpoint is written
    p = train(cfg, f"{tag}_term", tmp, env, popen=True)
    log = []
    for line in p.stdout:
        log.append(line)
        if f"] step {sigterm_after} " in line:
            p.send_signal(signal.SIGTERM)
    p.wait()
    if not os.path.exists(os.path.join(tmp, f"{tag}_term.pt")):
        sys.exit(f"FAIL SIGTERM: exit {p.returncode}, no checkpoint\n{''.join(log)}")
    c = load(tmp, f"{tag}_term")
    if p.returncode != 128 + signal.SIGTERM or c["finished"]:
        sys.exit(f"FAIL SIGTERM: exit {p.returncode}, finished {c['finished']}\n{''.join(log)}")
    at = c["step"]
    r = train(cfg, f"{tag}_term", tmp, env, ["--resume"])
    ok(r, "--resume after SIGTERM")
    compare(tmp, f"{tag}_straight", f"{tag}_term", f"{label}, SIGTERM at step {at}/{steps} + --resume")
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory() as tmp:
        moons = os.path.join(tmp, "moons_tiny.toml")
        with open(moons, "w") as f:
            f.write(MOONS.format(name="moons_tiny", width=32, depth=3, steps=200, lr=2e-3,
                                 extra='coupling = "ot"\not_group = 128'))
        print("moons MLP 32x3, minibatch OT, pool 2000 (regenerated every 7 steps), 200 steps:", flush=True)
        s = case(moons, "moons", tmp, env, 200, "moons", 60)
        print(f"  ({s:.0f}s)")

        # --resume refuses another config; a fresh start refuses to overwrite an unfinished run
        r = train(moons, "moons_x", tmp, env, ["--stop-after-steps", "20"])
        ok(r, "--stop-after-steps 20")
        changed = os.path.join(tmp, "changed.toml")
        with open(changed, "w") as f:
            f.write(MOONS.format(name="moons_tiny", width=32, depth=3, steps=200, lr=1e-3,
                                 extra='coupling = "ot"\not_group = 128'))
        r = train(changed, "moons_x", tmp, env, ["--resume"])
        assert r.returncode != 0 and "refusing to resume" in r.stderr and "train.lr" in r.stderr, r.stderr
        print("  --resume with lr 1e-3 instead of 2e-3 refused: " + r.stderr.strip().splitlines()[1].strip())
        r = train(moons, "moons_x", tmp, env, ["--resume", "--steps", "300"])
        assert r.returncode != 0 and "steps: checkpoint 200, now 300" in r.stderr, r.stderr
        print("  --resume with --steps 300 refused: " + r.stderr.strip().splitlines()[1].strip())
        r = train(moons, "moons_x", tmp, env)
        assert r.returncode != 0 and "unfinished run" in r.stderr, r.stderr
        print("  a fresh start over the unfinished checkpoint refused (--fresh overrides)")

        # A wall-clock budget: the resumed run continues the clock (and so the LR schedule) where
        # the checkpoint left it, so both segments together stay within the budget.
        budget = ["--steps", "1000000", "--max-seconds", "4"]
        ok(train(moons, "moons_budget", tmp, env, budget + ["--stop-after-steps", "50"]), "budget run")
        first = load(tmp, "moons_budget")["elapsed"]
        ok(train(moons, "moons_budget", tmp, env, budget + ["--resume"]), "budget --resume")
        prov = json.loads(read_safetensors(os.path.join(tmp, "moons_budget.safetensors"))[1]["pushforward"])["provenance"]
        assert prov["train_segments"] == 2 and 4.0 <= prov["train_seconds"] < 4.5, prov
        print(f"  --max-seconds 4: stopped after 50 steps ({first:.1f}s), resumed: {prov['train_steps']} steps, "
              f"train_seconds {prov['train_seconds']} = {' + '.join(str(x) for x in prov['train_segment_seconds'])}")

        if os.path.exists(os.path.join(REPO, "models", "moons.safetensors")):
            reflow = os.path.join(tmp, "moons_reflow_tiny.toml")
            with open(reflow, "w") as f:
                f.write(MOONS.format(name="moons_reflow_tiny", width=128, depth=4, steps=40, lr=5e-4,
                                     extra='coupling = "reflow"\nteacher = "models/moons.safetensors"\nteacher_nfe = 8'))
            print("reflow of models/moons.safetensors, pool 2000 reshuffled by the generator, 40 steps:", flush=True)
            s = case(reflow, "reflow", tmp, env, 40, "moons reflow", 20)
            print(f"  ({s:.0f}s)")

        denv = env
        what = "the real digits (train/data)"
        if not os.path.exists(os.path.join(DATA_DIR, "package", "src", "digits", "0.json")):
            fake = os.path.join(tmp, "repo")
            ddir = os.path.join(fake, "train", "data", "package", "src", "digits")
            os.makedirs(ddir)
            os.makedirs(os.path.join(fake, "models"))
            rng = np.random.default_rng(0)
            for d in range(10):
                with open(os.path.join(ddir, f"{d}.json"), "w") as f:
                    json.dump({"data": rng.random(120 * 784).round(3).tolist()}, f)
            denv = dict(env, PUSHFORWARD_REPO=fake)
            what = "random 28x28 images (train/data missing)"
        digits = os.path.join(tmp, "digits_tiny.toml")
        with open(digits, "w") as f:
            f.write(DIGITS)
        print(f"class-conditional U-Net base 8 on {what}, label dropout, grad clip, 12 steps:", flush=True)
        s = case(digits, "digits", tmp, denv, 12, "digits U-Net", 4)
        print(f"  ({s:.0f}s)")
    print("OK: every interrupted + resumed run is bit-identical to the straight run")


if __name__ == "__main__":
    main()
