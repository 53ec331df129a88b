"""CPU kernels at pinned thread counts (both input-gradient paths) and in float16/bfloat16.

The input-gradient kernel picks its parallel path from the batch size and the thread count:
whole images per thread when ``N >= threads``, parallel inside each image otherwise. Which path a
test takes must not depend on the machine's core count, so each case here pins
``torch.set_num_threads`` (1 and 4, restored afterwards) and a batch that selects the path.

Half precision on the CPU: the kernels compute in float32 and round the result once, so the op
must agree with the float64 reference on the same (half-rounded) inputs to about one unit in the
last place of the half type.
"""

from __future__ import annotations

import pytest
import torch

from addersr_plugin.ops import adder_conv2d, adder_conv2d_reference, extension_available

pytestmark = pytest.mark.skipif(not extension_available(), reason="the compiled extension is not built")

GRAD_MODES = [(wg, ig) for wg in ("full", "sign") for ig in ("hardtanh", "sign")]


@pytest.fixture()
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    assert torch.get_num_threads() == request.param  # the path premise below holds
    yield request.param
    torch.set_num_threads(before)
    assert torch.get_num_threads() == before


def _case(n, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    # 27 input taps per group (3 channels x 3x3), groups 2, stride 2 on an odd image
    x = torch.randn(n, 6, 11, 9, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(4, generator=gen, dtype=torch.float64)
    return x.to(dtype), w.to(dtype), b.to(dtype)


def _run(fn, x, w, b, gy, wg, ig):
    xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
    y = fn(xs, ws, bs, stride=2, padding=1, groups=2, weight_grad=wg, input_grad=ig)
    y.backward(gy)
    return y.detach(), xs.grad, ws.grad, bs.grad


# (threads, batch, path of the input gradient)
PATHS = [(1, 1, "per-image"), (1, 3, "per-image"), (4, 3, "within-image"), (4, 1, "within-image"),
         (4, 5, "per-image")]


@pytest.mark.parametrize("weight_grad,input_grad", GRAD_MODES)
@pytest.mark.parametrize("threads,batch,path", PATHS, indirect=["threads"],
                         ids=[f"{t}threads-batch{n}-{p}" for t, n, p in PATHS])
def test_both_input_gradient_paths_match_the_reference(threads, batch, path, weight_grad, input_grad):
    assert (batch >= torch.get_num_threads()) == (path == "per-image")
    x, w, b = _case(batch, torch.float64, seed=batch)
    gy = torch.randn(batch, 4, 6, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    got = _run(adder_conv2d, x, w, b, gy, weight_grad, input_grad)
    ref = _run(adder_conv2d_reference, x, w, b, gy, weight_grad, input_grad)
    for name, a, e in zip(("forward", "grad input", "grad weight", "grad bias"), got, ref):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-10, msg=lambda m: f"{name}: {m}")


# Relative spacing of the half types near 1: one unit in the last place, as a tolerance.
ULP = {torch.float16: 2.0 ** -10, torch.bfloat16: 2.0 ** -7}


@pytest.mark.parametrize("weight_grad,input_grad", GRAD_MODES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_half_precision_on_cpu_accumulates_in_float32(dtype, weight_grad, input_grad):
    x, w, b = _case(3, dtype, seed=11)
    gy = torch.randn(3, 4, 6, 5, generator=torch.Generator().manual_seed(5)).to(dtype)
    got = _run(adder_conv2d, x, w, b, gy, weight_grad, input_grad)
    # Oracle: the float64 reference on the very same half-rounded values.
    ref = _run(adder_conv2d_reference, x.double(), w.double(), b.double(), gy.double(), weight_grad, input_grad)
    for name, a, e in zip(("forward", "grad input", "grad weight", "grad bias"), got, ref):
        assert a.dtype == dtype, name
        scale = e.abs().max().item()
        # Rounded once from a float32 sum: within a unit or two in the last place of the result,
        # far below what a half-precision accumulation over 27..1000 terms would lose.
        torch.testing.assert_close(a.double(), e, rtol=2 * ULP[dtype], atol=2 * ULP[dtype] * scale,
                                   msg=lambda m: f"{name}: {m}")
