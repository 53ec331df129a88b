"""How each operator call is priced in arithmetic operations.

Two counting conventions for dot products (convolutions, matrix products, adder layers) with
K terms per output element:

- ``paper`` (default; AdderNet/AdderSR/AdderDet): a conv MAC = 1 multiply + 1 add, an adder
  MAC = 2 adds (the subtraction and the accumulation). Biases are not priced.
- ``exact``: a conv output needs K multiplies and K - 1 adds (+1 if there is a bias); an adder
  output needs K subtractions and K - 1 adds (+1 for a bias).

In both, ``|x - w|`` is free (clearing a sign bit), as are sign flips, ``sgn(y)``, selects and
pure data movement (views, copies, concatenation, padding, PixelShuffle, nearest upsampling).
Division by a tensor is priced as one multiply (networks here divide by constants, which
compilers turn into a multiply by the reciprocal).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

from torch import Tensor

from .counts import (ACTIVATION, ADDER, BN, CONV, ELEMENTWISE, NORM, REDUCTION, RESAMPLE, UNPRICED,
                     OpCount)
from .errors import UnknownConventionError

CONVENTIONS = ("paper", "exact")


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise UnknownConventionError(
            f"unknown counting convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
    return convention


# Operators that move or select data and do no arithmetic (0 operations).
FREE_OPS = frozenset({
    "view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "squeeze", "unsqueeze",
    "clone", "contiguous", "_to_copy", "copy_", "copy", "cat", "stack", "slice", "select", "split",
    "split_with_sizes", "narrow", "unbind", "as_strided", "alias", "detach", "lift_fresh",
    "lift_fresh_copy", "pixel_shuffle", "pixel_unshuffle", "constant_pad_nd", "reflection_pad2d",
    "replication_pad2d", "upsample_nearest2d", "_upsample_nearest_exact2d", "flip", "roll",
    "index_select", "gather", "im2col", "col2im", "empty", "empty_like", "empty_strided",
    "new_empty", "new_empty_strided", "zeros", "zeros_like", "new_zeros", "ones", "ones_like",
    "new_ones", "full", "full_like", "new_full", "fill_", "zero_", "scalar_tensor", "where",
    # sign-bit operations: |x|, -x, sgn(x)
    "abs", "abs_", "neg", "neg_", "sign", "sign_", "sgn",
})

_ADD_OPS = frozenset({"add", "add_", "sub", "sub_", "rsub"})
_MUL_OPS = frozenset({"mul", "mul_", "div", "div_"})
_CMP_OPS = frozenset({"gt", "lt", "ge", "le", "eq", "ne", "maximum", "minimum", "relu", "relu_",
                      "threshold", "threshold_", "clamp_min", "clamp_min_", "clamp_max", "clamp_max_"})
_TRANS_OPS = frozenset({"exp", "exp_", "log", "log_", "sqrt", "rsqrt", "tanh", "tanh_", "sigmoid",
                        "sigmoid_", "pow", "pow_", "log2", "exp2"})
_CONV_OPS = frozenset({"convolution", "_convolution", "conv2d", "conv1d", "conv3d"})
_MM_OPS = frozenset({"mm", "addmm", "bmm", "baddbmm"})
_BN_OPS = frozenset({"native_batch_norm", "_native_batch_norm_legit_no_training",
                     "_native_batch_norm_legit", "batch_norm"})


def bind(func, args, kwargs) -> Dict[str, Any]:
    """Map the call's arguments to their schema names."""
    names = [a.name for a in func._schema.arguments]
    bound = dict(zip(names, args))
    bound.update(kwargs or {})
    return bound


def first_tensor(out) -> Optional[Tensor]:
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for item in out:
            if isinstance(item, Tensor):
                return item
    return None


def _dot_product(macs: int, outputs: int, has_bias: bool, adder: bool, convention: str) -> OpCount:
    if convention == "paper":
        return OpCount(mul=0 if adder else macs, add=2 * macs if adder else macs, macs=macs)
    accumulate = macs - outputs + (outputs if has_bias else 0)
    if adder:
        return OpCount(add=macs + accumulate, macs=macs)
    return OpCount(mul=macs, add=accumulate, macs=macs)


def price_conv(a: Dict[str, Any], out: Tensor, convention: str, adder: bool) -> OpCount:
    x, w = a["input"], a["weight"]
    taps = math.prod(w.shape[2:])
    if a.get("transposed", False):
        # weight is (Cin, Cout/groups, k...): every input element meets Cout/groups * taps weights.
        macs = x.numel() * w.shape[1] * taps
    else:
        macs = out.numel() * math.prod(w.shape[1:])
    return _dot_product(macs, out.numel(), a.get("bias") is not None, adder, convention)


def price_linear(in_features: int, out: Tensor, has_bias: bool, convention: str) -> OpCount:
    """An ``nn.Linear`` from its shapes: every output element is an ``in_features``-term dot
    product (+ bias), whatever the input's rank or layout (PyTorch runs a 2-D or contiguous
    input as one ``addmm`` and a non-contiguous 3-D one as ``mm`` + a separate bias ``add``)."""
    return _dot_product(out.numel() * in_features, out.numel(), has_bias, False, convention)


