"""Write the ONNX parity fixtures (issue #14) to tests/fixtures/onnx/.

    nice -n 10 pushforward-make-onnx-fixtures [--only NAME,...] [--out DIR]

For each architecture below: NAME.onnx (exported by onnx_export.export_onnx, the declaration in
metadata_props["pushforward"]) and NAME_expected.safetensors (F32 tensors):

  x_b1, t_b1 (, y_b1), out_b1     graph feeds at batch 1 exactly as fed (t in the graph's own shape
                                  and units: t_in = f32(τ·scale); y as F32 class ids) and
                                  onnxruntime's output
  x_b7, t_b7 (, y_b7), out_b7     the same for a ragged batch of 7 random inputs
  jump_b1, jump_b7, h_b1, h_b7    flow maps only: the step/end input as fed, and the sampler's jump
                                  lengths h it was made from (rows jump from t to t + h)
  time_b1, time_b7 [n]            the sampler times t ∈ [0, 1] the t feeds were made from
  v_b1, v_b7                      the declared velocity dx/dt of out_b* (time/output conversions
                                  of the declaration, float64, stored F32)
  x0 [5, ...]                     train/rng.py initial_noise(seed 11, n 5): the Rust sampler's x0
  y_solve [5] (conditional only)  labels 0, 1, …, K−1, 0, … (F32)
  frames_heun4 [5, 5, ...]        states at t = 0, 0.25, 0.5, 0.75, 1 of a float64 PyTorch Heun solve
                                  of the declared velocity (train/solvers.py _step_heun, uniform
                                  4-step grid, guidance 2 with the null class when conditional)
  samples_heun4 [5, ...]          = frames_heun4[4]
  samples_map1, samples_map2      flow maps only: 1 and 2 uniform jumps x + h·u(x, t, h) from x0
                                  (the sampler's Euler on a flow map), float64 PyTorch

and tests/fixtures/onnx/manifest.json (declarations, op_type counts, measured errors, sizes).
"""

import argparse
import copy
import json
import os

import numpy as np
import torch

from pushforward_train.export import load_model, read_safetensors, write_safetensors
from pushforward_train.export_onnx import shipped_declaration
from pushforward_train.onnx_export import (INPUT_ROLES, _ort_session, data_shape, declared_velocity, export_onnx,
                                           graph_jump, graph_time, jump_role, rel_err, run_onnx, to_velocity,
                                           validate_declaration)
import pushforward_train.onnx_models as om
from pushforward_train.paths import REPO
from pushforward_train.rng import initial_noise
from pushforward_train.solvers import _step_heun

OUT = os.path.join(REPO, "tests", "fixtures", "onnx")
SEED_X0, N_SOLVE, STEPS, GUIDANCE = 11, 5, 4, 2.0
T_B1 = 0.37
H_B1 = 0.25
# flow maps' jump lengths for the ragged batch (t + h ≤ 1 with T7["velocity"]; 0: instantaneous)
H7 = [0.5, 0.0, 0.25, 0.5, 0.25, 0.0, 0.1]
T7 = {"velocity": [0.0, 1.0, 0.5, 0.25, 0.75, 0.1, 0.9],
      "data": [0.0, 0.97, 0.5, 0.25, 0.75, 0.1, 0.03],   # never t = 1: (x̂1 − x)/(1 − t)
      "noise": [0.97, 0.03, 0.5, 0.25, 0.75, 0.1, 0.9]}  # never t = 0: (x − x̂0)/t
POINTS = {"kind": "points2d", "range": [[-3.0, 3.0], [-3.0, 3.0]]}
IMG16 = {"kind": "image", "channels": 1, "height": 16, "width": 16, "range": [-1.0, 1.0]}
IMG8 = {"kind": "image", "channels": 1, "height": 8, "width": 8, "range": [-1.0, 1.0]}
SRC = "train/make_onnx_fixtures.py"


def decl(inputs, shape, output, data, nc=0, direction="noise_to_data", scale=1.0, **prov):
    return {"format_version": 1, "inputs": inputs,
            "time": {"shape": shape, "direction": direction, "scale": scale},
            "output": output, "num_classes": nc, "data": data, "path": {"kind": "linear"},
            "provenance": {"source": SRC, **prov}}


