"""Regenerate the measured parts of models/README.md from models/*_eval.json, the guidance
tables (models/*_guidance*.json) and the weight files' configs.

    pushforward-report            # rewrites every generated region in place
    pushforward-report --check    # exits 1 (and says which) if a region is not what the files say

The page is written by hand; what it reports from files sits between markers,

    <!-- report:KEY -->
    ...
    <!-- /report -->

and only that is rewritten, so the prose around the numbers survives a regeneration and every
number inside a region comes from a file in the repository. Keys: `card:<model>` (the model's
file, training and evaluation tables), `guidance:<dataset>` (the guidance trade-off with the
Heun table's FD column) and `solvers:<dataset>` (the same settings by solver at 8 NFE).
"""

import argparse
import difflib
import json
import os
import re
import sys

from pushforward_train.export import read_safetensors
from pushforward_train.paths import REPO

MODELS = os.path.join(REPO, "models")
NFES = [1, 2, 4, 8, 16, 32]


def fmt(x, nd=4):
    return f"{x:.{nd}f}"


def model_card(name):
    """The model's file, training and evaluation tables (region `card:<name>`)."""
    path = os.path.join(MODELS, f"{name}.safetensors")
    ev_path = os.path.join(MODELS, f"{name}_eval.json")
    _, meta = read_safetensors(path)
    cfg = json.loads(meta["pushforward"])
    prov = cfg["provenance"]
    size = os.path.getsize(path)
    lines = ["| | |", "|---|---|"]
    lines.append(f"| file | `{name}.safetensors`, {size / 1e6:.2f} MB |")
    lines.append(f"| arch | `{json.dumps(cfg['arch'])}` |")
    lines.append(f"| classes | {cfg['num_classes']} (+ null class)" if cfg["num_classes"] else "| classes | unconditional")
    lines[-1] += " |"
    lines.append(f"| path | {cfg['path']['kind']}; coupling: {prov.get('coupling', 'independent')} |")
    lines.append(f"| params | {prov.get('params', '?'):,} |")
    lines.append(f"| data | {prov['dataset']}; range {json.dumps(cfg['data'].get('range'))} |")
    schedule = f" of a {prov['schedule_steps']}-step schedule" if "schedule_steps" in prov else ""
    lines.append(f"| training | {prov['train_steps']} steps{schedule} × batch {prov['batch_size']}, AdamW lr {prov.get('lr')} "
                 f"(warmup + cosine decay), EMA {prov.get('ema_decay')}, seed {prov['seed']} |")
    machine = prov["machine"].replace("1 threads", "1 thread")
    lines.append(f"| train time | {prov['train_seconds'] / 60:.1f} min on {machine} (shared machine, other builds "
                 f"running), torch {prov.get('torch')} |")
    init = prov.get("init_from")
    if init:  # a continued training: what it started from
        lines.append(f"| started from | `{init['config']}`: {init['train_steps']} steps, "
                     f"{init['train_seconds'] / 60:.1f} min, lr {init['lr']}, EMA {init['ema_decay']}, seed {init['seed']} |")
    lines.append(f"| config | `{prov.get('config', f'train/configs/{name}.toml')}` |")
    lines.append("")
    if not os.path.exists(ev_path):
        return lines + ["(not evaluated)"]
    ev = json.load(open(ev_path))
    if ev["kind"] == "points2d":
        lines.extend(table_2d(ev, name))
    elif "categories" in ev:
        lines.extend(table_emoji(ev))
    else:
        lines.extend(table_digits(ev, name))
    return lines


