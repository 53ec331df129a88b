"""The compiled kernels' blocking, on shapes large enough to exercise it.

The shape matrix of ``test_ops.py`` keeps images tiny for its slow oracle, so every case there
fits in one pixel chunk and one K block. The CPU kernels split work into chunks of 64 (float64)
or 128 (float32) output pixels, K blocks of 256 taps, tiles of 5 output channels and 4 taps,
and take a different parallel path for batches smaller than the thread count. These cases cross
all of those boundaries and compare against the pure-PyTorch reference in float64 (itself checked
against the independent oracle in ``test_ops.py``).
"""

from __future__ import annotations

import pytest
import torch

from addersr_plugin.ops import adder_conv2d, adder_conv2d_reference, extension_available

pytestmark = pytest.mark.skipif(not extension_available(), reason="the compiled extension is not built")

GRAD_MODES = [(wg, ig) for wg in ("full", "sign") for ig in ("hardtanh", "sign")]

# (batch, Cin, Cout, (H, W), kernel, stride, padding, dilation, groups, bias)
CASES = {
    # K = 288 (two K blocks), L = 323 pixels (several chunks, ragged last one), 13 = 2·5 + 3 rows
    "k288-multichunk": (2, 32, 13, (17, 19), 3, 1, 1, 1, 1, True),
    # batch 1: the within-image parallel path of the input gradient; K = 750 (three K blocks)
    "k750-batch1-stride2": (1, 30, 7, (23, 21), 5, 2, 2, 1, 1, False),
    # groups with K per group > 256, dilation, batch 3
    "groups2-k288-dilated": (3, 64, 10, (15, 14), 3, 1, 2, 2, 2, True),
}


def _tensors(case, dtype, seed=0):
    n, cin, cout, (h, w), k, _, _, _, groups, bias = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=gen, dtype=dtype)
    wt = torch.randn(cout, cin // groups, k, k, generator=gen, dtype=dtype)
    b = torch.randn(cout, generator=gen, dtype=dtype) if bias else None
    return x, wt, b


@pytest.mark.parametrize("weight_grad,input_grad", GRAD_MODES)
@pytest.mark.parametrize("name", list(CASES))
def test_blocked_shapes_match_reference_float64(name, weight_grad, input_grad):
    case = CASES[name]
    _, _, _, _, _, stride, padding, dilation, groups, _ = case
    x, w, b = _tensors(case, torch.float64)
    results = []
    for fn in (adder_conv2d, adder_conv2d_reference):
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        bs = b.clone().requires_grad_() if b is not None else None
        y = fn(xs, ws, bs, stride, padding, dilation, groups, weight_grad=weight_grad, input_grad=input_grad)
        gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
        y.backward(gy)
        results.append((y.detach(), xs.grad, ws.grad, None if bs is None else bs.grad))
    (y, gx, gw, gb), (yr, gxr, gwr, gbr) = results
    torch.testing.assert_close(y, yr, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(gx, gxr, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(gw, gwr, rtol=1e-11, atol=1e-8)
    if gb is not None:
        torch.testing.assert_close(gb, gbr)


@pytest.mark.parametrize("name", list(CASES))
def test_blocked_shapes_float32_forward(name):
    case = CASES[name]
    _, _, _, _, _, stride, padding, dilation, groups, _ = case
    x, w, b = _tensors(case, torch.float64, seed=3)
    expected = adder_conv2d_reference(x, w, b, stride, padding, dilation, groups)
    got = adder_conv2d(x.float(), w.float(), None if b is None else b.float(), stride, padding, dilation, groups)
    # Sums of up to 750 terms of size ~1 in fp32: relative error ~1e-6 of the magnitude.
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-3)
