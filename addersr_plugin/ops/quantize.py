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
    input's dtype: the arithmetic of ``adder_conv2d_u8_affine``'s fused quantization.

    Non-finite values (docs/int8.md): ±inf clamps to 255 / 0 like any value beyond the grid; NaN,
    which has no grid value (and whose cast to uint8 is undefined), becomes ``zero_point``, as in
    the kernel. The affine op then makes the outputs that read a NaN NaN (:func:`nan_outputs`)."""
    # clamp keeps NaN, so after it the only non-finite values left are NaN
    return torch.round(x / scale).add_(zero_point).clamp_(0, 255).nan_to_num_(nan=float(zero_point)).to(torch.uint8)


def nan_outputs(input: torch.Tensor, kernel_size, stride, padding, dilation, groups: int,
                out_channels: int) -> torch.Tensor:
    """(N, Cout, Ho, Wo) bool: the outputs of an adder convolution whose window reads a NaN of
    ``input`` in one of its group's channels (the float layer's ``−Σ|x − w|`` is NaN exactly
    there). A count by ``F.conv2d`` of the NaN mask with all-one weights (exact: counts ≤ K)."""
    import torch.nn.functional as F

    mask = torch.isnan(input).to(torch.float32)
    ones = mask.new_ones(groups, input.shape[1] // groups, *kernel_size)
    hits = F.conv2d(mask, ones, None, stride, padding, dilation, groups) > 0  # (N, groups, Ho, Wo)
    return hits.repeat_interleave(out_channels // groups, dim=1)


__all__ = ["output_format", "quantize_u8", "nan_outputs"]
