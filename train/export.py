"""Write / read pushforward weight files (.safetensors + JSON config in
__metadata__["pushforward"]), with no dependency beyond numpy/torch.

Container: 8-byte little-endian header length N, then N bytes of JSON header
(padded with spaces to a multiple of 8), then the raw little-endian tensor bytes.
"""

import json
import struct

import numpy as np
import torch

_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<f8"): "F64"}
_NP = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8")}


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (float32 unless stated); metadata: dict str -> str."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        if not a.flags.c_contiguous:  # (np.ascontiguousarray would turn a 0-d tensor into shape [1])
            a = a.copy(order="C")
        if a.dtype not in _DTYPES:
            a = a.astype("<f4")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        b = a.tobytes()
        header[name] = {
            "dtype": _DTYPES[a.dtype],
            "shape": list(a.shape),
            "data_offsets": [off, off + len(b)],
        }
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Returns (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        s, e = info["data_offsets"]
        dt = _NP[info["dtype"]]
        out[name] = np.frombuffer(raw[base + s : base + e], dtype=dt).reshape(info["shape"]).copy()
    return out, meta


def make_config(arch, data, num_classes, path_kind, provenance):
    return {
        "format_version": 1,
        "arch": arch,
        "data": data,
        "num_classes": int(num_classes),
        "path": {"kind": path_kind},
        "provenance": provenance,
    }


def export_model(model, arch, path, data, num_classes, path_kind, provenance):
    """Export `model` (a train/models.py module built from `arch`) to `path`.

    Tensors are the model's state_dict() as F32; the config JSON goes to
    __metadata__["pushforward"]. The file is read back and checked."""
    sd = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in model.state_dict().items()}
    cfg = make_config(arch, data, num_classes, path_kind, provenance)
    write_safetensors(path, sd, {"pushforward": json.dumps(cfg)})
    back, meta = read_safetensors(path)
    assert set(back) == set(sd), "tensor names differ after read-back"
    for k in sd:
        assert back[k].shape == sd[k].shape and np.array_equal(back[k], sd[k]), k
    assert json.loads(meta["pushforward"]) == json.loads(json.dumps(cfg))
    return cfg


def load_model(path, dtype=torch.float32):
    """Read a pushforward file back into a train/models.py module (eval mode)."""
    from pushforward_train.models import build_model

    tensors, meta = read_safetensors(path)
    cfg = json.loads(meta["pushforward"])
    model = build_model(cfg["arch"], cfg["num_classes"])
    sd = {k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()}
    model.load_state_dict(sd, strict=True)
    return model.to(dtype).eval(), cfg
