"""The geometry of an adder convolution: argument pairs, output size and the checks every op shares.

The Python mirror of ``csrc/adder_conv2d_geometry.h``: the float and the uint8 ops, their
wrappers, fake kernels and reference kernels all size and check a convolution here, with the
same messages as the compiled kernels, so every implementation refuses the same inputs.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch
from torch import Tensor

Pair = Tuple[int, int]
IntPair = Union[int, Sequence[int]]


def to_pair(name: str, value: IntPair, owner: str = "adder_conv2d") -> Tuple[int, int]:
    """``value`` (an int or a pair of ints) as an (h, w) pair; ``TypeError`` naming ``owner`` and ``name``."""
    message = f"{owner}: {name} must be an int or a pair of ints, got {value!r}"
    if isinstance(value, bool):
        raise TypeError(message)
    if isinstance(value, int):
        return (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        raise TypeError(message) from None
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise TypeError(message)
    return pair  # type: ignore[return-value]


def output_size(in_hw: Pair, kernel_hw: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    """Spatial output size, the same formula as ``F.conv2d``."""
    return tuple(  # type: ignore[return-value]
        (in_hw[d] + 2 * padding[d] - dilation[d] * (kernel_hw[d] - 1) - 1) // stride[d] + 1
        for d in range(2)
    )


def check_input_channels(op: str, input: torch.Tensor) -> None:
    """Reject a zero-channel input (``Cin == 0``) with the compiled kernels' message.

    With no input channel an output is an empty sum; rather than define it as 0 (+ bias) in
    one implementation and leave it unwritten in another, every implementation refuses it.
    """
    if input.shape[1] == 0:
        raise ValueError(f"{op}: input has zero channels (Cin == 0); an adder convolution needs at least "
                         "one input channel")


def check_geometry(op: str, input: Tensor, weight: Tensor, stride: Tuple[int, int], padding: Tuple[int, int],
                   dilation: Tuple[int, int], groups: int) -> int:
    """The checks every adder convolution shares (float and uint8 ops): shapes, device, geometry.

    ``stride``/``padding``/``dilation`` are pairs already; element types are each op's own
    business and checked before. Returns the output channel count. Messages start with ``op``.
    """
    if input.dim() != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {tuple(input.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"{op}: weight must be 4-D (Cout, Cin/groups, kh, kw), got shape {tuple(weight.shape)}")
    if weight.device != input.device:
        raise ValueError(f"{op}: weight is on {weight.device} but input is on {input.device}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if min(stride) <= 0:
        raise ValueError(f"{op}: stride must be positive, got {stride}")
    if min(dilation) <= 0:
        raise ValueError(f"{op}: dilation must be positive, got {dilation}")
    if min(padding) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    cin, cout = input.shape[1], weight.shape[0]
    if cout % groups != 0:
        raise ValueError(f"{op}: out channels {cout} are not divisible by groups={groups}")
    if cin != weight.shape[1] * groups:
        raise ValueError(f"{op}: input has {cin} channels but weight expects {weight.shape[1]} per group "
                         f"× groups={groups} = {weight.shape[1] * groups}")
    check_input_channels(op, input)
    if min(weight.shape[2:]) <= 0:
        raise ValueError(f"{op}: kernel size must be positive, got {tuple(weight.shape[2:])}")
    ho, wo = output_size(tuple(input.shape[2:]), tuple(weight.shape[2:]), stride, padding, dilation)
    if ho <= 0 or wo <= 0:
        raise ValueError(
            f"{op}: output size would be {ho}x{wo} (input {tuple(input.shape[2:])}, kernel "
            f"{tuple(weight.shape[2:])}, stride {stride}, padding {padding}, dilation {dilation}); "
            "it must be positive")
    return cout


__all__ = ["Pair", "IntPair", "to_pair", "output_size", "check_input_channels", "check_geometry"]
