"""Your own velocity network → an .onnx file pushforward can sample (issue #14).

    from pushforward_train.onnx_export import export_onnx
    export_onnx(model, {"x": x, "t": t}, declaration, "my_model.onnx")

`export_onnx` checks the declaration (what the graph's inputs and output mean, see
DECLARATION below and train/README.md), exports with PyTorch's TorchScript exporter
(`torch.onnx.export(..., dynamo=False)`, a dynamic batch axis, every weight inside the file),
writes the declaration as JSON into the model's `metadata_props["pushforward"]`, re-runs the
file in onnxruntime against PyTorch on the example inputs and on a ragged batch of random
inputs, and only then moves the file to `path`. A graph that disagrees with PyTorch by more
than `rtol` (max |Δ| / max |PyTorch output|) is deleted and a ValueError says by how much.

The declaration (JSON; `validate_declaration` returns it with every default filled in, which is
what goes into the file):

    {
      "format_version": 1,                          # required, 1
      "inputs": {"x": "x", "t": "t", "y": "y"},     # graph input names; y only when num_classes > 0;
                                                    # a flow map adds "step" or "end" (below)
      "time": {"shape": "batch",                    # "scalar" [] | "batch" [n] | "batch1" [n, 1]
               "direction": "noise_to_data",        # default; or "data_to_noise" (τ = 1 − t)
               "scale": 1.0},                       # default 1; the graph is fed τ·scale
      "output": "velocity",                         # "velocity" | "data" (x1-prediction) | "noise" (x0-prediction)
      "output_eps": 0.05,                           # only for "data"/"noise": denominator floor (default 0.05)
      "num_classes": 0,                             # default 0; K > 0 needs inputs.y
      "null_class": K,                              # only when K > 0; default K; the guidance label
      "data": {"kind": "points2d", "range": [[-3.0, 3.0], [-3.0, 3.0]]},
              # or {"kind": "image", "channels": C, "height": H, "width": W, "range": [-1.0, 1.0]}
      "path": {"kind": "linear"},                   # default; or "cosine" (velocity output only)
      "provenance": {...}                           # free-form object; default {}
    }

Sampler time t runs from 0 (noise) to 1 (data). The graph is fed t_in = τ·scale with τ = t
("noise_to_data") or τ = 1 − t ("data_to_noise"), shaped as time.shape says, x as is, y as
int64 class ids. Its single output o (x's shape) becomes the velocity dx/dt:
  "velocity": v = o (noise_to_data) or v = −o (data_to_noise: o is dx/dτ)
  "data":     v = (o − x) / max(1 − t, output_eps)      (linear path only)
  "noise":    v = (x − o) / max(t, output_eps)          (linear path only)
Guidance w (conditional models): v = v_u + w·(v_c − v_u), v_u with y = null_class.

A flow map (MeanFlow, shortcut models) takes a second time and predicts the average velocity
over [t, t + h]: x + h·v is its jump from t to t + h (output "velocity" only; 1-step sampling).
Declare that input, fed in t's shape, as one of
  "step": h·scale, the jump's length (h ≥ 0; 0 gives the instantaneous velocity)
  "end":  τ(t + h)·scale, the time the jump ends at as the model counts it (MeanFlow's r with
          "data_to_noise": their u(z, r, t) with t = τ(t_sampler)); r = t is instantaneous.
"""

import collections
import inspect
import json
import math
import os
import tempfile

import numpy as np
import torch

DECLARATION_KEY = "pushforward"
FORMAT_VERSION = 1
TIME_SHAPES = ("scalar", "batch", "batch1")
DIRECTIONS = ("noise_to_data", "data_to_noise")
OUTPUTS = ("velocity", "data", "noise")
INPUT_ROLES = ("x", "t", "y", "step", "end")
PATH_KINDS = ("linear", "cosine")
DEFAULT_OUTPUT_EPS = 0.05
# the same bounds as the safetensors config (src/model/config.rs)
MAX_CLASSES = 100_000
MAX_IMAGE_CHANNELS = 4
MAX_IMAGE_SIDE = 1024
MAX_TIME_SCALE = 1e6

_TOP_KEYS = ("format_version", "inputs", "time", "output", "output_eps", "num_classes", "null_class",
             "data", "path", "provenance")


