"""``MeanShift``: EDSR's subtraction of the dataset's RGB mean and scaling to ``img_range``."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


class MeanShift(nn.Module):
    """``(x - mean) * img_range`` and back, as BasicSR's EDSR does, with the mean a buffer.

    A non-persistent buffer (not in the state dict, like EDSR's plain attribute) that
    follows ``.to()``; one mean per input channel.
    """

    def __init__(self, arch: str, num_ch: int, rgb_mean: Sequence[float], img_range: float):
        super().__init__()
        mean = tuple(float(m) for m in rgb_mean)
        if len(mean) != num_ch:
            raise ValueError(f"{arch}: rgb_mean has {len(mean)} values but the image has {num_ch} channels")
        if not (img_range > 0 and math.isfinite(img_range)):
            raise ValueError(f"{arch}: img_range must be a positive finite number, got {img_range!r}")
        self.img_range = float(img_range)
        self.register_buffer("mean", torch.tensor(mean).view(1, num_ch, 1, 1), persistent=False)

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) * self.img_range

    def denormalize(self, x: Tensor) -> Tensor:
        return x / self.img_range + self.mean.to(x.dtype)

    def extra_repr(self) -> str:
        return f"img_range={self.img_range}"


__all__ = ["MeanShift"]
