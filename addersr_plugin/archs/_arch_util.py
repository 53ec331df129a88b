"""Argument checks and option mappings shared by the plugin's architectures (layers live in ``nn``)."""

from __future__ import annotations

import math


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