def _err(field, msg):
    return ValueError(f"declaration.{field}: {msg}")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _keys(obj, field, allowed, required=()):
    if not isinstance(obj, dict):
        raise _err(field, f"must be a JSON object, got {type(obj).__name__}")
    for k in obj:
        if k not in allowed:
            raise _err(field, f"unknown key {k!r} (known: {', '.join(allowed)})")
    for k in required:
        if k not in obj:
            raise _err(field, f"missing required key {k!r}")


def _range_pair(v, field):
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_num(a) for a in v)):
        raise _err(field, f"must be [min, max] (two finite numbers), got {v!r}")
    if not v[0] < v[1]:
        raise _err(field, f"{list(v)!r}: min must be < max")
    return [float(v[0]), float(v[1])]


def _data(d):
    if not isinstance(d, dict):
        raise _err("data", f"must be a JSON object, got {type(d).__name__}")
    kind = d.get("kind")
    if kind == "points2d":
        _keys(d, "data", ("kind", "range"), ("kind", "range"))
        r = d["range"]
        if not (isinstance(r, (list, tuple)) and len(r) == 2):
            raise _err("data.range", f"points2d needs [[xmin, xmax], [ymin, ymax]], got {r!r}")
        return {"kind": "points2d", "range": [_range_pair(r[i], f"data.range[{i}]") for i in range(2)]}
    if kind == "image":
        _keys(d, "data", ("kind", "channels", "height", "width", "range"),
              ("kind", "channels", "height", "width", "range"))
        out = {"kind": "image"}
        for k, hi in (("channels", MAX_IMAGE_CHANNELS), ("height", MAX_IMAGE_SIDE), ("width", MAX_IMAGE_SIDE)):
            v = d[k]
            if not (_is_int(v) and 1 <= v <= hi):
                raise _err(f"data.{k}", f"must be an integer in [1, {hi}], got {v!r}")
            out[k] = v
        out["range"] = _range_pair(d["range"], "data.range")
        return out
    raise _err("data.kind", f"{kind!r} is not one of 'points2d', 'image'")


