"""The shared 8-bit grid of one adder layer and the clamping identity (docs/int8.md).

A grid is a scale ``s`` and a zero point ``z``: ``q = clamp(round(v / s) + z, 0, 255)`` and
back ``v ≈ s · (q − z)``. It covers ``[lo, hi] = [−z·s, (255 − z)·s]`` and always contains 0,
so zero padding is exactly the zero point. Input and weights of the layer share it, hence
``|x − w| ≈ s · |qx − qw|``.

Clamping (Redistribution of Weights and Activations for AdderNet Quantization, NeurIPS 2022):
if ``x ∈ [lo, hi]`` then ``|x − w| = |x − clamp(w, lo, hi)| + |w − clamp(w, lo, hi)|``, so
the weights can be clamped to the grid's range with the excess moved into a per-output-channel
constant, exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import torch
from torch import Tensor

from ..ops.quantize import quantize_u8

QMAX = 255
_F32_TINY = float(torch.finfo(torch.float32).tiny)  # the smallest normal float32


@dataclass(frozen=True)
class Grid:
    """``scale`` > 0 and ``zero_point`` in [0, 255]."""

    scale: float
    zero_point: int

    @property
    def lo(self) -> float:
        return -self.zero_point * self.scale

    @property
    def hi(self) -> float:
        return (QMAX - self.zero_point) * self.scale


def _usable(lo: float, hi: float) -> bool:
    """A range whose step is a normal float32 number: the kernel divides by the scale in float32,
    so a smaller step would be a subnormal or 0 there."""
    return math.isfinite(lo) and math.isfinite(hi) and (hi - lo) / QMAX >= _F32_TINY


def grid_for_range(lo: float, hi: float, fallback: Tuple[float, float] = (0.0, 1.0)) -> Grid:
    """The grid that covers ``[min(lo, 0), max(hi, 0)]`` with 256 levels, 0 exactly on a level.

    A layer whose calibration input was all zeros has no range (``lo = hi = 0``): no data says
    where the levels should go, and a width of 0 (or one whose step is not a normal float32) would
    make a useless grid of scale ~0 that clamps every other input. It gets the grid of
    ``fallback`` instead: calibration passes the layer's weight range, so its weights are on the
    grid unclamped and any input within them is quantized like the weights; if that range is empty
    too, [0, 1]. Non-finite bounds are refused (``ValueError``)."""
    if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        raise ValueError(f"grid_for_range: the range must be finite, got [{lo}, {hi}]")
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not _usable(lo, hi):
        lo, hi = min(float(fallback[0]), 0.0), max(float(fallback[1]), 0.0)
        if not _usable(lo, hi):
            lo, hi = 0.0, 1.0
    step = (hi - lo) / QMAX
    # A side that is not empty keeps at least one level beyond 0.
    zero_point = int(min(max(round(-lo / step), 1 if lo < 0 else 0), QMAX - 1 if hi > 0 else QMAX))
    # Rounding the zero point moved the range by up to half a step: widen the scale so that
    # [lo, hi] stays covered.
    scale = max(-lo / zero_point if zero_point > 0 else 0.0, hi / (QMAX - zero_point) if zero_point < QMAX else 0.0)
    return Grid(scale, zero_point)


def quantize(x: Tensor, grid: Grid) -> Tensor:
    """``clamp(round(x / s) + z, 0, 255)`` as uint8 (round half to even), same layout as ``x``."""
    return quantize_u8(x, grid.scale, grid.zero_point)


def dequantize(q: Tensor, grid: Grid) -> Tensor:
    return (q.float() - grid.zero_point) * grid.scale


def fake_quantize(x: Tensor, grid: Grid) -> Tensor:
    """``x`` rounded onto the grid and clamped to its range, as float."""
    return dequantize(quantize(x, grid), grid).to(x.dtype)


def clamp_weights(weight: Tensor, lo: float, hi: float) -> Tuple[Tensor, Tensor]:
    """Weights clamped to ``[lo, hi]`` and the exact per-output-channel correction
    ``Σ_k |w − clamp(w)|`` (shape (Cout,)) such that, for inputs within ``[lo, hi]``,
    ``Σ|x − w| = Σ|x − clamp(w)| + correction``."""
    clamped = weight.clamp(lo, hi)
    return clamped, (weight - clamped).abs().flatten(1).sum(1)
