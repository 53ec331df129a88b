"""``adder_conv2d``: the typed, checked Python entry point of ``addersr::adder_conv2d``.

The operator itself is defined in C++ (``csrc/adder_conv2d.cpp``) or, without the
extension, by ``_extension``. Here we add what PyTorch needs around a custom op
(fake/meta kernels for ``torch.compile`` and the meta device, the autograd formula)
and the user-facing argument checks, in the style of ``torchvision.ops``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import _extension  # noqa: F401  (defines or loads the operators)
from . import reference
from .geometry import IntPair, check_geometry, output_size, to_pair
from ._schema import INPUT_GRAD_MODES, WEIGHT_GRAD_MODES

_ops = torch.ops.addersr
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# --------------------------------------------------------------------------- checks

def check_args(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride, padding, dilation,
               groups: int, weight_grad: str, input_grad: str):
    """Validate the arguments; returns (stride, padding, dilation) as pairs.

    Raises ``TypeError`` for wrong types/dtypes and ``ValueError`` for wrong shapes,
    values, devices and modes, each message naming the argument.
    """
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError("adder_conv2d: input and weight must be tensors")
    stride, padding, dilation = to_pair("stride", stride), to_pair("padding", padding), to_pair("dilation", dilation)
    if input.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"adder_conv2d: input must be a floating-point tensor, got dtype {input.dtype}")
    if weight.dtype != input.dtype:
        raise TypeError(f"adder_conv2d: weight dtype {weight.dtype} does not match input dtype {input.dtype}")
    cout = check_geometry("adder_conv2d", input, weight, stride, padding, dilation, groups)
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError("adder_conv2d: bias must be a tensor or None")
        if bias.shape != (cout,):
            raise ValueError(f"adder_conv2d: bias must have shape ({cout},), got {tuple(bias.shape)}")
        if bias.dtype != input.dtype:
            raise TypeError(f"adder_conv2d: bias dtype {bias.dtype} does not match input dtype {input.dtype}")
        if bias.device != input.device:
            raise ValueError(f"adder_conv2d: bias is on {bias.device} but input is on {input.device}")
    if weight_grad not in WEIGHT_GRAD_MODES:
        raise ValueError(f"adder_conv2d: unknown weight_grad {weight_grad!r}; expected one of {WEIGHT_GRAD_MODES}")
    if input_grad not in INPUT_GRAD_MODES:
        raise ValueError(f"adder_conv2d: unknown input_grad {input_grad!r}; expected one of {INPUT_GRAD_MODES}")
    return stride, padding, dilation


# --------------------------------------------------------------------------- public API

def adder_conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    weight_grad: str = "full",
    input_grad: str = "hardtanh",
) -> Tensor:
    """Adder convolution ``Y = -Σ|X - W| (+ bias)``, with ``F.conv2d``'s geometry.

    Args:
        input: (N, Cin, H, W) floating-point tensor, any memory layout.
        weight: (Cout, Cin/groups, kh, kw), same dtype and device as ``input``.
        bias: optional (Cout,) tensor added to the output.
        stride, padding, dilation: int or (h, w) pair; zero padding.
        groups: number of channel groups; Cin and Cout must be divisible by it.
        weight_grad: ``"full"`` (AdderNet, ``Σ G·(X − W)``) or ``"sign"`` (exact, ``Σ G·sign(X − W)``).
        input_grad: ``"hardtanh"`` (AdderNet, ``Σ G·clamp(W − X, −1, 1)``) or ``"sign"`` (exact).

    Returns:
        (N, Cout, Ho, Wo) contiguous tensor of ``input``'s dtype. fp16/bf16 accumulate in fp32.
        Under ``torch.autocast`` (CPU or CUDA) the op runs in float32 and returns float32,
        whatever the autocast dtype (:data:`AUTOCAST_DTYPE`; docs/adder_op.md, "Mixed precision").

    With both grad modes ``"sign"`` the backward is the true gradient (away from ties).
    No learning-rate scaling happens here; AdderNet's adaptive rate lives in the layer.
    """
    if isinstance(input, Tensor) and isinstance(weight, Tensor) and autocast_active(input.device.type):
        # The checks must see what the op's autocast kernel will run on (float32), not the mix
        # of autocast-dtype activations and float32 parameters that arrives here.
        input, weight, bias = (_autocast_cast(t, input.device.type) for t in (input, weight, bias))
    stride, padding, dilation = check_args(input, weight, bias, stride, padding, dilation, groups,
                                           weight_grad, input_grad)
    return _ops.adder_conv2d(input, weight, bias, stride, padding, dilation, groups, weight_grad, input_grad)


class _ReferenceFunction(torch.autograd.Function):
    """The reference with the op's autograd formula, on the reference's backward functions."""

    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation, groups, weight_grad, input_grad):
        _setup_context(ctx, (input, weight, bias, stride, padding, dilation, groups, weight_grad, input_grad), None)
        return reference.reference_forward(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        return _gradients(ctx, grad, reference.reference_grad_input, reference.reference_grad_weight)


def adder_conv2d_reference(
    input: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    weight_grad: str = "full",
    input_grad: str = "hardtanh",
) -> Tensor:
    """The pure-PyTorch reference of :func:`adder_conv2d`: same arguments, same results.

    Unfold-based and chunked (bounded memory, slow). Differentiable with the same
    ``weight_grad`` / ``input_grad`` modes, independent of the compiled kernels.
    """
    stride, padding, dilation = check_args(input, weight, bias, stride, padding, dilation, groups,
                                           weight_grad, input_grad)
    return _ReferenceFunction.apply(input, weight, bias, stride, padding, dilation, groups,
                                    weight_grad, input_grad)


# --------------------------------------------------------------------------- fake kernels

@torch.library.register_fake("addersr::adder_conv2d")
def _adder_conv2d_fake(input, weight, bias, stride, padding, dilation, groups, weight_grad, input_grad):
    torch._check(input.dim() == 4 and weight.dim() == 4, lambda: "adder_conv2d: input and weight must be 4-D")
    torch._check(input.shape[1] != 0, lambda: "adder_conv2d: input has zero channels (Cin == 0); an adder "
                 "convolution needs at least one input channel")
    ho, wo = output_size(tuple(input.shape[2:]), tuple(weight.shape[2:]), stride, padding, dilation)
    return input.new_empty((input.shape[0], weight.shape[0], ho, wo))


@torch.library.register_fake("addersr::adder_conv2d_grad_input")
def _grad_input_fake(grad_output, input, weight, stride, padding, dilation, groups, mode):
    return input.new_empty(input.shape)


@torch.library.register_fake("addersr::adder_conv2d_grad_weight")
def _grad_weight_fake(grad_output, input, weight, stride, padding, dilation, groups, mode):
    return weight.new_empty(weight.shape)


# --------------------------------------------------------------------------- autograd

def _setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, groups, weight_grad, input_grad = inputs
    ctx.save_for_backward(input, weight)
    ctx.conf = (stride, padding, dilation, groups, weight_grad, input_grad, bias is not None)


def _gradients(ctx, grad, grad_input_fn, grad_weight_fn):
    """Gradients of (input, weight, bias) and None for the 6 non-tensor arguments."""
    input, weight = ctx.saved_tensors
    stride, padding, dilation, groups, weight_grad, input_grad, has_bias = ctx.conf
    geom = (stride, padding, dilation, groups)
    gi = grad_input_fn(grad, input, weight, *geom, input_grad) if ctx.needs_input_grad[0] else None
    gw = grad_weight_fn(grad, input, weight, *geom, weight_grad) if ctx.needs_input_grad[1] else None
    gb = grad.sum((0, 2, 3)) if has_bias and ctx.needs_input_grad[2] else None
    return gi, gw, gb, None, None, None, None, None, None


def _backward(ctx, grad):
    return _gradients(ctx, grad.contiguous(), _ops.adder_conv2d_grad_input, _ops.adder_conv2d_grad_weight)


torch.library.register_autograd("addersr::adder_conv2d", _backward, setup_context=_setup_context)


# --------------------------------------------------------------------------- autocast

#: The dtype ``addersr::adder_conv2d`` runs in under ``torch.autocast``, on the CPU and on CUDA.
#: Not the autocast dtype: the output ``-Σ|X - W|`` is a large negative number with a small spread
#: (the sum of Cin·kh·kw positive terms), which the BatchNorm after every adder layer subtracts. In
#: bf16 (8 significant bits) the rounding of that sum is a sizeable part of the spread that BN keeps,
#: and in fp16 the sum overflows (|Y| passes 65504 in AdderEDSR at 32 channels). Both kernels
#: accumulate in fp32 anyway, so fp32 costs only the cast of the input. docs/adder_op.md has the
#: measurements.
AUTOCAST_DTYPE = torch.float32
AUTOCAST_DEVICE_TYPES = tuple(d for d in ("cpu", "cuda") if torch.amp.is_autocast_available(d))


def autocast_active(device_type: str) -> bool:
    """True inside ``torch.autocast`` for ``device_type`` (where the op has an autocast rule)."""
    return device_type in AUTOCAST_DEVICE_TYPES and torch.is_autocast_enabled(device_type)


def _autocast_cast(t: Optional[Tensor], device_type: str) -> Optional[Tensor]:
    # torch.library.register_autocast's rule: floating tensors on the autocast device, float64 excepted.
    if isinstance(t, Tensor) and t.is_floating_point() and t.device.type == device_type and t.dtype != torch.float64:
        return t.to(AUTOCAST_DTYPE)
    return t


for _device_type in AUTOCAST_DEVICE_TYPES:
    # The AutocastCPU / AutocastCUDA kernels: cast, then run the op with autocast off. The casts are
    # differentiable (autograd sits below autocast), so gradients reach the parameters in their dtype.
    torch.library.register_autocast("addersr::adder_conv2d", _device_type, AUTOCAST_DTYPE)
