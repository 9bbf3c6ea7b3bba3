"""tests/fixtures/onnx/moons_onnx_f16.onnx and manifest_f16.json: the moons ONNX fixture with its
weights stored as float16 (onnx_to_f16), for tests/f16_models.rs and the reader's tests.

    train/.venv/bin/python -m pushforward_train.make_onnx_f16_fixture
"""

import collections
import json
import os

from .onnx_export import onnx_to_f16

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures", "onnx")


def main():
    import onnx

    src, name = os.path.join(FIXTURES, "moons_onnx.onnx"), "moons_onnx_f16"
    dst = os.path.join(FIXTURES, f"{name}.onnx")
    err = onnx_to_f16(src, dst)
    m = onnx.load(dst)
    entry = {
        "onnx": f"{name}.onnx",
        "onnx_bytes": os.path.getsize(dst),
        "opset": next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")),
        "nodes": len(m.graph.node),
        "op_types": dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items())),
        "declaration": json.loads(next(p.value for p in m.metadata_props if p.key == "pushforward")),
        "f16_output_rel_error": err,
    }
    with open(os.path.join(FIXTURES, "manifest_f16.json"), "w") as f:
        json.dump({"generated_by": "train/make_onnx_f16_fixture.py", "fixtures": {name: entry}}, f, indent=1)
    print(f"{dst}: {entry['onnx_bytes']} bytes, output within {err:.1e} of the float32 file in onnxruntime")


if __name__ == "__main__":
    main()
