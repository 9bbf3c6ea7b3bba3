"""Export shipped pushforward models to ONNX: Heun-step graphs for the browser benchmark's peers
(issue #6), or plain velocity networks with the pushforward declaration (issue #14, --declared).

Your own model: `from onnx_export import export_onnx` (re-exported here), see train/README.md.

What a competent ONNX Runtime Web user would export to keep a fixed-step solve on the GPU:
one graph per model that is a whole Heun step (two network evaluations and the update), so
the JS loop only feeds the previous step's output buffer back in. Classifier-free guidance
is inside the graph the way pushforward does it: one forward on the batch [x; x] with labels
[y; null], v = v_u + w·(v_c − v_u).

  graph inputs   x [n, ...] f32, e0 [1, E] f32, e1 [1, E] f32, h [1] f32
                 (+ y [n] int64, w [1] f32 when conditional)
  graph output   x_next = x + h/2 · (v(x, t) + v(x + h·v(x, t), t + h))

e0 / e1 are timestep_embedding(t) and timestep_embedding(t + h) (one row each, E = the
network's embedding width), computed by the caller: with the sin/cos inside the graph, ONNX
Runtime Web's WebGPU EP on SwiftShader missed the benchmark's 1e-4 agreement check (1.2e-4 on
moons; the arguments reach time_scale·t = 1000 rad, where device sin/cos are loose), and the
host computes one row per step for free. The network code is train/models.py unchanged: while
tracing, models.timestep_embedding is swapped for a stub that broadcasts the given row.

Weights come from the .safetensors file through export.load_model (train/models.py), so the
graph computes exactly the network the Rust sampler runs. Usage (from the repository root):

  pushforward-export-onnx [--out www/bench/models] [model ...]   # default: moons mnist
  pushforward-export-onnx --all                                   # every models/*.safetensors
  pushforward-export-onnx --declared --out DIR moons               # DIR/moons.onnx: v(x, t[, y])

--declared writes the velocity network itself (inputs x, t [n] and y when conditional; the time
embedding inside the graph) with the declaration in metadata_props["pushforward"], through
onnx_export.export_onnx (checked against PyTorch by onnxruntime); pushforward samples it as it
samples the .safetensors file.

Needs `onnx` (PyTorch's TorchScript exporter, dynamo=False, opset 17, writes through it); with
`onnxruntime` installed too, each graph is re-run and compared to torch (both are in
train/requirements.txt and in the package's `onnx` extra; --declared needs both).
"""

import argparse
import glob
import os

import torch

from pushforward_train.export import load_model
import pushforward_train.models as models
from pushforward_train.onnx_export import export_onnx, validate_declaration  # noqa: F401  (the public helper)


class _GivenEmbedding:
    """Stands in for models.timestep_embedding while tracing: returns the row handed in, broadcast."""

    def __init__(self):
        self.row = None

    def __call__(self, t, dim, time_scale):
        assert self.row.shape[1] == dim
        return self.row.expand(t.shape[0], dim)


class HeunStep(torch.nn.Module):
    def __init__(self, model, num_classes, embedding):
        super().__init__()
        self.model = model
        self.null = num_classes  # the unconditional class id
        self.embedding = embedding

    def velocity(self, x, e, y=None, w=None):
        n = x.shape[0]
        self.embedding.row = e
        if y is None:
            return self.model(x, x.new_zeros(n))
        xx = torch.cat([x, x], dim=0)
        yy = torch.cat([y, torch.full_like(y, self.null)], dim=0)
        v = self.model(xx, x.new_zeros(2 * n), yy)
        vc, vu = v[:n], v[n:]
        return vu + w * (vc - vu)

    def forward(self, x, e0, e1, h, y=None, w=None):
        k1 = self.velocity(x, e0, y, w)
        k2 = self.velocity(x + h * k1, e1, y, w)
        return x + (0.5 * h) * (k1 + k2)