def build_mlp_selu():
    torch.manual_seed(1401)
    return om.MLPSeluRawT(), decl({"x": "x", "t": "t"}, "batch", "velocity", POINTS,
                                  dataset="none (seeded random init)", architecture="MLP 3→64→64→2, SELU, raw t")


def build_mlp_fourier():
    torch.manual_seed(1402)
    return om.MLPFourierGELU(), decl({"x": "x", "t": "t"}, "batch1", "data", POINTS, direction="data_to_noise",
                                     scale=1000.0, dataset="none (seeded random init)",
                                     architecture="MLP on [x, sin/cos(2π·10k·τ), k=1..16] (args ≤ 1005 rad), "
                                                  "exact GELU, x1-prediction x + τ·g")


def build_shipped(name, nc):
    model, cfg = load_model(os.path.join(REPO, "models", f"{name}.safetensors"))
    assert cfg["num_classes"] == nc and cfg["path"]["kind"] == "linear"
    d = shipped_declaration(cfg, f"models/{name}.safetensors (train/models.py, timestep_embedding inside the "
                                 f"graph); must sample the same as it")
    return model, d


def build_moons():
    return build_shipped("moons", 0)


def build_mnist():
    return build_shipped("mnist", 10)


class StepInput(torch.nn.Module):
    """A flow-map MLP (train/models.py) called as (x, t, h): the average velocity over [t, t + h]."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x, t, h):
        return self.m(x, t, h=h)


class MeanFlowRT(torch.nn.Module):
    """The same flow map in MeanFlow's convention: time runs data → noise (τ = 1 − t), t of shape
    [n, 1], and u(z, r, t) is the average of dz/dτ over the jump from τ = t down to τ = r."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, z, t, r):
        tau, r = t[:, 0], r[:, 0]
        return -self.m(z, 1.0 - tau, h=tau - r)


def lucidrains_unet_module():
    """`denoising_diffusion_pytorch.denoising_diffusion_pytorch` (PyPI `denoising_diffusion_pytorch`,
    installed with --no-deps, and `einops`): a widely used research U-Net, imported without its
    training dependencies (torchvision, accelerate, ema_pytorch, tqdm), which the network does
    not use, replaced by empty stand-ins."""
    import glob
    import importlib.util
    import sys
    import types

    class Anything:
        def __init__(self, *a, **k):
            pass

        def __getattr__(self, k):
            return Anything

    missing = {top for top in ("torchvision", "tqdm", "ema_pytorch", "accelerate")
               if top not in sys.modules and importlib.util.find_spec(top) is None}
    for name in ("torchvision", "torchvision.transforms", "torchvision.utils", "tqdm", "tqdm.auto", "ema_pytorch",
                 "accelerate"):
        if name.split(".")[0] in missing:
            m = sys.modules.setdefault(name, types.ModuleType(name))
            m.__dict__.update(transforms=Anything(), utils=Anything(), tqdm=Anything, EMA=Anything,
                              Accelerator=Anything)
    spec = importlib.util.find_spec("denoising_diffusion_pytorch")
    if spec is None:
        raise SystemExit("pip install --no-deps denoising_diffusion_pytorch einops  (for the ddp_unet fixture)")
    site = spec.submodule_search_locations[0]
    pkg = sys.modules.setdefault("denoising_diffusion_pytorch", types.ModuleType("denoising_diffusion_pytorch"))
    pkg.__path__ = [site]
    mods = {}
    for name in ("version", "attend", "denoising_diffusion_pytorch"):
        full = f"denoising_diffusion_pytorch.{name}"
        sp = importlib.util.spec_from_file_location(full, glob.glob(os.path.join(site, f"{name}.py"))[0])
        mods[name] = sys.modules[full] = importlib.util.module_from_spec(sp)
        sp.loader.exec_module(mods[name])
    return mods["denoising_diffusion_pytorch"], mods["version"].__version__