def _provenance(p):
    if not isinstance(p, dict):
        raise _err("provenance", f"must be a JSON object, got {type(p).__name__}")
    if p.get("dataset") is not None and not isinstance(p["dataset"], str):
        raise _err("provenance.dataset", "must be a string or null")
    for k in ("train_steps", "seed"):
        if p.get(k) is not None and not (_is_int(p[k]) and p[k] >= 0):
            raise _err(f"provenance.{k}", "must be a non-negative integer or null")
    if "metrics" in p:
        m = p["metrics"]
        if not (isinstance(m, dict) and all(_is_num(v) for v in m.values())):
            raise _err("provenance.metrics", "must map names to finite numbers")
    try:
        json.dumps(p, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _err("provenance", f"is not plain JSON ({e})") from None
    return json.loads(json.dumps(p))


def validate_declaration(decl):
    """Check a declaration (dict or JSON text) and return it normalised: every default filled in,
    keys in the canonical order. Raises ValueError naming the field on anything unknown or
    inconsistent. Does not look at a model; `check_inputs` compares it with example inputs."""
    if isinstance(decl, (str, bytes)):
        try:
            decl = json.loads(decl)
        except json.JSONDecodeError as e:
            raise ValueError(f"declaration: not valid JSON ({e})") from None
    if not isinstance(decl, dict):
        raise ValueError(f"declaration: must be a JSON object, got {type(decl).__name__}")
    _keys(decl, "", _TOP_KEYS, ("format_version", "inputs", "time", "output", "data"))
    fv = decl["format_version"]
    if not (_is_int(fv) and fv == FORMAT_VERSION):
        raise _err("format_version", f"must be {FORMAT_VERSION}, got {fv!r}")

    nc = decl.get("num_classes", 0)
    if not (_is_int(nc) and 0 <= nc <= MAX_CLASSES):
        raise _err("num_classes", f"must be an integer in [0, {MAX_CLASSES}], got {nc!r}")

    inputs = decl["inputs"]
    _keys(inputs, "inputs", INPUT_ROLES, ("x", "t"))
    if "step" in inputs and "end" in inputs:
        raise _err("inputs", "a flow map declares its second time as step or end, not both")
    for k, v in inputs.items():
        if not (isinstance(v, str) and v):
            raise _err(f"inputs.{k}", f"must be a graph input name (non-empty string), got {v!r}")
    if len(set(inputs.values())) != len(inputs):
        raise _err("inputs", f"names must be distinct, got {inputs!r}")
    if nc > 0 and "y" not in inputs:
        raise _err("inputs.y", f"num_classes is {nc}: a class-conditional model needs the label input y")
    if nc == 0 and "y" in inputs:
        raise _err("inputs.y", "given, but num_classes is 0 (set num_classes to the number of classes)")

    time = decl["time"]
    _keys(time, "time", ("shape", "direction", "scale"), ("shape",))
    if time["shape"] not in TIME_SHAPES:
        raise _err("time.shape", f"{time['shape']!r} is not one of {', '.join(map(repr, TIME_SHAPES))}")
    direction = time.get("direction", "noise_to_data")
    if direction not in DIRECTIONS:
        raise _err("time.direction", f"{direction!r} is not one of {', '.join(map(repr, DIRECTIONS))}")
    scale = time.get("scale", 1.0)
    if not (_is_num(scale) and 0 < scale <= MAX_TIME_SCALE):
        raise _err("time.scale", f"must be a finite number in (0, {MAX_TIME_SCALE:g}], got {scale!r}")

    output = decl["output"]
    if output not in OUTPUTS:
        raise _err("output", f"{output!r} is not one of {', '.join(map(repr, OUTPUTS))}")
    if jump_role(decl) and output != "velocity":
        raise _err("output", "a flow map (inputs.step or inputs.end) predicts the average velocity: "
                             "output must be 'velocity'")
    if "output_eps" in decl and output == "velocity":
        raise _err("output_eps", "only applies to output 'data' or 'noise'")
    eps = decl.get("output_eps", DEFAULT_OUTPUT_EPS)
    if not (_is_num(eps) and 0 < eps <= 0.5):
        raise _err("output_eps", f"must be a number in (0, 0.5], got {eps!r}")

    if nc == 0 and "null_class" in decl:
        raise _err("null_class", "given, but num_classes is 0")
    null = decl.get("null_class", nc)
    if not (_is_int(null) and nc <= null < 2**31):
        raise _err("null_class", f"must be an integer ≥ num_classes {nc} (labels 0..{nc - 1} are real "
                                 f"classes), got {null!r}")

    data = _data(decl["data"])
    path = decl.get("path", {"kind": "linear"})
    _keys(path, "path", ("kind",), ("kind",))
    if path["kind"] not in PATH_KINDS:
        raise _err("path.kind", f"{path['kind']!r} is not one of {', '.join(map(repr, PATH_KINDS))}")
    if output != "velocity" and path["kind"] != "linear":
        raise _err("output", f"{output!r} is converted to a velocity with the linear path's formula; "
                             f"path.kind {path['kind']!r} needs output 'velocity'")
    prov = _provenance(decl.get("provenance", {}))

    out = {"format_version": FORMAT_VERSION,
           "inputs": {k: inputs[k] for k in INPUT_ROLES if k in inputs},
           "time": {"shape": time["shape"], "direction": direction, "scale": float(scale)},
           "output": output}
    if output != "velocity":
        out["output_eps"] = float(eps)
    out["num_classes"] = nc
    if nc > 0:
        out["null_class"] = null
    out.update({"data": data, "path": {"kind": path["kind"]}, "provenance": prov})
    return out


def data_shape(decl):
    """The shape of one sample: [2] for points2d, [C, H, W] for images."""
    d = decl["data"]
    return [2] if d["kind"] == "points2d" else [d["channels"], d["height"], d["width"]]


def jump_role(decl):
    """"step" or "end" for a flow map's second time input, else None."""
    return next((r for r in ("step", "end") if r in decl["inputs"]), None)


def _t_shape(decl, n):
    return {"scalar": [], "batch": [n], "batch1": [n, 1]}[decl["time"]["shape"]]


def check_inputs(decl, names, tensors):
    """Compare a normalised declaration with the graph's inputs (names, tensors in call order)."""
    roles = {v: k for k, v in decl["inputs"].items()}
    for k, v in decl["inputs"].items():
        if v not in names:
            raise _err(f"inputs.{k}", f"{v!r} is not among the example inputs {names}")
    extra = [nm for nm in names if nm not in roles]
    if extra:
        raise ValueError(f"example inputs {extra} are not declared as x, t, y, step or end: the sampler feeds only "
                         f"those (make the others constants or defaults of forward())")
    by = dict(zip(names, tensors))
    x, t = by[decl["inputs"]["x"]], by[decl["inputs"]["t"]]
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
        raise ValueError(f"input x ({decl['inputs']['x']!r}) must be a float32 tensor, got "
                         f"{getattr(x, 'dtype', type(x).__name__)}")
    want = data_shape(decl)
    if x.dim() != 1 + len(want) or list(x.shape[1:]) != want or x.shape[0] < 1:
        raise ValueError(f"input x has shape {list(x.shape)}, but data {decl['data']['kind']} needs "
                         f"[n, {', '.join(map(str, want))}]")
    n = x.shape[0]
    for role in ("t", jump_role(decl)):
        if role is None:
            continue
        v = by[decl["inputs"][role]]
        if not isinstance(v, torch.Tensor) or v.dtype != torch.float32:
            raise ValueError(f"input {role} ({decl['inputs'][role]!r}) must be a float32 tensor, got "
                             f"{getattr(v, 'dtype', type(v).__name__)}")
        if list(v.shape) != _t_shape(decl, n):
            raise ValueError(f"input {role} has shape {list(v.shape)}, but time.shape {decl['time']['shape']!r} "
                             f"with x's batch {n} means {_t_shape(decl, n)}")
    if "y" in decl["inputs"]:
        y = by[decl["inputs"]["y"]]
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64:
            raise ValueError(f"input y ({decl['inputs']['y']!r}) must be an int64 tensor (torch.long), "
                             f"got {getattr(y, 'dtype', type(y).__name__)}")
        if list(y.shape) != [n]:
            raise ValueError(f"input y has shape {list(y.shape)}, expected [{n}]")
        if int(y.min()) < 0 or int(y.max()) > decl["null_class"]:
            raise ValueError(f"input y has labels outside [0, null_class {decl['null_class']}]")
    return n


# ---- the declared velocity (what the sampler integrates), in any torch dtype --------------

def graph_time(decl, t, n, dtype=torch.float32):
    """Sampler time t (a float, or a [n] tensor for time.shape batch/batch1) -> the graph's t input."""
    tau = t if decl["time"]["direction"] == "noise_to_data" else 1.0 - t
    tin = torch.as_tensor(tau, dtype=torch.float64) * decl["time"]["scale"]
    shape = decl["time"]["shape"]
    if shape == "scalar":
        if tin.dim() != 0:
            raise ValueError("time.shape 'scalar': one t for the whole batch")
        return tin.to(dtype)
    tin = tin.expand(n) if tin.dim() == 0 else tin
    return (tin[:, None] if shape == "batch1" else tin).to(dtype)


def graph_jump(decl, t, h, n, dtype=torch.float32):
    """A flow map's second time input for the jump from sampler time t to t + h (h a float or
    like t), per inputs.step / inputs.end."""
    if jump_role(decl) == "step":
        h = torch.as_tensor(h, dtype=torch.float64)
        tin = h * decl["time"]["scale"]
        shape = decl["time"]["shape"]
        if shape == "scalar":
            return tin.to(dtype)
        tin = tin.expand(n) if tin.dim() == 0 else tin
        return (tin[:, None] if shape == "batch1" else tin).to(dtype)
    return graph_time(decl, torch.as_tensor(t, dtype=torch.float64) + h, n, dtype)


def to_velocity(decl, out, x, t):
    """Graph output -> dx/dt at sampler time t (float or [n] tensor), per the declaration."""
    kind = decl["output"]
    if kind == "velocity":
        return out if decl["time"]["direction"] == "noise_to_data" else -out
    t = torch.as_tensor(t, dtype=out.dtype)
    if t.dim() == 1:
        t = t.reshape([-1] + [1] * (out.dim() - 1))
    eps = decl["output_eps"]
    if kind == "data":
        return (out - x) / torch.clamp(1.0 - t, min=eps)
    return (x - out) / torch.clamp(t, min=eps)


def declared_velocity(model, decl, x, t, y=None, guidance=None, h=0.0):
    """v(x, t) as the sampler defines it: `model` called with the graph's inputs in the order of
    decl["inputs"] (x, t[, y][, step or end]); with y and guidance w: v_u + w·(v_c − v_u), v_u at
    null_class. For a flow map, the average velocity over [t, t + h]."""
    n = x.shape[0]
    jump = jump_role(decl)

    def call(xx, tt, yy, m):
        args = [xx, graph_time(decl, tt, m, x.dtype)] + ([yy] if yy is not None else [])
        if jump:
            hh = h if not torch.is_tensor(h) or h.dim() == 0 or m == n else torch.cat([h, h])
            args.append(graph_jump(decl, tt, hh, m, x.dtype))
        return to_velocity(decl, model(*args), xx, tt)

    if y is None or guidance is None:
        return call(x, t, y, n)
    t2 = t if not torch.is_tensor(t) or t.dim() == 0 else torch.cat([t, t])
    xx = torch.cat([x, x])
    yy = torch.cat([y, torch.full_like(y, decl["null_class"])])
    v = call(xx, t2, yy, 2 * n)
    vc, vu = v[:n], v[n:]
    return vu + guidance * (vc - vu)


# ---- export -------------------------------------------------------------------------------

def _input_names(model, example_inputs):
    if isinstance(example_inputs, dict):
        return list(example_inputs.keys()), list(example_inputs.values())
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    vals = list(example_inputs)
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) < len(vals):
        raise ValueError(f"{len(vals)} example inputs but forward() takes {len(params)} positional arguments; "
                         f"pass example_inputs as a dict {{name: tensor}} in forward()'s order")
    return [p.name for p in params[: len(vals)]], vals