def price_mm(name: str, a: Dict[str, Any], out: Tensor, convention: str) -> OpCount:
    m1 = a["mat1"] if name == "addmm" else a["batch1"] if name == "baddbmm" else a["self"]
    macs = out.numel() * m1.shape[-1]
    return _dot_product(macs, out.numel(), name in ("addmm", "baddbmm"), False, convention)


def price_resample(name: str, a: Dict[str, Any], out: Tensor) -> OpCount:
    """Separable interpolation: a horizontal pass over (N, C, H_in, W_out), then a vertical pass
    over the output. Each pass is a weighted sum of ``taps`` inputs: ``taps`` multiplies and
    ``taps - 1`` adds per element (4 taps bicubic, 2 bilinear). The weights depend only on the
    position and are shared by all channels; their cost is not counted."""
    taps = 4 if name == "upsample_bicubic2d" else 2
    x = a["self"] if "self" in a else a["input"]  # .default names it self, .vec input
    n, c, h_in = x.shape[0], x.shape[1], x.shape[2]
    w_out = out.shape[-1]
    elements = n * c * h_in * w_out + out.numel()
    return OpCount(mul=taps * elements, add=(taps - 1) * elements)


def price_norm(name: str, a: Dict[str, Any], out: Tensor) -> OpCount:
    """Group / layer norm at inference. Unlike BN, the statistics belong to each sample, so
    they are computed every time and nothing folds. Per group of m elements: the mean (m − 1
    adds, 1 multiply by 1/m), the centred values (m subtractions), the variance (m squares,
    m − 1 adds, 1 multiply), + eps (1 add) and one rsqrt; then m multiplies by it, and the
    affine weight and bias (1 multiply, 1 add per element) when present."""
    n = out.numel()
    if name == "native_group_norm":
        groups = int(a["N"]) * int(a["group"])
    else:
        groups = n // max(1, math.prod(int(d) for d in a["normalized_shape"]))
    has_weight, has_bias = a.get("weight") is not None, a.get("bias") is not None
    add = 2 * (n - groups) + groups + n + (n if has_bias else 0)
    mul = 2 * groups + 2 * n + (n if has_weight else 0)
    return OpCount(mul=mul, add=add, trans=groups)


def price_gelu(a: Dict[str, Any], out: Tensor) -> OpCount:
    """GELU per element. Exact ``0.5·x·(1 + erf(x/√2))``: 3 multiplies, 1 add, 1 erf. The tanh
    form ``0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))``: 6 multiplies, 2 adds, 1 tanh."""
    n = out.numel()
    if a.get("approximate", "none") == "tanh":
        return OpCount(mul=6 * n, add=2 * n, trans=n)
    return OpCount(mul=3 * n, add=n, trans=n)


def price_op(func, args, kwargs, out, convention: str) -> Optional[Tuple[str, OpCount]]:
    """(category, operations) of one operator call; None when it does no arithmetic."""
    name = func.overloadpacket.__name__
    namespace = func.namespace
    result = first_tensor(out)
    if namespace == "addersr" and name == "adder_conv2d":
        return ADDER, price_conv(bind(func, args, kwargs), result, convention, adder=True)
    if namespace != "aten":
        return UNPRICED, OpCount(elements=result.numel() if result is not None else 0)
    if name in FREE_OPS:
        return None
    if result is None:
        return UNPRICED, OpCount()
    n = result.numel()
    a = bind(func, args, kwargs)
    if name in _CONV_OPS:
        return CONV, price_conv(a, result, convention, adder=False)
    if name in _MM_OPS:
        return CONV, price_mm(name, a, result, convention)
    if name in _ADD_OPS:
        scaled = a.get("alpha", 1) != 1  # add(x, y, alpha=a) = x + a*y
        return ELEMENTWISE, OpCount(add=n, mul=n if scaled else 0)
    if name in _MUL_OPS:
        return ELEMENTWISE, OpCount(mul=n)
    if name in ("clamp", "clamp_", "hardtanh", "hardtanh_"):
        bounds = 2 if name.startswith("hardtanh") else sum(a.get(k) is not None for k in ("min", "max"))
        return ACTIVATION, OpCount(cmp=bounds * n)
    if name in ("leaky_relu", "leaky_relu_", "prelu"):
        return ACTIVATION, OpCount(cmp=n, mul=n)
    if name in _CMP_OPS:
        return ACTIVATION, OpCount(cmp=n)
    if name in ("pow", "pow_") and isinstance(a.get("exponent"), (int, float)) and a["exponent"] == 2:
        return ACTIVATION, OpCount(mul=n)
    if name in _TRANS_OPS:
        return ACTIVATION, OpCount(trans=n)
    if name in ("sum", "mean"):
        x = a["self"]
        return REDUCTION, OpCount(add=x.numel() - n, mul=n if name == "mean" else 0)
    if name in ("upsample_bicubic2d", "upsample_bilinear2d"):
        return RESAMPLE, price_resample(name, a, result)
    if name in ("native_group_norm", "native_layer_norm"):
        return NORM, price_norm(name, a, result)
    if name in ("gelu", "gelu_"):
        return ACTIVATION, price_gelu(a, result)
    if name in _BN_OPS:
        # Functional batch norm outside a BatchNorm module, priced as written (unfolded).
        return BN, OpCount(mul=2 * n, add=2 * n)
    return UNPRICED, OpCount(elements=n)
