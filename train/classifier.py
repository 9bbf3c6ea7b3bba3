"""Small CNN classifiers for evaluating the image models (accuracy of the requested class,
Frechet distance in the 128-d penultimate features).

- mnist: trained on the same 9k train split as the flow model; train/mnist_classifier.safetensors.
- emoji: trained on the held-out emoji only (the ~20% split the flow model never sees), so that it
  is independent of the generator; its own accuracy is measured on the generator's train split,
  which it never sees. train/emoji_classifier.safetensors.

Both are plain safetensors (no pushforward config); the Rust shipped_models test ports them.

    pushforward-classifier [--dataset mnist|emoji] [--threads T]   # load (or train) and print the accuracy
"""

import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pushforward_train.export import read_safetensors, write_safetensors
from pushforward_train.paths import PKG

PATH = os.path.join(PKG, "mnist_classifier.safetensors")
EMOJI_PATH = os.path.join(PKG, "emoji_classifier.safetensors")


class SmallCNN(nn.Module):
    """conv-relu-pool x3, fc-relu (the 128-d features), head."""

    def __init__(self, in_channels=1, classes=10, side=28):
        super().__init__()
        self.c1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.c3 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc = nn.Linear(64 * (side // 8) ** 2, 128)
        self.head = nn.Linear(128, classes)

    def features(self, x):
        h = F.max_pool2d(F.relu(self.c1(x)), 2)  # 14 (mnist) / 16 (emoji)
        h = F.max_pool2d(F.relu(self.c2(h)), 2)  # 7 / 8
        h = F.max_pool2d(F.relu(self.c3(h)), 2)  # 3 / 4
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x):
        return self.head(self.features(x))


def DigitCNN():
    return SmallCNN(1, 10, 28)


def EmojiCNN():
    from pushforward_train.data import EMOJI_CATEGORIES

    return SmallCNN(3, len(EMOJI_CATEGORIES), 32)


def _shift(x, gen, max_shift=2, background=-1.0, flip=False):
    """Random integer translations (padding with the background value), and random horizontal
    flips when `flip`."""
    n, side = x.shape[0], x.shape[-1]
    pad = F.pad(x, (max_shift,) * 4, value=background)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = pad[i, :, dy[i] : dy[i] + side, dx[i] : dx[i] + side]
        if flip and flips[i]:
            out[i] = out[i].flip(-1)
    return out


def train(md, epochs=12, seed=0, net=None, background=-1.0, flip=False, balanced=False, batch=128):
    """Train on md["x_train"] / md["y_train"], reporting accuracy on md["x_test"] each epoch.
    `balanced`: weight the loss by inverse class frequency (the emoji categories range 17-458)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = net if net is not None else DigitCNN()
    xtr = torch.from_numpy(md["x_train"])
    ytr = torch.from_numpy(md["y_train"])
    counts = torch.bincount(ytr, minlength=net.head.out_features).float()
    weight = (counts.sum() / (len(counts) * counts.clamp(min=1))) if balanced else None
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    steps = epochs * (len(xtr) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    net.train()
    for ep in range(epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr) - batch + 1, batch):
            idx = perm[i : i + batch]
            xb = _shift(xtr[idx], gen, background=background, flip=flip)
            loss = F.cross_entropy(net(xb), ytr[idx], weight=weight)
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


def _load_or_train(net, path, train_it, description):
    """`net` with the weights cached at `path`, else trained by `train_it()` and cached there."""
    if not os.path.exists(path):
        net = train_it()
        write_safetensors(path, {k: v.numpy() for k, v in net.state_dict().items()}, {"description": description})
    t, _ = read_safetensors(path)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in t.items()})
    return net.eval()


def load_or_train(md, path=PATH):
    net = _load_or_train(DigitCNN(), path, lambda: train(md), "DigitCNN from train/classifier.py (eval only)")
    acc = accuracy(net, md["x_test"], md["y_test"])
    params = sum(p.numel() for p in net.parameters())
    return net, {"heldout_acc": acc, "params": params}


def load_or_train_emoji(md, path=EMOJI_PATH):
    """The emoji classifier, trained on the held-out split (md["x_test"]) with shifts, flips and
    class-balanced loss; info["accuracy_on_train_split"] is its accuracy on the generator's
    train split, which it never sees (and "balanced_accuracy" the mean per-category recall)."""
    swapped = {"x_train": md["x_test"], "y_train": md["y_test"], "x_test": md["x_train"], "y_test": md["y_train"]}
    net = _load_or_train(
        EmojiCNN(), path,
        lambda: train(swapped, epochs=60, net=EmojiCNN(), background=1.0, flip=True, balanced=True, batch=64),
        "EmojiCNN from train/classifier.py, trained on the held-out emoji (eval only)")
    pred, y = predict(net, md["x_train"]), np.asarray(md["y_train"])
    recalls = [float((pred[y == c] == c).mean()) for c in range(net.head.out_features)]
    params = sum(p.numel() for p in net.parameters())
    return net, {"accuracy_on_train_split": float((pred == y).mean()), "balanced_accuracy": float(np.mean(recalls)),
                 "recall_per_category": [round(r, 4) for r in recalls], "params": params}


def main():
    import argparse

    from pushforward_train.data import load_emoji, load_mnist

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["mnist", "emoji"], default="mnist")
    ap.add_argument("threads", nargs="?", type=int, default=None, help=argparse.SUPPRESS)  # old positional form
    ap.add_argument("--threads", dest="threads_opt", metavar="T", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads if a.threads is not None else a.threads_opt)
    if a.dataset == "emoji":
        net, info = load_or_train_emoji(load_emoji(0))
    else:
        net, info = load_or_train(load_mnist(0))
    print(info)


if __name__ == "__main__":
    main()