def _ort_session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4  # failures are raised as exceptions and reported by the caller
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_onnx(path_or_session, feeds):
    """feeds: dict name -> numpy array or tensor; returns the single output as a numpy array."""
    sess = _ort_session(path_or_session) if isinstance(path_or_session, (str, os.PathLike)) else path_or_session
    np_feeds = {k: (v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)) for k, v in feeds.items()}
    return sess.run(None, np_feeds)[0]


def rel_err(got, ref):
    """max |got − ref| / max |ref| (float64); inf on a NaN/Inf or shape mismatch."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape or not np.all(np.isfinite(got)):
        return math.inf
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def ragged_inputs(decl, names, n, seed=0, t_values=None):
    """Random graph inputs for a batch of n (x ~ N(0, 1); sampler times spread over [0.03, 0.97];
    labels cycling over the classes with the null class every third row)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn([n] + data_shape(decl), generator=g)
    if t_values is None:
        t_values = torch.linspace(0.03, 0.97, n, dtype=torch.float64)[torch.randperm(n, generator=g)]
        if decl["time"]["shape"] == "scalar":
            t_values = float(t_values[0])
    by = {decl["inputs"]["x"]: x, decl["inputs"]["t"]: graph_time(decl, t_values, n)}
    if jump_role(decl):
        # jumps of every length the sampler asks for: 0 (instantaneous) up to the rest of [t, 1]
        tv = torch.as_tensor(t_values, dtype=torch.float64)
        frac = torch.rand(tv.shape, generator=g, dtype=torch.float64)
        by[decl["inputs"][jump_role(decl)]] = graph_jump(decl, tv, frac * (1.0 - tv), n)
    if "y" in decl["inputs"]:
        k = decl["num_classes"]
        y = torch.tensor([decl["null_class"] if i % 3 == 1 else i % k for i in range(n)], dtype=torch.int64)
        by[decl["inputs"]["y"]] = y
    return [by[nm] for nm in names], t_values