class TimeSecond(torch.nn.Module):
    """`net(x, time)` under the graph input names x and t."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t):
        return self.net(x, t)


def build_ddp_unet():
    ddp, version = lucidrains_unet_module()
    torch.manual_seed(1410)
    net = ddp.Unet(dim=8, dim_mults=(1, 2), channels=1, attn_dim_head=8, attn_heads=2, flash_attn=False)
    return TimeSecond(net), decl({"x": "x", "t": "t"}, "batch", "noise", IMG16, direction="data_to_noise",
                                 scale=1000.0, dataset="none (seeded random init)",
                                 architecture=f"denoising_diffusion_pytorch {version} Unet(dim 8, dim_mults (1, 2)): "
                                              "RMSNorm by F.normalize (ReduceL2, Clip), linear attention and "
                                              "attention by einsum (Einsum), pixel-unshuffle downsampling, "
                                              "nearest upsampling; ε-prediction on t ∈ [0, 1000]")


def build_meanflow_step():
    model, cfg = load_model(os.path.join(REPO, "models", "moons_meanflow.safetensors"))
    d = shipped_declaration(cfg, "models/moons_meanflow.safetensors (train/models.py, flow_map; the step length "
                                 "as input h); must sample the same as it")
    d["inputs"]["step"] = "h"
    return StepInput(model), d


def build_meanflow_rt():
    model, cfg = load_model(os.path.join(REPO, "models", "moons_meanflow.safetensors"))
    d = decl({"x": "z", "t": "t", "end": "r"}, "batch1", "velocity", cfg["data"], direction="data_to_noise",
             converted_from="models/moons_meanflow.safetensors in MeanFlow's convention u(z, r, t): time from data "
                            "(0) to noise (1), r the jump's end; must sample the same as it",
             architecture="MLP flow map (train/models.py) behind 1 − t and t − r")
    return MeanFlowRT(model), d


def build_unet_attn():
    torch.manual_seed(1405)
    return om.UNetAttn(), decl({"x": "x", "t": "t", "y": "y"}, "batch", "velocity", IMG16, nc=3,
                               dataset="none (seeded random init)",
                               architecture="U-Net 16/24/32 ch, GroupNorm(8), SiLU, FiLM, nn.MultiheadAttention "
                                            "(2 heads) at 8×8 and 4×4, stride-2 conv down, nearest up")


def build_dit():
    torch.manual_seed(1406)
    return om.DiTSmall(), decl({"x": "x", "t": "t"}, "scalar", "noise", IMG16, scale=1000.0,
                               dataset="none (seeded random init)",
                               architecture="DiT patch 4, width 64, 2 blocks, 4 heads, adaLN (small, non-zero "
                                            "init), LayerNorm without affine, tanh-GELU, x0-prediction x + τ·net")


def build_mlp_opset13():
    torch.manual_seed(1407)
    return om.MLPSeluLayerNorm(), decl({"x": "x", "t": "t"}, "batch", "velocity", POINTS,
                                       dataset="none (seeded random init)",
                                       architecture="MLP 3→64→LayerNorm(64)→64→2, SELU, raw t; opset 13 (LayerNorm "
                                                    "decomposed by the exporter)")


def build_op_zoo():
    torch.manual_seed(1408)
    return om.OpZoo(), decl({"x": "x", "t": "t"}, "batch", "velocity", IMG8, dataset="none (seeded random init)",
                            architecture="op zoo: h = conv(x)·(1 + s(t)) + b(t), 8 channels, through Concat on H/W "
                                         "+ Slice crop, constant Pad, Where (constant mask), eval BatchNorm, "
                                         "ReduceMean/ReduceSum (channel and last axis, keepdims 0/1), Split, "
                                         "Softmax(axis 1), hand-written layer norm; 1×1 mix, SiLU, 3×3 conv")


FIXTURES = {"mlp_selu_raw_t": build_mlp_selu, "mlp_fourier_gelu": build_mlp_fourier, "moons_onnx": build_moons,
            "mnist_onnx": build_mnist, "unet_attn": build_unet_attn, "dit_small": build_dit,
            "mlp_opset13": build_mlp_opset13, "op_zoo": build_op_zoo, "meanflow_step": build_meanflow_step,
            "meanflow_rt": build_meanflow_rt, "ddp_unet": build_ddp_unet}
# input seeds: 100 + the index in the sorted names of the first six (as when they were the only
# fixtures, so that their files stay byte-identical), then 106, 107, ...
SEEDS = {"dit_small": 100, "mlp_fourier_gelu": 101, "mlp_selu_raw_t": 102, "mnist_onnx": 103, "moons_onnx": 104,
         "unet_attn": 105, "mlp_opset13": 106, "op_zoo": 107, "meanflow_step": 108, "meanflow_rt": 109,
         "ddp_unet": 110}
OPSETS = {"mlp_opset13": 13}  # others: export_onnx's default, 17


def f32(v):
    return np.float32(v).item()


def parity_inputs(d, n, times, seed, x_std=1.0, jumps=None):
    """Graph feeds in role order [x, t(, y)(, step or end)] plus the sampler times and, for a
    flow map, its jump lengths (F32-exact values)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn([n] + data_shape(d), generator=g) * x_std
    if d["time"]["shape"] == "scalar":
        times = [f32(times[0])] * n
        t = graph_time(d, times[0], n)
    else:
        times = [f32(v) for v in times[:n]]
        t = graph_time(d, torch.tensor(times, dtype=torch.float64), n)
    feeds = [x, t]
    if d["num_classes"] > 0:
        k, null = d["num_classes"], d["null_class"]
        ids = [2 % k] if n == 1 else [0, 1 % k, null, 2 % k, null, (k - 1), 1 % k][:n]
        feeds.append(torch.tensor(ids, dtype=torch.int64))
    times = torch.tensor(times, dtype=torch.float64)
    if not jump_role(d):
        return feeds, times, None
    hs = torch.tensor([f32(v) for v in jumps[:n]], dtype=torch.float64)
    feeds.append(graph_jump(d, times if d["time"]["shape"] != "scalar" else times[0],
                            hs if d["time"]["shape"] != "scalar" else hs[0], n))
    return feeds, times, hs


