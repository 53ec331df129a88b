"""``addersr::adder_conv2d`` under ``torch.autocast`` (CPU bf16 here; CUDA in test_ops_cuda.py).

The op has AutocastCPU/AutocastCUDA kernels. On the CPU it runs in float32 (``AUTOCAST_DTYPE``):
the results must be the float64 reference's on the float32 values the kernel sees, the gradients
must reach each leaf in its own dtype, and outside autocast a dtype mix must still be refused.
On CUDA with an fp16/bf16 autocast dtype it runs ``addersr::adder_conv2d_amp`` (half-precision
operands, float32 result). Without a GPU that rule is checked here on fake CUDA tensors (which
dtypes reach which op), and ``adder_conv2d_amp`` itself on its CPU kernel (values, gradient
dtypes, opcheck, argument checks); its CUDA kernels are checked in the emulation
(test_cuda_emulation.py) and on a GPU (test_ops_cuda.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from addersr_plugin.ops import adder_conv2d, adder_conv2d_reference, extension_status
from addersr_plugin.ops.adder_conv2d import AUTOCAST_DEVICE_TYPES, AUTOCAST_DTYPE, CUDA_AMP_DTYPES
from addersr_plugin.ops.reference import (reference_amp_forward, reference_amp_grad_input,
                                          reference_amp_grad_weight)

OPS = torch.ops.addersr
MODES = [("full", "hardtanh"), ("sign", "sign")]
# fp32 accumulation against the float64 reference, sums of up to 72 terms of magnitude ~3
ATOL, RTOL = 1e-4, 1e-5


def _args(seed, dtype=torch.bfloat16, groups=1, bias=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 8, 7, 9, generator=g).to(dtype)  # an autocast activation (a conv's output)
    w = torch.randn(6, 8 // groups, 3, 3, generator=g)  # a float32 parameter
    b = torch.randn(6, generator=g) if bias else None
    return x, w, b


def test_autocast_kernels_are_registered_for_cpu_and_cuda():
    assert AUTOCAST_DTYPE == torch.float32
    for device_type in AUTOCAST_DEVICE_TYPES:
        key = "Autocast" + device_type.upper()
        assert torch._C._dispatch_has_kernel_for_dispatch_key("addersr::adder_conv2d", key), key
    assert "cpu" in AUTOCAST_DEVICE_TYPES


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("modes", MODES)
def test_cpu_autocast_runs_float32_and_matches_the_reference(groups, modes):
    x, w, b = _args(groups, groups=groups)
    xr, wr, br = (t.detach().double().requires_grad_() for t in (x, w, b))  # the values the op sees, exactly
    x, w, b = (t.requires_grad_() for t in (x, w, b))
    geom = dict(stride=(1, 2), padding=1, dilation=(2, 1), groups=groups)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = adder_conv2d(x, w, b, **geom, weight_grad=modes[0], input_grad=modes[1])
        direct = OPS.adder_conv2d(x, w, b, [1, 2], [1, 1], [2, 1], groups, *modes)  # the dispatcher's own rule
    ref = adder_conv2d_reference(xr, wr, br, **geom, weight_grad=modes[0], input_grad=modes[1])
    assert y.dtype == direct.dtype == torch.float32
    torch.testing.assert_close(direct, y, rtol=0, atol=0)
    torch.testing.assert_close(y.double(), ref, atol=ATOL, rtol=RTOL)

    grad = torch.randn_like(ref)
    y.backward(grad.float())
    ref.backward(grad)
    # each gradient in its leaf's dtype: bf16 for the bf16 activation, float32 for the parameters
    assert (x.grad.dtype, w.grad.dtype, b.grad.dtype) == (torch.bfloat16, torch.float32, torch.float32)
    torch.testing.assert_close(w.grad.double(), wr.grad, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(b.grad.double(), br.grad, atol=ATOL, rtol=RTOL)
    # the input gradient is rounded once to bf16 (8 significant bits) on its way back to the leaf
    torch.testing.assert_close(x.grad.double(), xr.grad, atol=1e-2, rtol=2 ** -8)


def test_float32_inputs_under_autocast_are_unchanged_and_float64_is_not_cast():
    x, w, b = _args(3, dtype=torch.float32)
    plain = adder_conv2d(x, w, b, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(adder_conv2d(x, w, b, padding=1), plain, rtol=0, atol=0)
        y64 = adder_conv2d(x.double(), w.double(), b.double(), padding=1)  # autocast leaves float64 alone
        assert y64.dtype == torch.float64
        with pytest.raises(TypeError, match="weight dtype torch.float32 does not match input dtype torch.float64"):
            adder_conv2d(x.double(), w, b, padding=1)


def test_outside_autocast_a_dtype_mix_is_still_refused():
    x, w, b = _args(4)
    with pytest.raises(TypeError, match="weight dtype torch.float32 does not match input dtype torch.bfloat16"):
        adder_conv2d(x, w, b, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        with pytest.raises(TypeError, match="does not match input dtype torch.bfloat16"):
            adder_conv2d(x, w, b, padding=1)


def test_layer_in_a_network_under_autocast_returns_float32_between_bf16_convolutions():
    from addersr_plugin.nn import AdderConv2d

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), AdderConv2d(8, 8, 3, padding=1, eta=0.2),
                              torch.nn.BatchNorm2d(8), torch.nn.Conv2d(8, 3, 3, padding=1))
    seen = {}
    for name, m in net.named_children():
        m.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(torch.rand(2, 3, 10, 10)).float().sum().backward()
    assert seen == {"0": torch.bfloat16, "1": torch.float32, "2": torch.float32, "3": torch.bfloat16}
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in net.parameters())


_FALLBACK_SCRIPT = textwrap.dedent("""
    import sys, warnings
    warnings.simplefilter("ignore")
    import torch
    from addersr_plugin.ops import adder_conv2d, extension_status
    assert not extension_status()["extension_loaded"]
    x, w = torch.load(sys.argv[1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = adder_conv2d(x, w, None, padding=1)
    print(y.dtype)
    torch.save(y, sys.argv[2])
""")


def test_autocast_works_with_the_pure_pytorch_fallback(tmp_path):
    """Without the extension the op is defined in Python (ops/_extension.py): the autocast rule
    must apply to that definition too."""
    x, w, _ = _args(5, bias=False)
    torch.save((x, w), tmp_path / "in.pt")
    env = dict(os.environ, ADDERSR_DISABLE_EXTENSION="1")
    proc = subprocess.run([sys.executable, "-c", _FALLBACK_SCRIPT, str(tmp_path / "in.pt"), str(tmp_path / "out.pt")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "torch.float32"
    ref = adder_conv2d_reference(x.double(), w.double(), None, padding=1)
    torch.testing.assert_close(torch.load(tmp_path / "out.pt").double(), ref, atol=ATOL, rtol=RTOL)


# --------------------------------------------------------------------------- the CUDA rule, on fake tensors

@contextlib.contextmanager
def _fake_cuda_autocast(dtype):
    """Fake CUDA tensors under CUDA autocast state, without a GPU (torch.autocast would refuse)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    enabled, old_dtype = torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")
    with FakeTensorMode():
        torch.set_autocast_enabled("cuda", True)
        torch.set_autocast_dtype("cuda", dtype)
        try:
            yield
        finally:
            torch.set_autocast_enabled("cuda", enabled)
            torch.set_autocast_dtype("cuda", old_dtype)


def _graph_ops(y):
    """The op of y's grad_fn and, per input edge, the grad_fn kind (a cast or the leaf itself)."""
    op = y.grad_fn.name().replace("GeneratedBackwardFor_addersr_", "").replace("_defaultBackward", "")
    edges = [None if fn is None else fn.name().split("::")[-1] for fn, _ in y.grad_fn.next_functions]
    return op, edges


@pytest.mark.skipif("cuda" not in AUTOCAST_DEVICE_TYPES, reason="this torch has no CUDA autocast")
@pytest.mark.parametrize("amp_dtype", CUDA_AMP_DTYPES, ids=str)
@pytest.mark.parametrize("entry", ["dispatcher", "python"])
def test_cuda_autocast_runs_the_half_precision_op(amp_dtype, entry):
    """Both entry points pick adder_conv2d_amp: a float32 result; an activation in the other 16-bit
    dtype is cast to the autocast dtype, float32 operands go in as they are (the kernel rounds them,
    so the parameters' gradients stay float32), and the bias stays float32."""
    other = torch.bfloat16 if amp_dtype == torch.float16 else torch.float16
    with _fake_cuda_autocast(amp_dtype):
        for x_dtype, x_edge in [(other, "ToCopyBackward0"), (amp_dtype, "AccumulateGrad"),
                                (torch.float32, "AccumulateGrad")]:
            x = torch.empty(2, 4, 6, 6, device="cuda", dtype=x_dtype, requires_grad=True)
            w = torch.empty(5, 4, 3, 3, device="cuda", requires_grad=True)
            b = torch.empty(5, device="cuda", requires_grad=True)
            if entry == "dispatcher":
                y = OPS.adder_conv2d(x, w, b, [1, 1], [1, 1], [1, 1], 1, "full", "hardtanh")
            else:
                y = adder_conv2d(x, w, b, padding=1)
            assert y.dtype == torch.float32 and y.shape == (2, 5, 6, 6)
            assert _graph_ops(y) == ("adder_conv2d_amp", [x_edge, "AccumulateGrad", "AccumulateGrad"]), x_dtype


@pytest.mark.skipif("cuda" not in AUTOCAST_DEVICE_TYPES, reason="this torch has no CUDA autocast")
def test_cuda_autocast_keeps_float32_and_float64_on_the_float_op():
    """An autocast dtype of float32, or float64 operands, leave the half-precision path alone."""
    with _fake_cuda_autocast(torch.float32):
        x = torch.empty(1, 2, 5, 5, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        w = torch.empty(3, 2, 3, 3, device="cuda", requires_grad=True)
        y = OPS.adder_conv2d(x, w, None, [1, 1], [0, 0], [1, 1], 1, "full", "hardtanh")
        assert y.dtype == torch.float32 and _graph_ops(y)[0] == "adder_conv2d"
    with _fake_cuda_autocast(torch.float16):
        x = torch.empty(1, 2, 5, 5, device="cuda", dtype=torch.float64)
        w = torch.empty(3, 2, 3, 3, device="cuda", dtype=torch.float64, requires_grad=True)
        y = adder_conv2d(x, w, None)
        assert y.dtype == torch.float64 and _graph_ops(y)[0] == "adder_conv2d"


# --------------------------------------------------------------------------- adder_conv2d_amp on the CPU

def _amp_args(seed, x_dtype, w_dtype, compute, bias=True, groups=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 7, 6, generator=g).to(x_dtype)
    w = torch.randn(6, 4 // groups, 3, 3, generator=g).to(w_dtype)
    b = torch.randn(6, generator=g) if bias else None
    return x, w, b


AMP_COMBOS = [(torch.float32, torch.float32, torch.float16), (torch.float16, torch.float32, torch.float16),
              (torch.bfloat16, torch.bfloat16, torch.bfloat16), (torch.float32, torch.bfloat16, torch.bfloat16)]


@pytest.mark.parametrize("x_dtype,w_dtype,compute", AMP_COMBOS, ids=str)
def test_amp_op_on_cpu_is_the_float32_op_on_rounded_operands(x_dtype, w_dtype, compute):
    """The CPU kernel computes in float32 on the operands rounded to the compute dtype (float32
    result); the gradients come back in each operand's own dtype."""
    x, w, b = _amp_args(11, x_dtype, w_dtype, compute, groups=2)
    x, w, b = (t.requires_grad_() for t in (x, w, b))
    geom = ([1, 2], [1, 1], [2, 1], 2)
    y = OPS.adder_conv2d_amp(x, w, b, *geom, "full", "hardtanh", compute)
    assert y.dtype == torch.float32
    xr, wr = (t.detach().to(compute).double().requires_grad_() for t in (x, w))
    br = b.detach().double().requires_grad_()
    ref = adder_conv2d_reference(xr, wr, br, *geom)
    torch.testing.assert_close(y.double(), ref, atol=ATOL, rtol=RTOL)
    # the rounding matters: the unrounded float32 operands give another result
    if x_dtype == torch.float32:
        assert (adder_conv2d_reference(x.detach().double(), w.detach().double(), br, *geom) - ref).abs().max() > 1e-3

    grad = torch.randn_like(ref)
    y.backward(grad.float())
    ref.backward(grad)
    assert (x.grad.dtype, w.grad.dtype, b.grad.dtype) == (x_dtype, w_dtype, torch.float32)
    tol = lambda dt: dict(atol=ATOL, rtol=RTOL) if dt == torch.float32 else dict(atol=1e-2, rtol=2 ** -7)  # noqa
    torch.testing.assert_close(x.grad.double(), xr.grad, **tol(x_dtype))
    torch.testing.assert_close(w.grad.double(), wr.grad, **tol(w_dtype))
    torch.testing.assert_close(b.grad.double(), br.grad, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("x_dtype,w_dtype,compute", AMP_COMBOS[:3], ids=str)
def test_amp_op_opcheck(x_dtype, w_dtype, compute):
    x, w, b = _amp_args(12, x_dtype, w_dtype, compute)
    x, w, b = (t.requires_grad_() for t in (x, w, b))
    geom = ([2, 1], [1, 1], [1, 1], 1)
    torch.library.opcheck(OPS.adder_conv2d_amp.default, (x, w, b, *geom, "sign", "sign", compute))
    y = OPS.adder_conv2d_amp(x, w, b, *geom, "full", "hardtanh", compute)
    gy = torch.randn(y.shape)
    torch.library.opcheck(OPS.adder_conv2d_amp_grad_input.default,
                          (gy, x.detach(), w.detach(), *geom, "hardtanh", compute))
    torch.library.opcheck(OPS.adder_conv2d_amp_grad_weight.default,
                          (gy, x.detach(), w.detach(), *geom, "full", compute))


def test_amp_fake_kernels_give_the_dtypes_on_meta():
    x = torch.empty(2, 4, 6, 6, device="meta", dtype=torch.bfloat16, requires_grad=True)
    w = torch.empty(5, 4, 3, 3, device="meta", requires_grad=True)
    y = OPS.adder_conv2d_amp(x, w, None, [1, 1], [1, 1], [1, 1], 1, "full", "hardtanh", torch.bfloat16)
    gx, gw = torch.autograd.grad(y, (x, w), torch.empty(y.shape, device="meta"))
    assert (y.dtype, gx.dtype, gw.dtype) == (torch.float32, torch.bfloat16, torch.float32)
    assert y.shape == (2, 5, 6, 6) and gx.shape == x.shape and gw.shape == w.shape


def test_amp_reference_fallback_agrees_with_the_kernel():
    """The pure-PyTorch fallback of the amp ops (ops/_extension.py) computes what the CPU kernel does."""
    x, w, b = _amp_args(13, torch.float32, torch.float32, torch.bfloat16)
    geom = ([1, 1], [1, 1], [1, 1], 1)
    y = OPS.adder_conv2d_amp(x, w, b, *geom, "full", "hardtanh", torch.bfloat16)
    torch.testing.assert_close(reference_amp_forward(x, w, b, *geom, torch.bfloat16), y, atol=ATOL, rtol=RTOL)
    gy = torch.randn(y.shape)
    for mode, kernel, ref in [("sign", OPS.adder_conv2d_amp_grad_input, reference_amp_grad_input),
                              ("full", OPS.adder_conv2d_amp_grad_weight, reference_amp_grad_weight)]:
        torch.testing.assert_close(ref(gy, x, w, *geom, mode, torch.bfloat16),
                                   kernel(gy, x, w, *geom, mode, torch.bfloat16), atol=ATOL, rtol=RTOL)


@pytest.mark.skipif("CPU" in extension_status()["reference_backends"],
                    reason="the compiled CPU kernels of adder_conv2d_amp are not loaded (stale or missing build)")
def test_amp_op_rejects_wrong_dtypes_by_name():
    x, w, b = _amp_args(14, torch.float16, torch.float32, torch.float16)
    geom = ([1, 1], [1, 1], [1, 1], 1)
    with pytest.raises(RuntimeError, match="compute_dtype must be Half or BFloat16, got Float"):
        OPS.adder_conv2d_amp(x, w, b, *geom, "full", "hardtanh", torch.float32)
    with pytest.raises(RuntimeError, match="input dtype Half must be Float or the compute dtype BFloat16"):
        OPS.adder_conv2d_amp(x, w, b, *geom, "full", "hardtanh", torch.bfloat16)
    with pytest.raises(RuntimeError, match="weight dtype Double must be Float or the compute dtype Half"):
        OPS.adder_conv2d_amp(x, w.double(), b, *geom, "full", "hardtanh", torch.float16)
    with pytest.raises(RuntimeError, match=r"bias dtype Half must be Float \(the output's dtype\)"):
        OPS.adder_conv2d_amp(x, w, b.half(), *geom, "full", "hardtanh", torch.float16)
    gy = torch.randn(2, 6, 7, 6)
    with pytest.raises(RuntimeError, match=r"adder_conv2d_amp_grad_input: grad_output dtype Half must be Float"):
        OPS.adder_conv2d_amp_grad_input(gy.half(), x, w, *geom, "sign", torch.float16)
    with pytest.raises(RuntimeError, match=r"adder_conv2d_amp_grad_weight: grad_output must have shape"):
        OPS.adder_conv2d_amp_grad_weight(gy[:, :3], x, w, *geom, "full", torch.float16)
    with pytest.raises(TypeError, match="weight dtype torch.float64 must be torch.float32 or the compute dtype"):
        from addersr_plugin.ops import check_args
        check_args(x, w.double(), None, 1, 1, 1, 1, "full", "hardtanh", compute_dtype=torch.float16)
