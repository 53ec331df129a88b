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
               groups: int, weight_grad: str, input_grad: str, *, compute_dtype: Optional[torch.dtype] = None):
    """Validate the arguments; returns (stride, padding, dilation) as pairs.

    With ``compute_dtype`` (float16/bfloat16) the dtype rules are ``adder_conv2d_amp``'s: input
    and weight each float32 or ``compute_dtype``, bias float32 (the output's dtype).

    Raises ``TypeError`` for wrong types/dtypes and ``ValueError`` for wrong shapes,
    values, devices and modes, each message naming the argument.
    """
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError("adder_conv2d: input and weight must be tensors")
    stride, padding, dilation = to_pair("stride", stride), to_pair("padding", padding), to_pair("dilation", dilation)
    if compute_dtype is None:
        if input.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"adder_conv2d: input must be a floating-point tensor, got dtype {input.dtype}")
        if weight.dtype != input.dtype:
            raise TypeError(f"adder_conv2d: weight dtype {weight.dtype} does not match input dtype {input.dtype}")
        bias_dtype = input.dtype
    else:
        if compute_dtype not in CUDA_AMP_DTYPES:
            raise TypeError(f"adder_conv2d: compute_dtype must be one of {CUDA_AMP_DTYPES}, got {compute_dtype}")
        for name, t in (("input", input), ("weight", weight)):
            if t.dtype not in (torch.float32, compute_dtype):
                raise TypeError(f"adder_conv2d: {name} dtype {t.dtype} must be torch.float32 or the compute "
                                f"dtype {compute_dtype}")
        bias_dtype = torch.float32
    cout = check_geometry("adder_conv2d", input, weight, stride, padding, dilation, groups)
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError("adder_conv2d: bias must be a tensor or None")
        if bias.shape != (cout,):
            raise ValueError(f"adder_conv2d: bias must have shape ({cout},), got {tuple(bias.shape)}")
        if bias.dtype != bias_dtype:
            raise TypeError(f"adder_conv2d: bias dtype {bias.dtype} does not match "
                            f"{'input dtype' if compute_dtype is None else 'the output dtype'} {bias_dtype}")
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
        Under ``torch.autocast`` the result is float32 (:data:`AUTOCAST_DTYPE`): on CUDA with an
        fp16/bf16 autocast dtype the op rounds input and weight to it and computes in packed fp16
        with fp32 accumulation (``adder_conv2d_amp``); on the CPU it runs in float32. See
        docs/adder_op.md, "Mixed precision".

    With both grad modes ``"sign"`` the backward is the true gradient (away from ties).
    No learning-rate scaling happens here; AdderNet's adaptive rate lives in the layer.
    """
    if isinstance(input, Tensor) and isinstance(weight, Tensor) and autocast_active(input.device.type):
        # The checks must see what the op's autocast kernel will run on, not the mix of
        # autocast-dtype activations and float32 parameters that arrives here.
        compute_dtype = _amp_compute_dtype(input, weight)
        if compute_dtype is not None:
            input, weight, bias = _amp_operands(input, weight, bias, compute_dtype)
            stride, padding, dilation = check_args(input, weight, bias, stride, padding, dilation, groups,
                                                   weight_grad, input_grad, compute_dtype=compute_dtype)
            return _ops.adder_conv2d_amp(input, weight, bias, stride, padding, dilation, groups, weight_grad,
                                         input_grad, compute_dtype)
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


@torch.library.register_fake("addersr::adder_conv2d_amp")
def _amp_fake(input, weight, bias, stride, padding, dilation, groups, weight_grad, input_grad, compute_dtype):
    # Half-precision operands, a float32 result.
    out = _adder_conv2d_fake(input, weight, bias, stride, padding, dilation, groups, weight_grad, input_grad)
    return out.to(torch.float32)


@torch.library.register_fake("addersr::adder_conv2d_amp_grad_input")
def _amp_grad_input_fake(grad_output, input, weight, stride, padding, dilation, groups, mode, compute_dtype):
    return input.new_empty(input.shape)  # the input's dtype


@torch.library.register_fake("addersr::adder_conv2d_amp_grad_weight")
def _amp_grad_weight_fake(grad_output, input, weight, stride, padding, dilation, groups, mode, compute_dtype):
    return weight.new_empty(weight.shape)  # the weight's dtype


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


def _amp_setup_context(ctx, inputs, output):
    *plain, compute_dtype = inputs
    _setup_context(ctx, plain, output)
    ctx.compute_dtype = compute_dtype


def _amp_backward(ctx, grad):
    # grad_output float32 (the output's dtype); grad_input in the input's dtype, grad_weight in the
    # weight's: a float32 parameter passed straight in gets a float32 gradient, never rounded.
    cd = ctx.compute_dtype
    gi, gw, gb, *rest = _gradients(
        ctx, grad.contiguous(),
        lambda *a: _ops.adder_conv2d_amp_grad_input(*a, cd), lambda *a: _ops.adder_conv2d_amp_grad_weight(*a, cd))
    return (gi, gw, gb, *rest, None)


torch.library.register_autograd("addersr::adder_conv2d_amp", _amp_backward, setup_context=_amp_setup_context)


# --------------------------------------------------------------------------- autocast

#: The dtype ``addersr::adder_conv2d`` returns under ``torch.autocast``, on the CPU and on CUDA,
#: whatever the autocast dtype: the output ``-Σ|X - W|`` is a large negative number with a small
#: spread (the sum of Cin·kh·kw positive terms), which the BatchNorm after every adder layer
#: subtracts. Rounded to bf16 (8 significant bits) that sum loses a sizeable part of the spread BN
#: keeps, and in fp16 it overflows (|Y| passes 65504 in AdderEDSR at 32 channels).
#: On the CPU the op also *computes* in float32 (it has no faster half-precision kernel). On CUDA
#: with an autocast dtype in :data:`CUDA_AMP_DTYPES` it computes in half precision instead:
#: ``addersr::adder_conv2d_amp`` rounds input and weight to the autocast dtype and sums |x - w| in
#: packed fp16 with fp32 accumulation, returning this dtype. docs/adder_op.md ("Mixed precision")
#: has the measurements and the error bound.
AUTOCAST_DTYPE = torch.float32
#: Autocast dtypes for which CUDA runs the half-precision kernels (``adder_conv2d_amp``).
CUDA_AMP_DTYPES = (torch.float16, torch.bfloat16)
AUTOCAST_DEVICE_TYPES = tuple(d for d in ("cpu", "cuda") if torch.amp.is_autocast_available(d))


def autocast_active(device_type: str) -> bool:
    """True inside ``torch.autocast`` for ``device_type`` (where the op has an autocast rule)."""
    return device_type in AUTOCAST_DEVICE_TYPES and torch.is_autocast_enabled(device_type)


def _autocast_cast(t: Optional[Tensor], device_type: str) -> Optional[Tensor]:
    # torch.library.register_autocast's rule: floating tensors on the autocast device, float64 excepted.
    if isinstance(t, Tensor) and t.is_floating_point() and t.device.type == device_type and t.dtype != torch.float64:
        return t.to(AUTOCAST_DTYPE)
    return t


def _amp_compute_dtype(input: Tensor, weight: Tensor) -> Optional[torch.dtype]:
    """The half-precision dtype CUDA autocast runs the op in, or None (then: float32 as on the CPU).

    None off CUDA, for an autocast dtype outside CUDA_AMP_DTYPES, and when input or weight is
    float64 or not floating (autocast leaves those alone; the op's own checks then speak).
    """
    if input.device.type != "cuda" or not torch.is_autocast_enabled("cuda"):
        return None
    dtype = torch.get_autocast_dtype("cuda")
    operands_ok = all(t.dtype in (torch.float16, torch.bfloat16, torch.float32) for t in (input, weight))
    return dtype if dtype in CUDA_AMP_DTYPES and operands_ok else None


def _amp_operands(input: Tensor, weight: Tensor, bias: Optional[Tensor], compute_dtype: torch.dtype):
    """What adder_conv2d_amp takes: input and weight as they are when float32 or already in the
    compute dtype (the kernel rounds a float32 operand itself, so a float32 parameter keeps a float32
    gradient), otherwise cast to it; bias float32. The casts are differentiable."""
    def operand(t: Tensor) -> Tensor:
        return t if t.dtype in (torch.float32, compute_dtype) else t.to(compute_dtype)
    if isinstance(bias, Tensor) and bias.is_floating_point() and bias.dtype != torch.float64:
        bias = bias.float()
    return operand(input), operand(weight), bias


def _cuda_autocast(input, weight, bias, stride, padding, dilation, groups, weight_grad, input_grad):
    """The AutocastCUDA rule of addersr::adder_conv2d: the op it runs, called with autocast excluded.

    The compute dtype is read first: inside the exclusion torch.is_autocast_enabled("cuda") is False.
    """
    compute_dtype = _amp_compute_dtype(input, weight)
    with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCUDA)):
        if compute_dtype is not None:
            input, weight, bias = _amp_operands(input, weight, bias, compute_dtype)
            return _ops.adder_conv2d_amp(input, weight, bias, stride, padding, dilation, groups, weight_grad,
                                         input_grad, compute_dtype)
        input, weight, bias = (_autocast_cast(t, "cuda") for t in (input, weight, bias))
        return _ops.adder_conv2d(input, weight, bias, stride, padding, dilation, groups, weight_grad, input_grad)


def _register_cuda_autocast() -> None:
    """Registers _cuda_autocast as the AutocastCUDA kernel, as torch.library.register_autocast
    registers its cast rule: a C++-dispatcher kernel and the Python-dispatcher override that
    torch.compile traces."""
    key = torch._C.DispatchKey.AutocastCUDA
    op = _ops.adder_conv2d.default
    if op.has_kernel_for_dispatch_key(key):
        op.py_kernels.pop(key, None)
    op.py_impl(key)(lambda *args: _cuda_autocast(*args))
    _AUTOCAST_LIB.impl("adder_conv2d", lambda _keyset, *args: _cuda_autocast(*args), "AutocastCUDA",
                       with_keyset=True)


# The AutocastCPU kernel: cast to float32, then run the op with autocast off. The casts are
# differentiable (autograd sits below autocast), so gradients reach the parameters in their dtype.
_AUTOCAST_LIB = torch.library.Library("addersr", "FRAGMENT")
if "cpu" in AUTOCAST_DEVICE_TYPES:
    torch.library.register_autocast("addersr::adder_conv2d", "cpu", AUTOCAST_DTYPE, lib=_AUTOCAST_LIB)
if "cuda" in AUTOCAST_DEVICE_TYPES:
    _register_cuda_autocast()
