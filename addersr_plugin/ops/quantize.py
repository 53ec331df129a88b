"""The uint8 grid arithmetic the integer ops share: quantization and the output memory format."""

from __future__ import annotations

import torch


def output_format(input: torch.Tensor) -> torch.memory_format:
    """The memory format of the integer ops' output: channels_last when the input's strides are
    (the layout the kernel reads without a transpose), as ``F.conv2d`` does; else contiguous."""
    from torch._prims_common import suggest_memory_format

    return suggest_memory_format(input)


def quantize_u8(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """``clamp(round(x / scale) + zero_point, 0, 255)`` as uint8, rounding half to even, in the
    input's dtype: the arithmetic of ``adder_conv2d_u8_affine``'s fused quantization."""
    return torch.round(x / scale).add_(zero_point).clamp_(0, 255).to(torch.uint8)


__all__ = ["output_format", "quantize_u8"]
