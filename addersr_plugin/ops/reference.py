"""Pure-PyTorch reference of the adder convolution and its backward modes.

This one implementation is the oracle of the tests, the fallback kernel when the
compiled extension is missing, and the executable documentation of the semantics
(docs/adder_op.md):

    Y[n, co, p]  = -Σ_{ci,i,j} |X[n, ci, p+(i,j)] - W[co, ci, i, j]|   (+ bias[co])
    dW  "full"   =  Σ_{n,p} G · (X - W)          "sign" = Σ G · sign(X - W)
    dX "hardtanh"=  Σ_{co,taps} G · clamp(W - X, -1, 1)   "sign" = Σ G · sign(W - X)

Zero padding: a padded tap holds X = 0, so it contributes ``|0 - W|`` to Y and
``G · (0 - W)`` to the full weight gradient, but no gradient to X.

It unfolds the input (``F.unfold``) one sample at a time and forms the
``(Cout/groups, Cin/groups·kh·kw, pixels)`` difference tensor in pixel chunks,
so its memory stays bounded by ``_CHUNK_ELEMENTS`` whatever the batch or image size.
Half-precision inputs are computed in float32 and cast back (fp32 accumulation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .geometry import check_input_channels, output_size


# Largest difference tensor (elements) formed at once: 4M floats = 16 MiB in fp32.
_CHUNK_ELEMENTS = 1 << 22


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _columns(x: torch.Tensor, weight_shape, stride, padding, dilation, groups) -> torch.Tensor:
    """Unfold one batch slice to (n, groups, K, L) with K = Cin/groups·kh·kw."""
    kh, kw = weight_shape[2], weight_shape[3]
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)
    return cols.view(x.shape[0], groups, -1, cols.shape[-1])


def _pixel_chunk(rows: int, k: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, rows * k))


def reference_forward(input, weight, bias, stride, padding, dilation, groups):
    """Forward of the adder convolution; returns a contiguous NCHW tensor."""
    check_input_channels("adder_conv2d", input)
    n, _, h, w = input.shape
    cout = weight.shape[0]
    ho, wo = output_size((h, w), weight.shape[2:], stride, padding, dilation)
    cdt = _compute_dtype(input.dtype)
    x = input.to(cdt)
    wgt = weight.to(cdt).reshape(groups, cout // groups, -1)  # (g, Cout/g, K)
    out = torch.empty(n, groups, cout // groups, ho * wo, dtype=cdt, device=input.device)
    step = _pixel_chunk(cout // groups, wgt.shape[-1])
    for s in range(n):
        cols = _columns(x[s : s + 1], weight.shape, stride, padding, dilation, groups)[0]  # (g, K, L)
        for g in range(groups):
            for l0 in range(0, cols.shape[-1], step):
                c = cols[g, None, :, l0 : l0 + step]  # (1, K, l)
                out[s, g, :, l0 : l0 + step] = -(c - wgt[g, :, :, None]).abs().sum(1)
    out = out.view(n, cout, ho, wo)
    if bias is not None:
        out = out + bias.to(cdt).view(1, -1, 1, 1)
    return out.to(input.dtype).contiguous()


def reference_grad_weight(grad_output, input, weight, stride, padding, dilation, groups, mode):
    """dL/dW: ``"full"`` Σ G·(X − W) or ``"sign"`` Σ G·sign(X − W)."""
    check_input_channels("adder_conv2d_grad_weight", input)
    n = input.shape[0]
    cout = weight.shape[0]
    cdt = _compute_dtype(input.dtype)
    x = input.to(cdt)
    wgt = weight.to(cdt).reshape(groups, cout // groups, -1)
    # Explicit pixel count (not -1): an empty batch must still reshape.
    pixels = grad_output.shape[2] * grad_output.shape[3]
    gout = grad_output.to(cdt).reshape(n, groups, cout // groups, pixels)  # (n, g, Cout/g, L)
    gw = torch.zeros_like(wgt)
    step = _pixel_chunk(cout // groups, wgt.shape[-1])
    for s in range(n):
        cols = _columns(x[s : s + 1], weight.shape, stride, padding, dilation, groups)[0]
        for g in range(groups):
            for l0 in range(0, cols.shape[-1], step):
                diff = cols[g, None, :, l0 : l0 + step] - wgt[g, :, :, None]  # (Cout/g, K, l)
                if mode == "sign":
                    diff = diff.sign()
                gw[g] += (gout[s, g, :, None, l0 : l0 + step] * diff).sum(-1)
    return gw.reshape(weight.shape).to(weight.dtype).contiguous()


def reference_grad_input(grad_output, input, weight, stride, padding, dilation, groups, mode):
    """dL/dX: ``"hardtanh"`` Σ G·clamp(W − X, −1, 1) or ``"sign"`` Σ G·sign(W − X)."""
    check_input_channels("adder_conv2d_grad_input", input)
    n, _, h, w = input.shape
    cout, _, kh, kw = weight.shape
    cdt = _compute_dtype(input.dtype)
    x = input.to(cdt)
    wgt = weight.to(cdt).reshape(groups, cout // groups, -1)
    pixels = grad_output.shape[2] * grad_output.shape[3]
    gout = grad_output.to(cdt).reshape(n, groups, cout // groups, pixels)
    gx = torch.empty(input.shape, dtype=cdt, device=input.device)
    step = _pixel_chunk(cout // groups, wgt.shape[-1])
    for s in range(n):
        cols = _columns(x[s : s + 1], weight.shape, stride, padding, dilation, groups)[0]  # (g, K, L)
        gcols = torch.empty_like(cols)
        for g in range(groups):
            for l0 in range(0, cols.shape[-1], step):
                diff = wgt[g, :, :, None] - cols[g, None, :, l0 : l0 + step]  # (Cout/g, K, l)
                diff = diff.sign() if mode == "sign" else diff.clamp(-1.0, 1.0)
                gcols[g, :, l0 : l0 + step] = (gout[s, g, :, None, l0 : l0 + step] * diff).sum(0)
        # col2im: padded taps fall outside the image and are dropped, as they should be.
        gx[s] = F.fold(
            gcols.reshape(1, -1, cols.shape[-1]), (h, w), (kh, kw),
            dilation=dilation, padding=padding, stride=stride,
        )[0]
    return gx.to(input.dtype).contiguous()


# --------------------------------------------------------------------------- adder_conv2d_amp

def amp_operand(t, compute_dtype):
    """``t``'s values rounded to ``compute_dtype`` (float16/bfloat16), in float32 (exact)."""
    return t.to(compute_dtype).float()