def export(name, out_dir):
    model, cfg = load_model(os.path.join("models", f"{name}.safetensors"))
    k = cfg["num_classes"]
    a = cfg["arch"]
    dim, scale = (a["time_embed_dim"] if a["kind"] == "mlp" else a["base_channels"]), a["time_scale"]
    step = HeunStep(model, k, _GivenEmbedding()).eval()
    data = cfg["data"]
    shape = [data["channels"], data["height"], data["width"]] if data["kind"] == "image" else [cfg["arch"]["data_dim"]]
    n = 4
    x = torch.randn(n, *shape)
    t = torch.tensor([0.25])
    h = torch.tensor([0.125])
    emb = models.timestep_embedding
    args, names = (x, emb(t, dim, scale), emb(t + h, dim, scale), h), ["x", "e0", "e1", "h"]
    dyn = {"x": {0: "n"}, "x_next": {0: "n"}}
    if k > 0:
        args += (torch.arange(n, dtype=torch.int64) % k, torch.tensor([2.0]))
        names += ["y", "w"]
        dyn["y"] = {0: "n"}
    path = os.path.join(out_dir, f"{name}_heun_step.onnx")
    with torch.no_grad():
        unpatched = models.timestep_embedding
        models.timestep_embedding = step.embedding
        try:
            ref = step(*args)
            torch.onnx.export(step, args, path, input_names=names, output_names=["x_next"],
                              dynamic_axes=dyn, opset_version=17, dynamo=False)
        finally:
            models.timestep_embedding = unpatched
        direct = _heun_direct(model, k, x, t, h, *args[4:])
        err = ((ref - direct).abs().max() / direct.abs().max()).item()
        assert err < 1e-6, f"{name}: step graph vs direct Heun step {err}"
    print(f"{path}: {os.path.getsize(path)} bytes; inputs {names}; check in torch: |x_next| = {ref.abs().max():.4f}")
    return path, args, ref


def _heun_direct(model, k, x, t, h, y=None, w=None):
    """The same Heun step with the model's own embedding of t (the check of the stub)."""

    def v(x_, t_):
        n = x_.shape[0]
        if y is None:
            return model(x_, t_.expand(n))
        out = model(torch.cat([x_, x_]), t_.expand(2 * n), torch.cat([y, torch.full_like(y, k)]))
        return out[n:] + w * (out[:n] - out[n:])

    k1 = v(x, t)
    k2 = v(x + h * k1, t + h)
    return x + 0.5 * h * (k1 + k2)


def shipped_declaration(cfg, converted_from):
    """The declaration of a shipped model's velocity network v(x, t[, y]) (train/models.py)."""
    nc = cfg["num_classes"]
    inputs = {"x": "x", "t": "t", **({"y": "y"} if nc > 0 else {})}
    prov = {k: v for k, v in cfg.get("provenance", {}).items() if k in ("dataset", "train_steps", "seed", "metrics")}
    prov["converted_from"] = converted_from
    return {"format_version": 1, "inputs": inputs,
            "time": {"shape": "batch", "direction": "noise_to_data", "scale": 1.0},
            "output": "velocity", "num_classes": nc, "data": cfg["data"], "path": cfg["path"], "provenance": prov}


def export_declared(name, out_dir, seed=0):
    """models/<name>.safetensors -> out_dir/<name>.onnx (velocity network + declaration)."""
    src = os.path.join("models", f"{name}.safetensors")
    model, cfg = load_model(src)
    decl = shipped_declaration(cfg, f"models/{name}.safetensors (train/models.py, timestep_embedding in the graph)")
    d = cfg["data"]
    shape = [2] if d["kind"] == "points2d" else [d["channels"], d["height"], d["width"]]
    g = torch.Generator().manual_seed(seed)
    ex = {"x": torch.randn([2] + shape, generator=g), "t": torch.tensor([0.25, 0.75])}
    if cfg["num_classes"] > 0:
        ex["y"] = torch.tensor([0, cfg["num_classes"]], dtype=torch.int64)
    return export_onnx(model, ex, decl, os.path.join(out_dir, f"{name}.onnx"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=["moons", "mnist"])
    ap.add_argument("--all", action="store_true", help="every models/*.safetensors")
    ap.add_argument("--out", default="www/bench/models")
    ap.add_argument("--declared", action="store_true",
                    help="write <name>.onnx: the velocity network with the pushforward declaration (issue #14)")
    a = ap.parse_args()
    names = sorted(os.path.basename(p)[: -len(".safetensors")] for p in glob.glob("models/*.safetensors")) if a.all else a.models
    os.makedirs(a.out, exist_ok=True)
    if a.declared:
        for name in names:
            export_declared(name, a.out)
        return
    for name in names:
        path, args, ref = export(name, a.out)
        try:  # optional: re-run the graph in onnxruntime (pip install onnxruntime) and compare
            import onnxruntime as ort
        except ImportError:
            continue
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        feeds = {i.name: v.numpy() for i, v in zip(sess.get_inputs(), args)}
        got = torch.from_numpy(sess.run(None, feeds)[0])
        err = ((got - ref).abs().max() / ref.abs().max()).item()
        print(f"  onnxruntime vs torch: max|Δ|/max|ref| = {err:.2e}")
        assert err < 1e-5, name


if __name__ == "__main__":
    main()
