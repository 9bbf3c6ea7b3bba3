"""The PyTorch peer of `pushforward bench gpu` on a CUDA GPU (issue #17): the same shipped
networks (train/models.py, loaded from models/*.safetensors), the same workloads (Heun on a
uniform grid; classifier-free guidance by one batched call on [x, x] with [y, null]), fp32 with
TF32 off (our WGSL kernels compute in plain fp32; TF32 would not be the same arithmetic).

Run by scripts/device-bench-gpu.sh on the device machine, whose image has PyTorch:

    python3 train/bench_gpu_peer.py models/moons.safetensors models/mnist.safetensors

Prints one line per workload: median and spread of 5 timed solves after 2 warm-up solves
(torch.cuda.synchronize() around each), eager and, where it works there, CUDA-graph replay of
the whole solve (launch overhead removed: the fastest this network runs in PyTorch without
rewriting its kernels).
"""

import os
import statistics
import sys
import tempfile
import time

import torch

def load(path):
    # train/ is the package `pushforward_train` when installed (train/setup.sh); on the device
    # machine it is imported through a link in a temporary folder.
    try:
        from pushforward_train.export import load_model
    except ImportError:
        pkg = tempfile.mkdtemp()
        os.symlink(os.path.dirname(os.path.abspath(__file__)), os.path.join(pkg, "pushforward_train"))
        sys.path.insert(0, pkg)
        from pushforward_train.export import load_model

    return load_model(path)


def heun(f, x, steps):
    h = 1.0 / steps
    for i in range(steps):
        t = i * h
        k1 = f(x, t)
        k2 = f(x + h * k1, t + h)
        x = x + 0.5 * h * (k1 + k2)
    return x


def velocity(model, n, dev, labels=None, w=1.0, null=0):
    """f(x, t) with its time and label tensors made once (as a graph capture needs)."""
    tt = torch.empty(n, device=dev)
    t2 = torch.empty(2 * n, device=dev)
    yy = None if labels is None else torch.cat([labels, torch.full_like(labels, null)])

    def f(x, t):
        if labels is None:
            return model(x, tt.fill_(t))
        v = model(torch.cat([x, x]), t2.fill_(t), yy)
        vc, vu = v.chunk(2)
        return vu + w * (vc - vu)

    return f


def timed(fn, reps=5, warm=2):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(out), min(out), max(out)


def graphed(fn):
    """The whole solve captured once as a CUDA graph; replays it."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay


def main(argv):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(0)}, fp32 (TF32 off)")
    mlp, _ = load(argv[0])
    unet, ucfg = load(argv[1])
    mlp, unet = mlp.to(dev), unet.to(dev)
    k = ucfg["num_classes"]
    d = ucfg["data"]
    shape = (d["channels"], d["height"], d["width"])
    g = torch.Generator(device=dev).manual_seed(1)
    work = []
    for n in (4096, 65536):
        x0 = torch.randn(n, 2, device=dev, generator=g)
        f = velocity(mlp, n, dev)
        work.append((f"moons MLP, {n} points, heun 8", lambda x0=x0, f=f: heun(f, x0, 8)))
    for n, steps in ((16, 10), (64, 10)):
        x0 = torch.randn(n, *shape, device=dev, generator=g)
        y = torch.arange(n, device=dev) % k
        f = velocity(unet, n, dev, y, 2.0, k)
        work.append((f"mnist U-Net, {n} images, w=2, heun {steps}", lambda x0=x0, f=f, s=steps: heun(f, x0, s)))
    x64 = torch.randn(64, *shape, device=dev, generator=g)
    t64 = torch.full((64,), 0.5, device=dev)
    y64 = torch.arange(64, device=dev) % k
    work.append(("mnist U-Net forward, 64 images", lambda: unet(x64, t64, y64)))
    print("\n| workload | PyTorch eager ms (median, min-max of 5) | PyTorch CUDA graph ms |")
    print("|---|---:|---:|")
    with torch.no_grad():
        for name, fn in work:
            try:
                e = timed(fn)
            except Exception as err:  # noqa: BLE001 - one failing workload leaves the others
                print(f"| {name} | failed: {type(err).__name__}: {err} | |", flush=True)
                continue
            try:
                gr = "%.2f (%.2f-%.2f)" % timed(graphed(fn))
            except Exception as err:  # noqa: BLE001 - the eager figure still stands
                gr = f"n/a ({type(err).__name__})"
            print(f"| {name} | {e[0]:.2f} ({e[1]:.2f}-{e[2]:.2f}) | {gr} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
