"""``adder_conv2d_u8``: the typed, checked entry point of ``addersr::adder_conv2d_u8``.

The integer adder convolution for inference (docs/int8.md)::

    Y[n, co, p] = Σ_{ci,i,j} | X[n, ci, p+(i,j)] − W[co, ci, i, j] |        int32, ≥ 0

``X`` and ``W`` are uint8 on **one** grid (scale ``s``, zero point ``z``: ``q = round(v/s) + z``),
so ``|x − w| ≈ s·|qx − qw|`` and the zero point cancels. Padded taps take the value ``z``
(a real 0), not 0. The caller turns the sum into features (``−s·Y`` plus biases, BN);
:mod:`addersr_plugin.quant` does this for trained networks.

The CPU kernel (``csrc/cpu/adder_conv2d_u8_cpu.cpp``) uses AVX2's ``vpsadbw``. There is no
CUDA kernel: CUDA tensors raise. Without the compiled kernel (not built, or a CPU without
AVX2) the exact int64 reference runs, after one warning. Not differentiable (integers).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from . import _extension  # noqa: F401  (defines or loads the operators)
from .geometry import IntPair, check_geometry, output_size, to_pair
from .quantize import output_format, quantize_u8
from .reference_u8 import reference_forward_u8, reference_forward_u8_affine

_ops = torch.ops.addersr
_OP = "adder_conv2d_u8"
_AFFINE = "adder_conv2d_u8_affine"
MAX_TAPS = 1 << 23  # 255 · taps must fit the int32 sum


def check_args_u8(input: Tensor, weight: Tensor, zero_point: int, stride, padding, dilation,
                  groups: int, _op: str = _OP) -> Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]:
    """Validate the arguments; returns (stride, padding, dilation) as pairs.

    ``TypeError`` for wrong types and dtypes, ``ValueError`` for wrong shapes, values and
    devices; every message starts with the op's name and names the argument.
    """
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{_op}: input and weight must be tensors")
    stride, padding, dilation = (to_pair("stride", stride, _op), to_pair("padding", padding, _op),
                                 to_pair("dilation", dilation, _op))
    if _op == _OP and input.dtype != torch.uint8:
        raise TypeError(f"{_op}: input must be a uint8 tensor (quantized values), got dtype {input.dtype}")
    if _op == _AFFINE and input.dtype != torch.float32:
        raise TypeError(f"{_op}: input must be a float32 tensor, got dtype {input.dtype}")
    if weight.dtype != torch.uint8:
        raise TypeError(f"{_op}: weight must be a uint8 tensor (quantized values), got dtype {weight.dtype}")
    if input.device.type not in ("cpu", "meta"):
        raise ValueError(f"{_op}: only CPU tensors are supported (there is no CUDA kernel), "
                         f"got input on {input.device}")
    if weight.device != input.device:
        raise ValueError(f"{_op}: weight is on {weight.device} but input is on {input.device}")
    if isinstance(zero_point, bool) or not isinstance(zero_point, int):
        raise TypeError(f"{_op}: zero_point must be an int, got {zero_point!r}")
    if not 0 <= zero_point <= 255:
        raise ValueError(f"{_op}: zero_point must be in [0, 255], got {zero_point}")
    check_geometry(_op, input, weight, stride, padding, dilation, groups)  # the float op's shared checks
    if weight[0].numel() > MAX_TAPS:
        raise ValueError(f"{_op}: {weight[0].numel()} taps per output would overflow the int32 sum "
                         f"(at most {MAX_TAPS})")
    return stride, padding, dilation


def adder_conv2d_u8(input: Tensor, weight: Tensor, zero_point: int, stride: IntPair = 1, padding: IntPair = 0,
                    dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """Integer adder convolution ``Σ|qx − qw|`` with ``F.conv2d``'s geometry.

    Args:
        input: (N, Cin, H, W) uint8, any memory layout (channels_last is read directly).
        weight: (Cout, Cin/groups, kh, kw) uint8 on the same grid as ``input``.
        zero_point: the grid value of a real 0 (0–255); padded taps hold it.
        stride, padding, dilation: int or (h, w) pair.
        groups: channel groups; Cin and Cout divisible by it.

    Returns:
        (N, Cout, Ho, Wo) int32 tensor, bit-exact with :func:`adder_conv2d_u8_reference`,
        channels_last when ``input`` is (as ``F.conv2d``), else contiguous.
    """
    stride, padding, dilation = check_args_u8(input, weight, zero_point, stride, padding, dilation, groups)
    return _ops.adder_conv2d_u8(input, weight, zero_point, stride, padding, dilation, groups)


def adder_conv2d_u8_reference(input: Tensor, weight: Tensor, zero_point: int, stride: IntPair = 1,
                              padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """The exact int64 pure-PyTorch reference of :func:`adder_conv2d_u8`: same arguments, same results."""
    stride, padding, dilation = check_args_u8(input, weight, zero_point, stride, padding, dilation, groups)
    return reference_forward_u8(input, weight, zero_point, stride, padding, dilation, groups)


@torch.library.register_fake("addersr::adder_conv2d_u8")
def _adder_conv2d_u8_fake(input, weight, zero_point, stride, padding, dilation, groups):
    torch._check(input.dim() == 4 and weight.dim() == 4, lambda: f"{_OP}: input and weight must be 4-D")
    torch._check(input.dtype == torch.uint8 and weight.dtype == torch.uint8,
                 lambda: f"{_OP}: input and weight must be uint8")
    torch._check(input.shape[1] != 0, lambda: "adder_conv2d_u8: input has zero channels (Cin == 0)")
    ho, wo = output_size(tuple(input.shape[2:]), tuple(weight.shape[2:]), stride, padding, dilation)
    return input.new_empty((input.shape[0], weight.shape[0], ho, wo), dtype=torch.int32).contiguous(
        memory_format=output_format(input))


# --------------------------------------------------------------------------- fused inference op

def check_affine_args(input, weight, scale, zero_point, out_scale, out_bias, stride, padding, dilation, groups,
                      residual=None, relu=False):
    stride, padding, dilation = check_args_u8(input, weight, zero_point, stride, padding, dilation, groups, _AFFINE)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (0 < scale < float("inf")):
        raise ValueError(f"{_AFFINE}: scale must be a positive finite number, got {scale!r}")
    cout = weight.shape[0]
    for name, t in (("out_scale", out_scale), ("out_bias", out_bias)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{_AFFINE}: {name} must be a tensor, got {type(t).__name__}")
        if t.dtype != torch.float32:
            raise TypeError(f"{_AFFINE}: {name} must be float32, got dtype {t.dtype}")
        if t.shape != (cout,):
            raise ValueError(f"{_AFFINE}: {name} must have shape ({cout},), got {tuple(t.shape)}")
        if t.device != input.device:
            raise ValueError(f"{_AFFINE}: {name} is on {t.device} but input is on {input.device}")
    if not isinstance(relu, bool):
        raise TypeError(f"{_AFFINE}: relu must be a bool, got {type(relu).__name__}")
    if residual is not None:
        if not isinstance(residual, Tensor):
            raise TypeError(f"{_AFFINE}: residual must be a tensor or None, got {type(residual).__name__}")
        ho, wo = output_size(tuple(input.shape[2:]), tuple(weight.shape[2:]), stride, padding, dilation)
        out_shape = (input.shape[0], weight.shape[0], ho, wo)
        if residual.dtype != torch.float32:
            raise TypeError(f"{_AFFINE}: residual must be float32, got dtype {residual.dtype}")
        if tuple(residual.shape) != out_shape:
            raise ValueError(f"{_AFFINE}: residual must have the output's shape {out_shape}, got "
                             f"{tuple(residual.shape)}")
        if residual.device != input.device:
            raise ValueError(f"{_AFFINE}: residual is on {residual.device} but input is on {input.device}")
    return stride, padding, dilation


def adder_conv2d_u8_affine(input: Tensor, weight: Tensor, scale: float, zero_point: int, out_scale: Tensor,
                           out_bias: Tensor, stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                           groups: int = 1, residual: Optional[Tensor] = None, relu: bool = False) -> Tensor:
    """One quantized inference layer in one call (CPU): ``out_scale[c]·Σ|q(x) − w| + out_bias[c]``,
    then ``+ residual`` and ``max(·, 0)`` when asked (an adder unit's self-shortcut and ReLU).

    ``q(x) = clamp(round(x / scale) + zero_point, 0, 255)`` (round half to even, float32
    arithmetic, :func:`quantize_u8`) is applied while the input is padded, and the affine while
    the sums are stored: no uint8 or int32 tensor is materialised. ``input`` is float32 (N, Cin,
    H, W), ``weight`` uint8 on the same grid, ``out_scale``/``out_bias`` float32 (Cout,).
    Returns float32 (N, Cout, Ho, Wo), channels_last when ``input`` is, else contiguous; the sums
    are exactly those of :func:`adder_conv2d_u8`.
    ``residual`` (float32, the output's shape) is added after the affine and ``relu`` applied
    last, in the store: in float32, ``max(fma(Σ, out_scale, out_bias) + residual, 0)``.
    Non-finite input (docs/int8.md): ±inf clamps to the grid's ends; an output whose window reads
    a NaN is NaN (in every channel of its group, after ``residual`` and ``relu``), as in the float layer.
    """
    stride, padding, dilation = check_affine_args(input, weight, scale, zero_point, out_scale, out_bias, stride,
                                                  padding, dilation, groups, residual, relu)
    return _ops.adder_conv2d_u8_affine(input, weight, float(scale), zero_point, out_scale, out_bias, stride,
                                       padding, dilation, groups, residual, relu)


def adder_conv2d_u8_affine_reference(input: Tensor, weight: Tensor, scale: float, zero_point: int,
                                     out_scale: Tensor, out_bias: Tensor, stride: IntPair = 1, padding: IntPair = 0,
                                     dilation: IntPair = 1, groups: int = 1, residual: Optional[Tensor] = None,
                                     relu: bool = False) -> Tensor:
    """The pure-PyTorch reference of :func:`adder_conv2d_u8_affine` (exact sums, then the epilogue)."""
    stride, padding, dilation = check_affine_args(input, weight, scale, zero_point, out_scale, out_bias, stride,
                                                  padding, dilation, groups, residual, relu)
    return reference_forward_u8_affine(input, weight, float(scale), zero_point, out_scale, out_bias, stride,
                                       padding, dilation, groups, residual, relu)


@torch.library.register_fake("addersr::adder_conv2d_u8_affine")
def _adder_conv2d_u8_affine_fake(input, weight, scale, zero_point, out_scale, out_bias, stride, padding, dilation,
                                 groups, residual=None, relu=False):
    torch._check(input.dim() == 4 and weight.dim() == 4, lambda: f"{_AFFINE}: input and weight must be 4-D")
    torch._check(input.shape[1] != 0, lambda: "adder_conv2d_u8: input has zero channels (Cin == 0)")
    ho, wo = output_size(tuple(input.shape[2:]), tuple(weight.shape[2:]), stride, padding, dilation)
    return input.new_empty((input.shape[0], weight.shape[0], ho, wo), dtype=torch.float32).contiguous(
        memory_format=output_format(input))
