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


def make_config(arch, data, num_classes, path_kind, provenance, class_names=None):
    cfg = {
        "format_version": 1,
        "arch": arch,
        "data": data,
        "num_classes": int(num_classes),
        "path": {"kind": path_kind},
        "provenance": provenance,
    }
    if class_names:
        assert len(class_names) == num_classes, (class_names, num_classes)
        cfg["class_names"] = list(class_names)
    return cfg


def to_f16(tensors):
    """The tensors rounded to IEEE half precision (round to nearest even), refusing any value
    outside its range (|x| > 65504 would become inf) rather than writing a broken model."""
    out = {}
    for k, v in tensors.items():
        v = np.asarray(v, dtype=np.float32)
        big = np.abs(v[np.isfinite(v)]).max(initial=0.0)
        if not np.isfinite(v).all() or big > 65504.0:
            raise ValueError(f"{k}: values up to {big} do not fit in float16 (max 65504); export it as f32")
        out[k] = v.astype("<f2")
    return out


def export_model(model, arch, path, data, num_classes, path_kind, provenance, dtype="f32", class_names=None):
    """Export `model` (a train/models.py module built from `arch`) to `path`.

    Tensors are the model's state_dict() as F32, or F16 with dtype="f16" (half the file; the
    sampler widens them exactly on load); the config JSON goes to __metadata__["pushforward"].
    The file is read back and checked."""
    if dtype not in ("f32", "f16"):
        raise ValueError(f"dtype must be 'f32' or 'f16', not {dtype!r}")
    sd = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in model.state_dict().items()}
    if dtype == "f16":
        sd = to_f16(sd)
    cfg = make_config(arch, data, num_classes, path_kind, provenance, class_names)
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


def convert_f16(src, dst):
    """Writes `dst`: the weights file `src` with every tensor in F16 and the same config (its
    provenance notes the conversion). Returns the largest relative rounding error."""
    tensors, meta = read_safetensors(src)
    half = to_f16(tensors)
    cfg = json.loads(meta["pushforward"])
    cfg.setdefault("provenance", {})["weights"] = "f16, rounded from the f32 file"
    write_safetensors(dst, half, {**meta, "pushforward": json.dumps(cfg)})
    worst = 0.0
    for k, v in tensors.items():
        v = v.astype(np.float32)
        scale = np.abs(v).max(initial=0.0)
        if scale > 0:
            worst = max(worst, float(np.abs(half[k].astype(np.float32) - v).max() / scale))
    return worst


def main(argv=None):
    """pushforward-f16 SRC.safetensors DST.safetensors: the F16 copy of a weights file."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("src")
    ap.add_argument("dst")
    a = ap.parse_args(argv)
    worst = convert_f16(a.src, a.dst)
    print(f"{a.dst}: f16 copy of {a.src}; largest rounding error {worst:.2e} of a tensor's max |value|")


if __name__ == "__main__":
    main()
