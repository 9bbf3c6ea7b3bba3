"""Write the "classic ops" ONNX parity fixtures to tests/fixtures/onnx/.

    nice -n 10 train/.venv/bin/python -m pushforward_train.make_onnx_fixtures_classic [--only NAME,...] [--out DIR]

  unet_classic       class-conditional U-Net (train/onnx_models_classic.py UNetClassic) on 1×16×16:
                     AveragePool, MaxPool, two ConvTranspose (k4 s2 p1; k3 s2 p1 output_padding 1),
                     a depthwise Conv (group = channels), a dilated Conv (dilation 2), no normalisation
  upsample_bilinear  unconditional 1×8×8 net whose only spatial ops are nn.Upsample(×2, bilinear,
                     align_corners=False) (ONNX Resize) and a stride-2 3×3 Conv back to 8×8

Same output format as train/make_onnx_fixtures.py (whose helpers this reuses): NAME.onnx with the
declaration in metadata_props["pushforward"], NAME_expected.safetensors (x_b1, t_b1, (y_b1,) out_b1,
x_b7, t_b7, (y_b7,) out_b7, time_b*, v_b*, x0, (y_solve,) frames_heun4, samples_heun4), and a
separate manifest, tests/fixtures/onnx/manifest_classic.json: declarations, op_type counts, every
Conv / ConvTranspose / AveragePool / MaxPool / Resize node with its attributes, sizes, measured
errors, and each classic op's share of the output: max|Δ|/max|out| at batch 7 when that op is
replaced by the plausible mistake an executor could make (e.g. AveragePool → MaxPool, kernel not
flipped in ConvTranspose, output_padding on the wrong side, dilation ignored, Resize with another
coordinate_transformation_mode), so that a wrong op cannot hide under the parity tolerance.
"""

import copy
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import pushforward_train.make_onnx_fixtures as mof
from pushforward_train.make_onnx_fixtures import IMG16
from pushforward_train.onnx_export import rel_err
import pushforward_train.onnx_models_classic as oc
from pushforward_train.paths import REPO

OUT = os.path.join(REPO, "tests", "fixtures", "onnx")
MANIFEST = "manifest_classic.json"
SRC = "train/make_onnx_fixtures_classic.py"
IMG8 = {"kind": "image", "channels": 1, "height": 8, "width": 8, "range": [-1.0, 1.0]}
NODE_OPS = ("Conv", "ConvTranspose", "AveragePool", "MaxPool", "Resize")


def build_unet_classic():
    torch.manual_seed(1411)
    return oc.UNetClassic(), mof.decl(
        {"x": "x", "t": "t", "y": "y"}, "batch", "velocity", IMG16, nc=3, source=SRC,
        dataset="none (seeded random init)",
        architecture="U-Net 16/24/32 ch without normalisation, SiLU, FiLM; AvgPool2d(2) 16→8, MaxPool2d(2) 8→4, "
                     "ConvTranspose2d(k4 s2 p1) 4→8, ConvTranspose2d(k3 s2 p1 output_padding 1) 8→16, depthwise "
                     "3×3 conv at 16×16, dilated (2) 3×3 conv at 8×8")


def build_upsample_bilinear():
    torch.manual_seed(1412)
    return oc.UpsampleBilinear(), mof.decl(
        {"x": "x", "t": "t"}, "batch", "velocity", IMG8, source=SRC, dataset="none (seeded random init)",
        architecture="1×1 convs + time bias; nn.Upsample(×2, bilinear, align_corners=False) 8→16, then a "
                     "stride-2 3×3 conv 16→8")


FIXTURES = {"unet_classic": build_unet_classic, "upsample_bilinear": build_upsample_bilinear}
SEEDS = {"unet_classic": 200, "upsample_bilinear": 201}  # parity-input seeds (b1; b7 = +1000)


# ---- each classic op's share of the output ---------------------------------------------------

class _ConvTCrop(nn.Module):
    """A stride-2 ConvTranspose computed in full (no padding) and cropped at `start`: the module's
    own result for start = padding; start = 0 puts the padding / output_padding on the wrong side."""

    def __init__(self, ct, start):
        super().__init__()
        self.ct, self.start = ct, start

    def forward(self, h):
        full = F.conv_transpose2d(h, self.ct.weight, self.ct.bias, stride=self.ct.stride)
        n = 2 * h.shape[-1]
        return full[:, :, self.start:self.start + n, self.start:self.start + n]


def _flip(conv):
    conv.weight.data = conv.weight.data.flip(-1, -2)


def _no_dilation(conv):
    conv.dilation, conv.padding = (1, 1), (1, 1)