class OrtModel:
    """onnxruntime session called like the torch model (role order x, t(, y)); float32."""

    def __init__(self, path, d):
        self.sess = _ort_session(path)
        self.names = [d["inputs"][r] for r in INPUT_ROLES if r in d["inputs"]]

    def __call__(self, *args):
        feeds = {nm: a.float() if a.is_floating_point() else a for nm, a in zip(self.names, args)}
        return torch.from_numpy(run_onnx(self.sess, feeds))


def map_solve(f, x0, steps):
    """`steps` uniform jumps x + h·u(x, t, h) of a flow map's declared average velocity f(x, t, h)."""
    x, h = x0, 1.0 / steps
    for i in range(steps):
        x = x + h * f(x, i * h, h)
    return x


def heun_solve(f, x0):
    x = x0
    frames = [x]
    h = 1.0 / STEPS
    for i in range(STEPS):
        x = _step_heun(f, x, i * h, h)
        frames.append(x)
    return torch.stack(frames)


def attention_share(name, model, feeds):
    """How much the attention blocks change the output (max|Δ|/max|out|), so a wrong attention
    in the executor cannot hide under the parity tolerance."""
    with torch.no_grad():
        ref = model(*feeds)
        if name == "unet_attn":
            saved = om.AttnBlock.forward
            om.AttnBlock.forward = lambda self, x: x
            try:
                off = model(*feeds)
            finally:
                om.AttnBlock.forward = saved
        else:
            saved = om.DiTBlock.attn
            om.DiTBlock.attn = lambda self, x: torch.zeros_like(x)
            try:
                off = model(*feeds)
            finally:
                om.DiTBlock.attn = saved
    return rel_err(off.numpy(), ref.numpy())


def branch_shares(model, feeds):
    """OpZoo: how much zeroing each branch changes the output (max|Δ|/max|out|)."""
    shares = {}
    with torch.no_grad():
        ref = model(*feeds)
        for b in model.BRANCHES:
            model.ablate = b
            try:
                shares[b] = rel_err(model(*feeds).numpy(), ref.numpy())
            finally:
                model.ablate = None
    return shares