def reference_amp_forward(input, weight, bias, stride, padding, dilation, groups, compute_dtype):
    """``addersr::adder_conv2d_amp``: the float32 adder convolution of the operands rounded to
    ``compute_dtype``; returns float32 (bias is float32). Exact up to float32 accumulation, so the
    packed CUDA kernel's fp16 arithmetic (docs/adder_op.md) is measured against it, not copied."""
    x, w = amp_operand(input, compute_dtype), amp_operand(weight, compute_dtype)
    return reference_forward(x, w, bias, stride, padding, dilation, groups)


def reference_amp_grad_input(grad_output, input, weight, stride, padding, dilation, groups, mode, compute_dtype):
    """dL/dX of the amp op at the rounded operands; float32 grad_output, result in ``input``'s dtype."""
    x, w = amp_operand(input, compute_dtype), amp_operand(weight, compute_dtype)
    return reference_grad_input(grad_output, x, w, stride, padding, dilation, groups, mode).to(input.dtype)


def reference_amp_grad_weight(grad_output, input, weight, stride, padding, dilation, groups, mode, compute_dtype):
    """dL/dW of the amp op at the rounded operands; float32 grad_output, result in ``weight``'s dtype."""
    x, w = amp_operand(input, compute_dtype), amp_operand(weight, compute_dtype)
    return reference_grad_weight(grad_output, x, w, stride, padding, dilation, groups, mode).to(weight.dtype)


#: Taps per fp16 lane that the CUDA kernel of ``adder_conv2d_amp`` sums before a flush into fp32
#: (``kPackedRun`` of csrc/cuda/adder_conv2d_kernels.cuh; tests/ops/test_cuda_emulation.py checks
#: that they agree).
PACKED_FP16_RUN = 8


def packed_fp16_error_bound(abs_sum, taps: int, run: int = PACKED_FP16_RUN):
    """Largest |Ŷ − Y| of the packed fp16 forward of ``adder_conv2d_amp`` (docs/adder_op.md).

    ``abs_sum``: Σ|x̃ − w̃| per output (x̃, w̃ the operands rounded to the compute dtype); ``taps``:
    Cin/groups·kh·kw. Each |x̃ − w̃| is rounded once to fp16 (u = 2⁻¹¹) and each lane adds
    ``run`` − 1 more roundings of non-negative partial sums: relative (1+u)^run − 1 (≈ run·u). The
    fp32 flushes (lo + hi, then into the accumulator) add at most runs + 1 float32 roundings.
    Operands below fp16's normal range (bf16 values under 2⁻¹⁴) lose up to 2⁻²⁵ each when carried
    in fp16: taps·2⁻²⁴ absolute. Outputs whose fp16 partial sums overflowed are recomputed in
    float32, well inside this bound.
    """
    runs = -(-taps // (2 * run))
    rel = (1 + 2.0 ** -11) ** run * (1 + 2.0 ** -24) ** (runs + 1) - 1
    return rel * abs_sum + taps * 2.0 ** -24
