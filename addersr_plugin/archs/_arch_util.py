"""Helpers shared by the plugin's architectures (no registration here)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


def check_positive_int(arch: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{arch}: {name} must be a positive int, got {value!r}")
    return value


def adder_unit_kwargs(shortcut: bool, power_act: bool, norm, eta, weight_grad: str, input_grad: str,
                      adder_init: str, alpha_init: float, power_per_channel: bool) -> dict:
    """The architectures' adder arguments as :class:`ShortcutAdderBlock` arguments (the one mapping).

    The archs keep BasicSR-style names (``power_act``, ``adder_init``); the unit's are ``power``
    and ``init``.
    """
    return dict(shortcut=shortcut, power=power_act, norm=norm, eta=eta, weight_grad=weight_grad,
                input_grad=input_grad, init=adder_init, alpha_init=alpha_init, power_per_channel=power_per_channel)


def check_vdsr_args(arch: str, num_in_ch: int, num_out_ch: int, num_feat: int, num_layer: int,
                    upscale: int) -> None:
    """The shared argument checks of the VDSR family (first/last conv, global residual)."""
    for name, value in (("num_in_ch", num_in_ch), ("num_out_ch", num_out_ch), ("num_feat", num_feat),
                        ("num_layer", num_layer), ("upscale", upscale)):
        check_positive_int(arch, name, value)
    if num_layer < 2:
        raise ValueError(f"{arch}: num_layer must be >= 2 (first and last conv), got {num_layer}")
    if num_out_ch != num_in_ch:
        raise ValueError(f"{arch}: num_out_ch ({num_out_ch}) must equal num_in_ch ({num_in_ch}) "
                         "for the global residual")


def pixel_shuffle_steps(arch: str, upscale: int) -> list:
    """The PixelShuffle factors of EDSR's upsampler: 2^n as n steps of 2, or one step of 3."""
    check_positive_int(arch, "upscale", upscale)
    if upscale == 3:
        return [3]
    n = int(round(math.log2(upscale)))
    if upscale >= 2 and 2 ** n == upscale:
        return [2] * n
    raise ValueError(f"{arch}: upscale {upscale} is not supported; use 2^n (2, 4, 8, ...) or 3")


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


class DCFreeConv2d(nn.Conv2d):
    """A convolution whose every filter sums to zero over its spatial taps (ours, not the paper's).

    The filter used is ``w - mean_{kh,kw}(w)``, per (output, input) channel pair, so a
    region of constant colour - any colour - gives the same output (the bias). Behind such a
    head the adder body sees local structure only, never absolute colour, which an adder
    layer (``-sum|x - w|`` is not shift-invariant) would otherwise respond to in ways it never
    saw in training. The colour itself reaches the output through the image-level skip.
    """

    def zero_mean_weight(self) -> Tensor:
        return self.weight - self.weight.mean(dim=(2, 3), keepdim=True)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.zero_mean_weight(), self.bias)


def bicubic_upsample(x: Tensor, upscale: int) -> Tensor:
    """VDSR's interpolated input: bicubic ×upscale, ``align_corners=False``.

    With an integer ``scale_factor`` the output is exactly ``upscale`` times the input size
    for any (odd) size; ``upscale == 1`` returns the input itself.
    """
    if upscale == 1:
        return x
    return nn.functional.interpolate(x, scale_factor=upscale, mode="bicubic", align_corners=False)
