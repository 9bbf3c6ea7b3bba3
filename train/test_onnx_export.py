"""Self-check of onnx_export.export_onnx (by hand; not run by npm test / CI):

    nice -n 10 pushforward-test-onnx-export

Exports small models to a temporary folder: good declarations write a file whose metadata is
the normalised declaration; bad declarations, mismatched inputs and graphs that disagree with
PyTorch raise ValueError and leave no file behind.
"""

import json
import os
import tempfile
import warnings

import torch
import torch.nn as nn

from pushforward_train.onnx_export import export_onnx, read_declaration, validate_declaration

warnings.filterwarnings("ignore")

POINTS = {"kind": "points2d", "range": [[-3, 3], [-3, 3]]}


class Tiny(nn.Module):
    def __init__(self, nc=0):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.emb = nn.Embedding(nc + 1, 2) if nc else None

    def forward(self, x, t, y=None):
        h = self.lin(torch.cat([x, t.reshape(-1, 1).expand(x.shape[0], 1)], 1))
        return h + self.emb(y) if self.emb is not None else h


class BranchOnValue(Tiny):
    """Traces one branch: the graph is wrong for inputs that take the other."""

    def forward(self, x, t, y=None):
        h = super().forward(x, t)
        return h * 2 if float(t.mean()) > 0.5 else h


class FixedBatch(Tiny):
    def forward(self, x, t, y=None):
        return super().forward(x, t).reshape(1, 2) if x.shape[0] == 1 else super().forward(x, t)


class TinyMap(Tiny):
    """A flow map: the second time input (a step length or an end time) shifts the output."""

    def forward(self, x, t, h):
        return super().forward(x, t) + h.reshape(-1, 1)


def base(**kw):
    d = {"format_version": 1, "inputs": {"x": "x", "t": "t"}, "time": {"shape": "batch"}, "output": "velocity",
         "data": POINTS}
    d.update(kw)
    return d


def expect_error(fn, needle):
    try:
        fn()
    except ValueError as e:
        assert needle in str(e), f"expected {needle!r} in: {e}"
        return str(e)
    raise AssertionError(f"no ValueError (wanted {needle!r})")


