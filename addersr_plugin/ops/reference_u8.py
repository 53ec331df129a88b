"""Exact pure-PyTorch reference of the integer adder convolution ``addersr::adder_conv2d_u8``.

    Y[n, co, p] = Σ_{ci,i,j} | X[n, ci, p+(i,j)] − W[co, ci, i, j] |        (int32)

``X`` and ``W`` are uint8 values on one shared quantization grid (docs/int8.md);
padded taps hold ``zero_point``, the grid value of a real 0. Everything is computed in
int64, so the result is exact; it is the oracle of the tests and the fallback kernel when
the compiled one is missing (announced by one warning). It does not import the operator
module, so ``_extension`` can register it before the operator exists.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from .errors import AdderExtensionWarning
from .geometry import output_size
from .quantize import nan_outputs, output_format, quantize_u8

# Largest |patch − weight| tensor (int64 elements) formed at once: 2M = 16 MiB.
_CHUNK_ELEMENTS = 1 << 21
_WARNED = False


def reference_forward_u8(input, weight, zero_point, stride, padding, dilation, groups) -> torch.Tensor:
    """Σ|qx − qw| over each window, int64 arithmetic, returned as int32 in :func:`output_format`."""
    n, cin, h, w = input.shape
    cout, cin_g, kh, kw = weight.shape
    ho, wo = output_size((h, w), (kh, kw), stride, padding, dilation)
    x = F.pad(input.to(torch.int64), (padding[1], padding[1], padding[0], padding[0]), value=int(zero_point))
    # Windows by Tensor.unfold (works for integer dtypes): (N, C, Ho, Wo, kh, kw).
    x = x.unfold(2, dilation[0] * (kh - 1) + 1, stride[0])[..., :: dilation[0]]
    x = x.unfold(3, dilation[1] * (kw - 1) + 1, stride[1])[..., :: dilation[1]]
    x = x[:, :, :ho, :wo]
    k = cin_g * kh * kw
    # (N, groups, Ho·Wo, K) with tap order (ci, i, j), the weight's own order.
    cols = x.reshape(n, groups, cin_g, ho * wo, kh, kw).permute(0, 1, 3, 2, 4, 5).reshape(n, groups, ho * wo, k)
    wg = weight.to(torch.int64).reshape(groups, cout // groups, k)
    out = torch.empty(n, groups, cout // groups, ho * wo, dtype=torch.int64, device=input.device)
    step = max(1, _CHUNK_ELEMENTS // max(1, (cout // groups) * k))
    for s in range(n):
        for g in range(groups):
            for l0 in range(0, ho * wo, step):
                c = cols[s, g, l0 : l0 + step]  # (l, K)
                out[s, g, :, l0 : l0 + step] = (c[None, :, :] - wg[g, :, None, :]).abs().sum(-1)
    return out.reshape(n, cout, ho, wo).to(torch.int32).contiguous(memory_format=output_format(input))


def reference_forward_u8_affine(input, weight, scale, zero_point, out_scale, out_bias, stride, padding, dilation,
                                groups, residual=None, relu=False) -> torch.Tensor:
    """``out_scale[c] · Σ|quantize(x) − w| + out_bias[c]`` in float32 (the sums exact), then
    ``+ residual`` and ``max(·, 0)`` when asked, in that order (the kernel's epilogue); NaN
    wherever the window read a NaN input (docs/int8.md, as the kernel)."""
    sums = reference_forward_u8(quantize_u8(input, scale, zero_point), weight, zero_point, stride, padding,
                                dilation, groups)
    # the affine rounded once, as the kernel's fma: exact in float64 (|Σ| < 2^24), then to float32
    y = (sums.double() * out_scale.double().view(1, -1, 1, 1) + out_bias.double().view(1, -1, 1, 1)).float()
    if residual is not None:
        y = y + residual
    if relu:
        y = y.clamp_min(0)
    if torch.isnan(input).any():  # after the ReLU: the float layer's NaN survives torch.relu
        y = y.masked_fill(nan_outputs(input, weight.shape[2:], stride, padding, dilation, groups, weight.shape[0]),
                          float("nan"))
    return y.contiguous(memory_format=output_format(input))


def fallback_forward_u8(input, weight, zero_point, stride, padding, dilation, groups) -> torch.Tensor:
    """The operator's kernel when the compiled one is missing: CPU only, warns once."""
    if input.device.type != "cpu":
        raise RuntimeError(
            f"adder_conv2d_u8: only CPU tensors are supported (there is no CUDA kernel), got input on {input.device}")
    _warn_once()
    return reference_forward_u8(input, weight, zero_point, stride, padding, dilation, groups)


def _warn_once() -> None:
    global _WARNED
    if not _WARNED:
        _WARNED = True
        warnings.warn(
            "adder_conv2d_u8: the compiled integer kernel is unavailable (extension not built, stale, or "
            "this CPU lacks AVX2); using the exact int64 reference, which is slow.",
            AdderExtensionWarning, stacklevel=3)


def fallback_forward_u8_affine(input, weight, scale, zero_point, out_scale, out_bias, stride, padding, dilation,
                               groups, residual=None, relu=False) -> torch.Tensor:
    """The fused operator's kernel when the compiled one is missing (same warning, once)."""
    if input.device.type != "cpu":
        raise RuntimeError(f"adder_conv2d_u8_affine: only CPU tensors are supported (there is no CUDA kernel), "
                           f"got input on {input.device}")
    _warn_once()
    return reference_forward_u8_affine(input, weight, scale, zero_point, out_scale, out_bias, stride, padding,
                                       dilation, groups, residual, relu)
