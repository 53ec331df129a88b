"""Small pretrained models that ship inside the package: upscale a photo with no download, no GPU.

Each model is two files in this folder: ``<name>.pth``, a plain state dict saved with
``torch.save`` (loaded with ``weights_only=True``: no code is unpickled), and ``<name>.json``, its
card: the ``network_g`` options, the scale, what it was trained on and how, and its scores on the
test photos of the depth-and-scale study (docs/quality_depth.md), which nothing was chosen on.
``benchmarks/quality/export_pretrained.py`` writes both from an archived study run.

    addersr upscale --pretrained adder-edsr-x4 --input photo.png --output out/
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

HERE = os.path.dirname(os.path.abspath(__file__))
CARD_KEYS = ("name", "network_g", "scale", "data", "recipe", "iterations", "source_run", "test_scores")


def names() -> list:
    """The shipped models' names, sorted."""
    return sorted(f[:-5] for f in os.listdir(HERE) if f.endswith(".json") and os.path.isfile(
        os.path.join(HERE, f[:-5] + ".pth")))


def card(name: str) -> Dict[str, Any]:
    """The card of model ``name`` (``KeyError`` naming the shipped models when unknown)."""
    path = os.path.join(HERE, f"{name}.json")
    if name not in names():
        raise KeyError(f"no pretrained model {name!r}; shipped: {', '.join(names()) or 'none'}")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    missing = [k for k in CARD_KEYS if k not in data]
    if missing:
        raise KeyError(f"{path}: card lacks {', '.join(missing)}")
    return data


def weights_path(name: str) -> str:
    card(name)  # validates the name
    return os.path.join(HERE, f"{name}.pth")


__all__ = ["names", "card", "weights_path", "CARD_KEYS"]
