"""Small CNN digit classifier for evaluating the mnist model (accuracy of the requested
class, Frechet distance in its 128-d penultimate features).

Trained on the same 9k train split as the flow model; weights are cached in
train/mnist_classifier.safetensors (plain safetensors, no pushforward config).

    pushforward-classifier [--threads T]   # load (or train, if the file is missing) and print the accuracy
"""

import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pushforward_train.export import read_safetensors, write_safetensors
from pushforward_train.paths import PKG

PATH = os.path.join(PKG, "mnist_classifier.safetensors")


class DigitCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.c3 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 3 * 3, 128)
        self.head = nn.Linear(128, 10)

    def features(self, x):
        h = F.max_pool2d(F.relu(self.c1(x)), 2)  # 14
        h = F.max_pool2d(F.relu(self.c2(h)), 2)  # 7
        h = F.max_pool2d(F.relu(self.c3(h)), 2)  # 3
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x):
        return self.head(self.features(x))


def _shift(x, gen, max_shift=2):
    """Random integer translations (zero-pad with -1 background)."""
    n = x.shape[0]
    pad = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = pad[i, :, dy[i] : dy[i] + 28, dx[i] : dx[i] + 28]
    return out


def train(md, epochs=12, seed=0):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = DigitCNN()
    xtr = torch.from_numpy(md["x_train"])
    ytr = torch.from_numpy(md["y_train"])
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    steps = epochs * (len(xtr) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    net.train()
    for ep in range(epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr) - 127, 128):
            idx = perm[i : i + 128]
            xb = _shift(xtr[idx], gen)
            loss = F.cross_entropy(net(xb), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(net, md["x_test"], md["y_test"])
        print(f"[classifier] epoch {ep + 1} loss {loss.item():.4f} held-out acc {acc:.4f}", flush=True)
        net.train()
    net.eval()
    return net


@torch.no_grad()
def predict(net, x):
    net.eval()
    x = torch.as_tensor(np.asarray(x, np.float32))
    return torch.cat([net(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)]).numpy()


@torch.no_grad()
def features(net, x):
    net.eval()
    x = torch.as_tensor(np.asarray(x, np.float32))
    return torch.cat([net.features(x[i : i + 500]) for i in range(0, len(x), 500)]).numpy()


def accuracy(net, x, y):
    return float((predict(net, x) == np.asarray(y)).mean())


def load_or_train(md, path=PATH):
    net = DigitCNN()
    if os.path.exists(path):
        t, _ = read_safetensors(path)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in t.items()})
        net.eval()
    else:
        net = train(md)
        write_safetensors(path, {k: v.numpy() for k, v in net.state_dict().items()},
                          {"description": "DigitCNN from train/classifier.py (eval only)"})
    acc = accuracy(net, md["x_test"], md["y_test"])
    params = sum(p.numel() for p in net.parameters())
    return net, {"heldout_acc": acc, "params": params}


def main():
    import argparse

    from pushforward_train.data import load_mnist

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("threads", nargs="?", type=int, default=None, help=argparse.SUPPRESS)  # old positional form
    ap.add_argument("--threads", dest="threads_opt", metavar="T", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads if a.threads is not None else a.threads_opt)
    net, info = load_or_train(load_mnist(0))
    print(info)


if __name__ == "__main__":
    main()