def table_2d(ev, name):
    fl = ev["floor"]["sw2"]
    out = [f"Floor (data vs data): SW2 = {fmt(fl)}, energy = {ev['floor']['energy']:.5f}.", "",
           "SW2 (× floor) by solver and NFE:", "",
           "| solver | " + " | ".join(f"NFE {n}" for n in NFES) + " |",
           "|---|" + "---|" * len(NFES)]
    for m in ["euler", "midpoint", "heun", "rk4"]:
        cells = []
        for n in NFES:
            r = [r for r in ev["rows"] if r["solver"] == m and r["nfe"] == n and r["tol"] is None]
            cells.append(f"{fmt(r[0]['sw2'])} ({r[0]['sw2'] / fl:.2f}×)" if r else "—")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    out += ["", "Energy distance by solver and NFE:", "",
            "| solver | " + " | ".join(f"NFE {n}" for n in NFES) + " |",
            "|---|" + "---|" * len(NFES)]
    for m in ["euler", "midpoint", "heun", "rk4"]:
        cells = []
        for n in NFES:
            r = [r for r in ev["rows"] if r["solver"] == m and r["nfe"] == n and r["tol"] is None]
            cells.append(f"{r[0]['energy']:.5f}" if r else "—")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    out += ["", "| Dopri5 tol | NFE | SW2 (× floor) | energy |", "|---|---|---|---|"]
    for r in ev["rows"]:
        if r["solver"] == "dopri5":
            out.append(f"| {r['tol']:g} | {r['nfe']} | {fmt(r['sw2'])} ({r['sw2'] / fl:.2f}×) | {r['energy']:.5f} |")
    h8 = [r for r in ev["rows"] if r["solver"] == "heun" and r["nfe"] == 8][0]
    b2 = ev["best_2"]
    ok8 = "meets" if h8["sw2"] <= 1.5 * fl else "misses"
    ok2 = "meets" if b2["sw2"] <= 3 * fl else "misses"
    out += ["", f"Targets: Heun @ 8 NFE = {h8['sw2'] / fl:.2f}× floor ({ok8} ≤ 1.5×); "
                f"best @ 2 NFE ({b2['solver']}) = {b2['sw2'] / fl:.2f}× floor ({ok2} ≤ 3×)."]
    p20 = ev.get("protocol_20k")
    if p20:
        r = {(x["solver"], x["nfe"]): x for x in p20["rows"]}
        h, c = r[("heun", 8)], r[("rk4", 32)]
        out += ["", f"Floor protocol of #18 ({p20['n']:,} samples × {len(p20['noise_seeds'])} noise seeds vs "
                    f"{len(p20['draw_seeds'])} fresh {p20['n']:,}-point draws, floor {fmt(p20['floor'])} = mean of "
                    f"{len(p20['floor_pairs'])} pairs): Heun @ 8 NFE = {h['sw2_over_floor']:.3f}× "
                    f"({'meets' if h['sw2_over_floor'] <= 1.25 else 'misses'} ≤ 1.25×), converged (RK4 @ 32 NFE) = "
                    f"{c['sw2_over_floor']:.3f}× ({'meets' if c['sw2_over_floor'] <= 1.15 else 'misses'} ≤ 1.15×)."]
        if ("euler", 1) in r:  # a flow map: its own jumps, #18's one-step targets
            m1, m2, m4 = (r[("euler", k)]["sw2_over_floor"] for k in (1, 2, 4))
            out += ["", f"Flow map (Euler steps are the map's jumps), same protocol: 1 NFE = {m1:.3f}× "
                        f"({'meets' if m1 <= 1.5 else 'misses'} ≤ 1.5×), 2 NFE = {m2:.3f}× "
                        f"({'meets' if m2 <= 1.25 else 'misses'} ≤ 1.25×), 4 NFE = {m4:.3f}×."]
    out += ["", f"![metric vs NFE]({name}_nfe.png)", ""]
    return out


