"""Where things are. In a checkout (`pip install -e train`) the package
directory is `train/` itself and REPO is its parent; for a copy installed elsewhere, set
PUSHFORWARD_REPO to the checkout, otherwise the current directory is taken as the checkout.

  REPO   the repository root (models/, tests/fixtures/)
  TRAIN  REPO/train when it exists (data/, configs/), else this package's directory
  PKG    this package's directory (configs/*.toml and mnist_classifier.safetensors ship in it)
"""

import os

PKG = os.path.dirname(os.path.abspath(__file__))


def _repo():
    env = os.environ.get("PUSHFORWARD_REPO")
    if env:
        return os.path.abspath(env)
    up = os.path.dirname(PKG)
    if os.path.isdir(os.path.join(up, "models")) and os.path.isdir(os.path.join(up, "train")):
        return up
    return os.getcwd()


REPO = _repo()
TRAIN = os.path.join(REPO, "train") if os.path.isdir(os.path.join(REPO, "train")) else PKG