def main():
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    torch.manual_seed(0)
    x, t = torch.randn(3, 2), torch.rand(3)
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "m.onnx")
        rep = export_onnx(Tiny(), {"x": x, "t": t}, base(provenance={"dataset": "mine"}), p, verbose=False)
        d = read_declaration(p)
        assert d == rep["declaration"] and d["time"] == {"shape": "batch", "direction": "noise_to_data", "scale": 1.0}
        assert d["path"] == {"kind": "linear"} and d["num_classes"] == 0 and "null_class" not in d
        # a tuple: names from forward()'s signature; t shaped [n, 1]; conditional with y
        export_onnx(Tiny(4), (x, t[:, None], torch.tensor([0, 1, 4])),
                    base(inputs={"x": "x", "t": "t", "y": "y"}, time={"shape": "batch1"}, num_classes=4), p,
                    verbose=False)
        assert read_declaration(p)["null_class"] == 4
        # scalar t, data_to_noise, x1-prediction
        dd = base(time={"shape": "scalar", "direction": "data_to_noise", "scale": 1000}, output="data")
        export_onnx(Tiny(), {"x": x, "t": torch.tensor(500.0)}, dd, p, verbose=False)
        assert read_declaration(p)["output_eps"] == 0.05
        # flow maps: the step length, or MeanFlow's end time r, in t's shape
        export_onnx(TinyMap(), {"x": x, "t": t, "h": t / 2}, base(inputs={"x": "x", "t": "t", "step": "h"}), p,
                    verbose=False)
        assert read_declaration(p)["inputs"] == {"x": "x", "t": "t", "step": "h"}
        export_onnx(TinyMap(), {"z": x, "t": t[:, None], "r": t[:, None] / 2},
                    base(inputs={"x": "z", "t": "t", "end": "r"}, time={"shape": "batch1",
                                                                         "direction": "data_to_noise"}), p,
                    verbose=False)
        assert read_declaration(p)["inputs"]["end"] == "r"

        q = os.path.join(tmp, "bad.onnx")
        cases = [
            (base(extra=1), "unknown key 'extra'"),
            (base(format_version=2), "format_version"),
            (base(time={"shape": "vector"}), "time.shape"),
            (base(time={"shape": "batch", "direction": "up"}), "time.direction"),
            (base(time={"shape": "batch", "scale": 0}), "time.scale"),
            (base(output="score"), "declaration.output"),
            (base(output_eps=0.1), "output_eps"),
            (base(num_classes=3), "inputs.y"),
            (base(null_class=0), "null_class"),
            (base(data={"kind": "points2d", "range": [[1, -1], [0, 1]]}), "data.range[0]"),
            (base(data={"kind": "image", "channels": 3, "height": 8}), "missing required key 'width'"),
            (base(data={"kind": "voxels"}), "data.kind"),
            (base(output="noise", path={"kind": "cosine"}), "path.kind 'cosine' needs output 'velocity'"),
            (base(inputs={"x": "x", "t": "time"}), "'time' is not among the example inputs"),
            (base(time={"shape": "batch1"}), "time.shape 'batch1'"),
            (base(data={"kind": "image", "channels": 1, "height": 2, "width": 1, "range": [-1, 1]}),
             "needs [n, 1, 2, 1]"),
        ]
        maps = [
            (base(inputs={"x": "x", "t": "t", "step": "h", "end": "h"}), "step or end, not both"),
            (base(inputs={"x": "x", "t": "t", "step": "h"}, output="data"), "output must be 'velocity'"),
            (base(inputs={"x": "x", "t": "t", "end": "r"}), "'r' is not among the example inputs"),
            (base(), "not declared as x, t, y, step or end"),
        ]
        for dd, needle in maps:
            expect_error(lambda: export_onnx(TinyMap(), {"x": x, "t": t, "h": t}, dd, q, verbose=False), needle)
        expect_error(lambda: export_onnx(TinyMap(), {"x": x, "t": t, "h": t[:, None]},
                                         base(inputs={"x": "x", "t": "t", "step": "h"}), q, verbose=False),
                     "input step has shape [3, 1]")
        for dd, needle in cases:
            expect_error(lambda: export_onnx(Tiny(), {"x": x, "t": t}, dd, q, verbose=False), needle)
        expect_error(lambda: export_onnx(Tiny(), {"x": x.double(), "t": t}, base(), q, verbose=False), "float32")
        expect_error(lambda: export_onnx(Tiny(2), {"x": x, "t": t, "y": torch.tensor([0, 1, 1], dtype=torch.int32)},
                                         base(inputs={"x": "x", "t": "t", "y": "y"}, num_classes=2), q,
                                         verbose=False), "int64")
        expect_error(lambda: export_onnx(Tiny(), {"x": x, "t": t, "s": t}, base(), q, verbose=False),
                     "not declared as x, t, y, step or end")
        expect_error(lambda: export_onnx(Tiny(), {"x": x, "t": t}, json.dumps(base())[:-1], q, verbose=False),
                     "not valid JSON")
        msg = expect_error(lambda: export_onnx(BranchOnValue(), {"x": x, "t": torch.full((3,), 0.9)}, base(), q,
                                               verbose=False), "onnxruntime disagrees with PyTorch")
        msg2 = expect_error(lambda: export_onnx(FixedBatch(), {"x": x[:1], "t": t[:1]}, base(), q, verbose=False),
                            "does not run at batch 7")
        assert not os.path.exists(q) and sorted(os.listdir(tmp)) == ["m.onnx"], os.listdir(tmp)
        assert validate_declaration(json.dumps(base())) == validate_declaration(base())
    print(f"test_onnx_export.py: ok ({len(cases) + len(maps) + 7} rejected declarations/inputs/graphs, e.g.\n  {msg}\n  "
          f"{msg2[:160]}…)")


if __name__ == "__main__":
    main()