def table_digits(ev, name):
    c = ev["classifier"]
    out = [f"Classifier (`train/classifier.py`, {c['params']:,} params, trained on the 9k train split, "
           f"weights `train/mnist_classifier.safetensors`): held-out accuracy **{c['heldout_acc'] * 100:.2f}%**.",
           "",
           f"Fréchet distance in the classifier's 128-d penultimate features, 1,000 samples (100 per class) "
           f"vs the 1,000 held-out digits. Floor: 1,000 random train digits vs held-out = "
           f"**{ev['fd_floor']:.3f}** (all 9,000 train digits vs held-out: {ev['fd_floor_9k_train']:.3f}).",
           "",
           "Share of samples classified as the requested class / FD, by solver, NFE and guidance w "
           f"({ev['per_class']} samples per class, noise seed 4242, samples clamped to [-1, 1]):", "",
           "| solver | NFE | w = 1 | w = 2 | w = 3 |", "|---|---|---|---|---|"]
    keys = sorted({(r["solver"], r["nfe"]) for r in ev["rows"]}, key=lambda k: (k[0], k[1]))
    for m, n in keys:
        cells = []
        for w in (1.0, 2.0, 3.0):
            r = [r for r in ev["rows"] if r["solver"] == m and r["nfe"] == n and r["w"] == w]
            cells.append(f"{r[0]['class_acc'] * 100:.1f}% / {r[0]['fd']:.2f}" if r else "—")
        out.append(f"| {m} | {n} | " + " | ".join(cells) + " |")
    f2 = ev.get("fd_2k")
    if f2:
        fl = f2["floor"]
        nfl = sum(len(v) for v in fl["values"])
        out += ["", f"FD as an independent check measures it (`fd_2k`, `train/evaluate.py`): {f2['n_generated']:,} "
                f"class-balanced samples vs a real reference of {f2['n_reference']:,} digits (400 per class: the 1,000 "
                f"held-out + train-split digits), averaged over {f2['partitions']} random references; floor = "
                f"disjoint class-balanced {f2['n_set']:,}-digit real sets vs the same reference: **{fl['mean']:.2f}** "
                f"(range {fl['min']:.2f}–{fl['max']:.2f} over {nfl} sets).", "",
                "| solver | NFE | w | requested class | FD | × floor |", "|---|---:|---:|---:|---:|---:|"]
        for r in ev["rows"]:
            if "fd_2k" in r:
                out.append(f"| {r['solver']} | {r['nfe']} | {r['w']:g} | {r['class_acc_2k'] * 100:.2f}% | "
                           f"{r['fd_2k']:.2f} | {r['fd_2k_over_floor']:.2f}× |")
    g = ev.get("grid", {})
    out += ["", f"Sample grid above: rows = classes 0–9, {g.get('solver')} {g.get('nfe')} NFE, w = {g.get('w')}.", ""]
    return out