def make_fixture(name, build, seed, opset, out_dir, src, extras):
    """Exports one fixture model and writes NAME.onnx and NAME_expected.safetensors; returns its
    manifest entry. `extras(model, d, path, names, feeds7, tensors, ort_model)` gives what the
    calling script adds: `(errors, meta, entry)` dicts (shares of the output, notes, node lists)."""
    model, d0 = build()
    model = model.float().eval()
    path = os.path.join(out_dir, f"{name}.onnx")
    x_std = 1.5 if d0["data"]["kind"] == "points2d" else 1.0
    d = validate_declaration(d0)
    kind = d["output"]
    feeds1, time1, h1 = parity_inputs(d, 1, [T_B1], seed, x_std, [H_B1])
    feeds7, time7, h7 = parity_inputs(d, 7, T7[kind], seed + 1000, x_std, H7)
    roles = [r for r in INPUT_ROLES if r in d["inputs"]]
    names = [d["inputs"][r] for r in roles]
    report = export_onnx(model, dict(zip(names, feeds1)), d, path, opset=opset)

    ort_model = OrtModel(path, d)
    m64 = copy.deepcopy(model).double()
    tensors, errs = {}, {"export_check": report["max_rel_err"]}
    for tag, feeds, times, hs in (("b1", feeds1, time1, h1), ("b7", feeds7, time7, h7)):
        out = ort_model(*feeds)
        with torch.no_grad():
            ref32 = model(*feeds)
            ref64 = m64(*[a.double() if a.is_floating_point() else a for a in feeds])
        errs[f"ort_vs_torch32_{tag}"] = rel_err(out.numpy(), ref32.numpy())
        errs[f"ort_vs_torch64_{tag}"] = rel_err(out.numpy(), ref64.numpy())
        x = feeds[0]
        tt = times if d["time"]["shape"] != "scalar" else float(times[0])
        v = to_velocity(d, out.double(), x.double(), tt)
        assert torch.isfinite(v).all(), (name, tag)
        for r, a in zip(roles, feeds):
            tensors[f"{'jump' if r in ('step', 'end') else r}_{tag}"] = a.float().numpy()
        if hs is not None:
            tensors[f"h_{tag}"] = hs.float().numpy()
        tensors[f"out_{tag}"] = out.numpy()
        tensors[f"time_{tag}"] = times.float().numpy()
        tensors[f"v_{tag}"] = v.float().numpy()

    x0 = initial_noise(SEED_X0, N_SOLVE, data_shape(d))
    tensors["x0"] = x0
    y = None
    w = None
    if d["num_classes"] > 0:
        y = torch.arange(N_SOLVE, dtype=torch.int64) % d["num_classes"]
        w = GUIDANCE
        tensors["y_solve"] = y.float().numpy()
    with torch.no_grad():
        frames = heun_solve(lambda x, t: declared_velocity(m64, d, x, t, y, w), torch.from_numpy(x0).double())
        frames_ort = heun_solve(lambda x, t: declared_velocity(ort_model, d, x, t, y, w), torch.from_numpy(x0))
    assert torch.isfinite(frames).all()
    tensors["frames_heun4"] = frames.float().numpy()
    tensors["samples_heun4"] = frames[-1].float().numpy()
    errs["ort_f32_solve_vs_torch64_solve"] = rel_err(frames_ort[-1].numpy(), frames[-1].numpy())
    if jump_role(d):
        for k in (1, 2):
            with torch.no_grad():
                tensors[f"samples_map{k}"] = map_solve(lambda x, t, h: declared_velocity(m64, d, x, t, y, w, h=h),
                                                       torch.from_numpy(x0).double(), k).float().numpy()
    more_errs, more_meta, more_entry = extras(model, d, path, names, feeds7, tensors, ort_model)
    errs.update(more_errs)

    solve = (f"heun {STEPS} steps on the uniform grid t = i/{STEPS} (train/solvers.py _step_heun), float64 torch "
             f"from the F32 weights, x0 = train/rng.py initial_noise(seed {SEED_X0}, n {N_SOLVE}), "
             + (f"labels i mod {d['num_classes']} (0..K-1 cycling), classifier-free guidance w {GUIDANCE:g} "
                f"(v = v_u + w(v_c - v_u), null class {d['null_class']})" if y is not None else "unconditional")
             + "; v is the declared velocity (time and output conversions of the declaration)")
    import onnx
    import onnxruntime

    meta = {"script": src, "model": f"{name}.onnx", "declaration": json.dumps(d, separators=(",", ":")),
            "solve": solve,
            "feeds": "x_*, t_*, y_* are the graph inputs exactly as fed: t in the graph's shape and units "
                     "(f32 of tau*scale computed in float64 from the F32 time_*), y as F32 class ids (feed int64)",
            "out": "onnxruntime CPU output (default graph optimisations)",
            "v": "the declared velocity dx/dt of out_* at time_* (float64 conversion, stored F32)",
            "frames_heun4": "states at t = " + ", ".join(f"{i / STEPS:g}" for i in range(STEPS + 1)),
            "errors": json.dumps(errs), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "onnx": onnx.__version__, "opset": str(report["opset"]), **more_meta}
    exp = os.path.join(out_dir, f"{name}_expected.safetensors")
    write_safetensors(exp, tensors, meta)
    back, bmeta = read_safetensors(exp)
    assert all(np.array_equal(back[k], np.asarray(tensors[k], np.float32)) for k in tensors) and bmeta == meta
    print(f"  {name}_expected.safetensors: {os.path.getsize(exp)} bytes; samples range "
          f"[{tensors['samples_heun4'].min():.3f}, {tensors['samples_heun4'].max():.3f}]; errors "
          + ", ".join(f"{k} {v:.1e}" for k, v in errs.items() if not isinstance(v, dict)))
    return {"onnx": f"{name}.onnx", "onnx_bytes": report["bytes"], "expected": f"{name}_expected.safetensors",
            "expected_bytes": os.path.getsize(exp), "opset": report["opset"], "declaration": d,
            "op_types": report["op_types"], "nodes": sum(report["op_types"].values()),
            "op_inventory": report["inventory"], **more_entry, "errors": errs,
            "solve": solve, "params": sum(p.numel() for p in model.parameters())}