def op_types(onnx_model):
    """Counter of op_type over the main graph (and any subgraphs)."""
    c = collections.Counter()

    def walk(g):
        for node in g.node:
            c[node.op_type if not node.domain or node.domain == "ai.onnx" else f"{node.domain}:{node.op_type}"] += 1
            for a in node.attribute:
                if a.g is not None and len(a.g.node):
                    walk(a.g)
                for sg in a.graphs:
                    walk(sg)

    walk(onnx_model.graph)
    return c


def read_declaration(path):
    """The declaration stored in an .onnx file's metadata_props (validated), or None."""
    import onnx

    m = onnx.load(path, load_external_data=False)
    for p in m.metadata_props:
        if p.key == DECLARATION_KEY:
            return validate_declaration(p.value)
    return None


def export_onnx(model, example_inputs, declaration, path, opset=17, rtol=1e-4, ragged_batch=7,
                output_name="out", seed=0, verbose=True):
    """Export `model` to `path` as ONNX with `declaration` in metadata_props["pushforward"].

    example_inputs: a dict {graph input name: tensor} in the order forward() takes them, or a
    tuple (names are then forward()'s parameter names). The graph input names are these names;
    declaration["inputs"] maps x / t / y onto them. Raises ValueError (nothing written) on a bad
    declaration, inputs that do not match it, a graph that does not run at another batch size,
    or onnxruntime disagreeing with PyTorch by more than rtol (relative to max |output|) on the
    example inputs or on a ragged batch of `ragged_batch` random inputs. Returns a report dict
    (declaration as written, op counts, measured errors, file size)."""
    import onnx

    decl = validate_declaration(declaration)
    names, vals = _input_names(model, example_inputs)
    n = check_inputs(decl, names, vals)
    if not 9 <= opset <= 21:
        raise ValueError(f"opset {opset}: pushforward reads opsets 13–21 (17 recommended)")
    path = os.fspath(path)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = model(*vals)
        if not isinstance(ref, torch.Tensor):
            raise ValueError(f"forward() must return one tensor, got {type(ref).__name__}")
        x = vals[names.index(decl["inputs"]["x"])]
        if list(ref.shape) != list(x.shape):
            raise ValueError(f"the output has shape {list(ref.shape)}, x has {list(x.shape)}: the output "
                             f"({decl['output']}) must have x's shape")
        if not torch.isfinite(ref).all():
            raise ValueError("PyTorch's output on the example inputs is not finite")

        dyn = {decl["inputs"]["x"]: {0: "n"}, output_name: {0: "n"}}
        if decl["time"]["shape"] != "scalar":
            dyn[decl["inputs"]["t"]] = {0: "n"}
        if "y" in decl["inputs"]:
            dyn[decl["inputs"]["y"]] = {0: "n"}
        if jump_role(decl) and decl["time"]["shape"] != "scalar":
            dyn[decl["inputs"][jump_role(decl)]] = {0: "n"}

        out_dir = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=out_dir)
        os.close(fd)
        try:
            # Traced with autograd on: under no_grad, nn.MultiheadAttention (and nn.Transformer*)
            # take their fused inference path, aten::_native_multi_head_attention, which the
            # exporter cannot write.
            with torch.enable_grad():
                torch.onnx.export(model, tuple(vals), tmp, input_names=names, output_names=[output_name],
                                  dynamic_axes=dyn, opset_version=opset, do_constant_folding=True,
                                  dynamo=False)
            m = onnx.load(tmp)
            for init in m.graph.initializer:
                if init.data_location == onnx.TensorProto.EXTERNAL:
                    raise ValueError(f"initializer {init.name!r} is stored outside the file (model over "
                                     f"2 GiB?): pushforward reads one self-contained file")
            if len(m.graph.output) != 1:
                raise ValueError(f"the graph has {len(m.graph.output)} outputs; pushforward needs exactly one")
            graph_inputs = [i.name for i in m.graph.input]
            missing = [nm for nm in decl["inputs"].values() if nm not in graph_inputs]
            if missing:
                raise ValueError(f"declared inputs {missing} are not graph inputs {graph_inputs} "
                                 f"(an input forward() ignores is dropped by the exporter)")
            del m.metadata_props[:]
            m.metadata_props.add(key=DECLARATION_KEY, value=json.dumps(decl, separators=(",", ":")))
            onnx.checker.check_model(m, full_check=True)
            onnx.save(m, tmp)

            sess = _ort_session(tmp)
            errs = {}
            got = run_onnx(sess, dict(zip(graph_inputs, [vals[names.index(g)] for g in graph_inputs])))
            errs[f"example_b{n}"] = rel_err(got, ref.numpy())
            nr = ragged_batch if ragged_batch != n else ragged_batch + 2
            rvals, _ = ragged_inputs(decl, names, nr, seed=seed)
            with torch.no_grad():
                rref = model(*rvals).numpy()
            try:
                rgot = run_onnx(sess, dict(zip(graph_inputs, [rvals[names.index(g)] for g in graph_inputs])))
            except Exception as e:  # onnxruntime's own error types
                raise ValueError(f"the exported graph does not run at batch {nr} (a reshape or expand with a "
                                 f"fixed batch size? use x.shape[0] or -1): {e}") from None
            errs[f"ragged_b{nr}"] = rel_err(rgot, rref)
            bad = {k: v for k, v in errs.items() if not v <= rtol}
            if bad:
                raise ValueError("onnxruntime disagrees with PyTorch: max|Δ|/max|out| "
                                 + ", ".join(f"{k} {v:.2e}" for k, v in bad.items())
                                 + f" > rtol {rtol:g}; file not written (a Python branch on a tensor's value, "
                                 f"a .item() or float() of a tensor, or a loop whose length depends on the input "
                                 f"is frozen by tracing)")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it 0600
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    finally:
        model.train(was_training)
    report = {"path": path, "bytes": os.path.getsize(path), "opset": opset, "declaration": decl,
              "max_rel_err": errs, "op_types": dict(sorted(op_types(m).items())), "inventory": op_inventory(m)}
    if verbose:
        print(f"{path}: {report['bytes']} bytes, opset {opset}; onnxruntime vs torch (max|Δ|/max|out|): "
              + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    return report


def op_inventory(onnx_model):
    """op_type counts split into the data path (nodes whose outputs depend on the values of the
    graph inputs) and shape-only nodes (their outputs depend only on input *shapes* and constants:
    Shape and everything computed from it, which an executor folds per batch size; Constant
    nodes counted apart), plus the distinct attribute sets each data-path op_type uses."""
    import onnx

    g = onnx_model.graph
    dynamic = {i.name for i in g.input} - {init.name for init in g.initializer}
    data, shape_only, constants = collections.Counter(), collections.Counter(), 0
    attrs = collections.defaultdict(set)
    for node in g.node:  # nodes are topologically sorted
        live = node.op_type != "Shape" and any(i in dynamic for i in node.input if i)
        if live:
            dynamic.update(o for o in node.output if o)
            data[node.op_type] += 1
            a = []
            for at in node.attribute:
                v = onnx.helper.get_attribute_value(at)
                if isinstance(v, bytes):
                    v = v.decode()
                elif isinstance(v, (list, tuple)):
                    v = tuple(x.decode() if isinstance(x, bytes) else x for x in v)
                elif not isinstance(v, (int, float, str)):
                    v = type(v).__name__
                a.append(f"{at.name}={v}")
            attrs[node.op_type].add(", ".join(sorted(a)))
        elif node.op_type == "Constant":
            constants += 1
        else:
            shape_only[node.op_type] += 1
    return {"data_path": dict(sorted(data.items())), "shape_only": dict(sorted(shape_only.items())),
            "constant_nodes": constants, "initializers": len(g.initializer),
            "data_path_attributes": {k: sorted(v) for k, v in sorted(attrs.items())}}


def onnx_to_f16(src, dst, rtol=1e-2):
    """Writes `dst`: the ONNX file `src` with every float32 initializer stored as float16 and a
    Cast back to float32 in front of its readers, so the graph still computes in float32 (and
    stays valid for onnxruntime) while its weights take half the bytes; pushforward widens them
    on load and folds the Casts. Runs both files in onnxruntime on random inputs of the
    declared shapes and refuses to write one whose output differs by more than `rtol` of the
    output's largest value. Returns that difference."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load(src)
    g = model.graph
    casts = []
    for init in g.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(init)
        if not np.isfinite(w).all() or np.abs(w).max(initial=0.0) > 65504.0:
            raise ValueError(f"initializer {init.name}: values do not fit in float16")
        name = init.name
        half = numpy_helper.from_array(w.astype(np.float16), name + "__f16")
        init.CopyFrom(half)
        casts.append(onnx.helper.make_node("Cast", [name + "__f16"], [name], to=onnx.TensorProto.FLOAT,
                                           name=name + "__widen"))
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    decl = json.loads(next(p.value for p in model.metadata_props if p.key == "pushforward"))
    rng = np.random.default_rng(0)
    n = 3
    feeds = {}
    for i in g.input:
        if i.name == decl["inputs"]["x"]:
            feeds[i.name] = rng.standard_normal((n, *data_shape(decl))).astype(np.float32)
        elif i.name == decl["inputs"]["t"]:
            t = torch.from_numpy(rng.random(() if decl["time"]["shape"] == "scalar" else (n,)))
            feeds[i.name] = graph_time(decl, t, n).numpy().astype(np.float32)
        else:
            feeds[i.name] = np.arange(n, dtype=np.int64) % max(1, decl.get("num_classes", 1))
    ref = ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    out = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    err = float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-12))
    if err > rtol:
        raise ValueError(f"the float16 weights change the output by {err:.2e} of its largest value (> {rtol})")
    onnx.save(model, dst)
    return err