def table_emoji(ev):
    c, fl, nn = ev["classifier"], ev["floor"], ev["heldout_nn_l2"]
    m = ev["metrics"]
    out = [ev["design"], "",
           f"Classifier (`train/classifier.py` EmojiCNN, {c['params']:,} params, trained on the 764 held-out emoji "
           f"only; weights `train/emoji_classifier.safetensors`): on the 3,017 train-split emoji, which it never saw, "
           f"**{c['accuracy_on_train_split'] * 100:.1f}%** right ({c['balanced_accuracy'] * 100:.1f}% averaged over "
           f"categories; per category " + ", ".join(f"{n} {r * 100:.0f}%" for n, r in zip(ev["categories"], c["recall_per_category"]))
           + "). Real emoji in the held-out proportions: "
           f"**{m['classifier_accuracy_real'] * 100:.1f}%** (the ceiling for samples' agreement).", "",
           f"FD floor ({fl['sets']} disjoint real train-split sets of 764 vs the held-out set): **{fl['mean']:.1f}** "
           f"(range {min(fl['values']):.1f}–{max(fl['values']):.1f}). Nearest train image (pixel L2) of each held-out "
           f"emoji: median {nn['median']:.2f}, 5th percentile {nn['p05']:.2f}, near copies (L2 < 1) "
           f"{nn['near_copy_share'] * 100:.1f}%.", "",
           "| solver | NFE | w | class agreement | per category (mean) | FD | × floor | NN L2 median | p5 | near copies |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in ev["rows"]:
        out.append(f"| {r['solver']} | {r['nfe']} | {r['w']:g} | {r['class_agreement'] * 100:.1f}% | "
                   f"{r['class_agreement_balanced'] * 100:.1f}% | {r['fd']:.1f} | {r['fd_over_floor']:.2f}× | "
                   f"{r['nn_l2_median']:.2f} | {r['nn_l2_p05']:.2f} | {r['near_copy_share'] * 100:.1f}% |")
    g = ev["grid"]
    out += ["", f"Sample grid above: a row per category ({', '.join(ev['categories'])}), {g['solver']} "
                f"{g['nfe']} NFE, w = {g['w']:g}, noise seed 4242.", ""]
    return out


# The guidance tables' files: (file suffix, column title), Heun first (it has the FD column).
SOLVER_COLUMNS = [("", "Heun, 4 steps (8 NFE)"), ("_heun16", "Heun, 16 steps (32 NFE, converged)"),
                  ("_ab2", "ab2, 8 steps (8 NFE)")]


def guidance_rows(dataset, suffix):
    path = os.path.join(MODELS, f"{dataset}_guidance{suffix}.json")
    if not os.path.exists(path):
        return None
    return {r["setting"]: r for r in json.load(open(path))["rows"]}


def label(setting):
    return setting.replace("CFG-Zero*", "CFG-Zero★")


def guidance_table(dataset):
    """Region `guidance:<dataset>`: the Heun 4-step table with the FD column."""
    rows = guidance_rows(dataset, "")
    out = ["| setting | class agreement | FD | FD / floor |", "|---|---|---|---|"]
    for name, r in rows.items():
        fd = f"{r['fd']:.2f}" if r["fd"] < 100 else f"{r['fd']:.1f}"
        out.append(f"| {label(name)} | {r['class_agreement'] * 100:.2f}% | {fd} | {r['fd_over_floor']:.2f}× |")
    return out


def solvers_table(dataset):
    """Region `solvers:<dataset>`: each setting's class agreement / FD over the floor by solver at
    8 NFE (and converged, where measured); settings in the order the tables were run."""
    cols = [(title, rows) for suffix, title in SOLVER_COLUMNS if (rows := guidance_rows(dataset, suffix))]
    settings = []
    for _, rows in cols:
        settings += [s for s in rows if s not in settings]
    pct = 2 if dataset == "mnist" else 1
    out = ["| setting | " + " | ".join(t for t, _ in cols) + " |", "|---|" + "---|" * len(cols)]
    for s in settings:
        cells = [f"{rows[s]['class_agreement'] * 100:.{pct}f}% / {rows[s]['fd_over_floor']:.2f}×" if s in rows else "—"
                 for _, rows in cols]
        out.append(f"| {label(s)} | " + " | ".join(cells) + " |")
    return out


REGION = re.compile(r"(<!-- report:(?P<key>[\w:.-]+) -->\n)(?P<body>.*?)(<!-- /report -->)", re.S)
RENDER = {"card": model_card, "guidance": guidance_table, "solvers": solvers_table}


def render(key):
    kind, _, arg = key.partition(":")
    if kind not in RENDER or not arg:
        raise SystemExit(f"models/README.md: unknown report region `{key}` (known: "
                         + ", ".join(f"{k}:NAME" for k in RENDER) + ")")
    return "\n".join(RENDER[kind](arg)).rstrip("\n") + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a region is out of date")
    args = ap.parse_args()
    page = os.path.join(MODELS, "README.md")
    text = open(page).read()
    stale = []

    def regenerate(m):
        body = render(m["key"])
        if body != m["body"]:
            stale.append(m["key"])
            if args.check:
                sys.stdout.writelines(difflib.unified_diff(m["body"].splitlines(True), body.splitlines(True),
                                                           f"README {m['key']}", f"files {m['key']}"))
        return m[1] + body + m[4]

    new = REGION.sub(regenerate, text)
    n = len(REGION.findall(text))
    if args.check:
        print(f"{n} regions; out of date: {', '.join(stale) or 'none'}")
        sys.exit(1 if stale else 0)
    with open(page, "w") as f:
        f.write(new)
    print(f"models/README.md: {n} regions, {len(stale)} rewritten ({', '.join(stale) or 'none'})")


if __name__ == "__main__":
    main()