UNET_VARIANTS = {
    "avgpool_as_maxpool": lambda m: setattr(m, "pool0", nn.MaxPool2d(2)),
    "avgpool_as_subsample": lambda m: setattr(m, "pool0", nn.MaxPool2d(1, stride=2)),
    "maxpool_as_avgpool": lambda m: setattr(m, "pool1", nn.AvgPool2d(2)),
    "convT_k4_kernel_not_flipped": lambda m: _flip(m.up1),
    "convT_k4_pads_on_wrong_side": lambda m: setattr(m, "up1", _ConvTCrop(m.up1, 0)),
    "convT_k3_op1_kernel_not_flipped": lambda m: _flip(m.up0),
    "convT_k3_op1_output_padding_first": lambda m: setattr(m, "up0", _ConvTCrop(m.up0, 0)),
    "depthwise_removed": lambda m: setattr(m.d0, "conv1", nn.Identity()),
    "depthwise_kernel_flipped": lambda m: _flip(m.d0.conv1),
    "dilation_ignored": lambda m: _no_dilation(m.d1.conv1),
    "class_label_as_null": None,  # not an op: y replaced by the null class
}


def unet_shares(model, feeds):
    x, t, y = feeds
    with torch.no_grad():
        ref = model(*feeds)
        for name, mod in (("up1", model.up1), ("up0", model.up0)):  # _ConvTCrop(start = padding) is exact
            h = torch.randn(2, mod.in_channels, 4 if name == "up1" else 8, 4 if name == "up1" else 8,
                            generator=torch.Generator().manual_seed(0))
            assert torch.allclose(_ConvTCrop(mod, 1)(h), mod(h), atol=1e-5), name
    shares = {}
    for name, change in UNET_VARIANTS.items():
        m = copy.deepcopy(model)
        args = [x, t, torch.full_like(y, 3)] if change is None else list(feeds)
        if change is not None:
            change(m)
        with torch.no_grad():
            shares[name] = rel_err(m(*args).numpy(), ref.numpy())
    return shares


def resize_shares(path, feeds, out):
    """onnxruntime with the Resize node's attributes changed vs the true output (the export says
    half_pixel; pytorch_half_pixel differs only for an output side of 1, so its share is 0 here)."""
    import onnx

    shares = {}
    for name, attrs in (("resize_as_pytorch_half_pixel", {"coordinate_transformation_mode": "pytorch_half_pixel"}),
                        ("resize_as_asymmetric", {"coordinate_transformation_mode": "asymmetric"}),
                        ("resize_as_align_corners", {"coordinate_transformation_mode": "align_corners"}),
                        ("resize_as_nearest", {"mode": "nearest"})):
        m = onnx.load(path)
        (node,) = [nd for nd in m.graph.node if nd.op_type == "Resize"]
        for k, v in attrs.items():
            (a,) = [a for a in node.attribute if a.name == k]
            a.s = v.encode()
        sess = _ort_session_bytes(m.SerializeToString())
        shares[name] = rel_err(sess.run(None, feeds)[0], out)
    return shares


def _ort_session_bytes(b):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.log_severity_level = 4
    return ort.InferenceSession(b, so, providers=["CPUExecutionProvider"])


def node_list(path):
    """Every Conv / ConvTranspose / AveragePool / MaxPool / Resize node: name, attributes, weight shape."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    inits = {i.name: list(numpy_helper.to_array(i).shape) for i in m.graph.initializer}
    consts = {}
    for nd in m.graph.node:
        if nd.op_type == "Constant":
            consts[nd.output[0]] = numpy_helper.to_array(nd.attribute[0].t).tolist()
    rows = []
    for nd in m.graph.node:
        if nd.op_type not in NODE_OPS:
            continue
        attrs = {}
        for a in nd.attribute:
            v = onnx.helper.get_attribute_value(a)
            attrs[a.name] = v.decode() if isinstance(v, bytes) else (list(v) if isinstance(v, (list, tuple)) else v)
        row = {"op": nd.op_type, "name": nd.name, "attributes": dict(sorted(attrs.items()))}
        if nd.op_type in ("Conv", "ConvTranspose"):
            row["weight"] = inits.get(nd.input[1])
        if nd.op_type == "Resize":
            row["inputs"] = {k: (consts.get(nm, "initializer" if nm in inits else nm) if nm else "")
                             for k, nm in zip(("X", "roi", "scales", "sizes"), nd.input)}
            row["inputs"]["X"] = "data"
        rows.append(row)
    return rows


# ---- one fixture (make_onnx_fixtures.make_fixture, with each classic op's share of the output) -

def make(name, out_dir):
    def extras(model, d, path, names, feeds7, tensors, ort_model):
        if name == "unet_classic":
            shares = unet_shares(model, feeds7)
        else:
            shares = resize_shares(path, {nm: a.numpy() for nm, a in zip(names, feeds7)}, tensors["out_b7"])
        print("  op shares of the output (b7): " + ", ".join(f"{k} {v:.2f}" for k, v in shares.items()))
        return {"op_shares_of_output_b7": shares}, {}, {"op_nodes": node_list(path)}

    return mof.make_fixture(name, FIXTURES[name], SEEDS[name], 17, out_dir, SRC, extras)


def main():
    mof.run(__doc__, FIXTURES, make, MANIFEST, SRC)

if __name__ == "__main__":
    main()