def make(name, out_dir):
    def extras(model, d, path, names, feeds7, tensors, ort_model):
        errs, meta = {}, {}
        if name in ("unet_attn", "dit_small"):
            errs["attention_share_of_output_b7"] = attention_share(name, model, feeds7)
        if name == "op_zoo":
            errs["branch_share_of_output_b7"] = branch_shares(model, feeds7)
        if name in ("moons_onnx", "mnist_onnx"):
            meta["note"] = (f"exported from models/{name[:-5]}.safetensors: sampling {name}.onnx must give the same "
                            f"samples as models/{name[:-5]}.safetensors")
            errs["ort_vs_forward_fixture"] = forward_fixture_check(ort_model, name[:-5])
        return errs, meta, {}

    return make_fixture(name, FIXTURES[name], SEEDS[name], OPSETS.get(name, 17), out_dir, SRC, extras)


def forward_fixture_check(ort_model, model_name):
    """onnxruntime on tests/fixtures/<model>_forward.safetensors' inputs vs its float64 v."""
    fx, _ = read_safetensors(os.path.join(REPO, "tests", "fixtures", f"{model_name}_forward.safetensors"))
    args = [torch.from_numpy(fx["x"]), torch.from_numpy(fx["t"])]
    if "y" in fx:
        args.append(torch.from_numpy(fx["y"]).long())
    return rel_err(ort_model(*args).numpy(), fx["v"])


def run(doc, fixtures, make_one, manifest_name, src):
    """The command line of a fixture script: `--only NAME,...`, `--out DIR`; the manifest keeps
    the entries of fixtures not remade."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated subset of " + ", ".join(fixtures))
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    torch.set_num_threads(1)
    names = [s for s in a.only.split(",") if s] or list(fixtures)
    for nm in names:
        if nm not in fixtures:
            ap.error(f"unknown fixture {nm!r}")
    os.makedirs(a.out, exist_ok=True)
    man_path = os.path.join(a.out, manifest_name)
    manifest = {}
    if os.path.exists(man_path):
        with open(man_path) as f:
            manifest = json.load(f).get("fixtures", {})
    for nm in names:
        manifest[nm] = make_one(nm, a.out)
    manifest = {k: manifest[k] for k in fixtures if k in manifest}
    with open(man_path, "w") as f:
        json.dump({"generated_by": src, "fixtures": manifest}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{man_path}: {len(manifest)} fixtures")


def main():
    run(__doc__, FIXTURES, make, "manifest.json", SRC)

if __name__ == "__main__":
    main()
