"""``addersr::adder_conv2d`` under ``torch.autocast`` (CPU bf16 here; CUDA in test_ops_cuda.py).

The op has AutocastCPU/AutocastCUDA kernels that run it in float32 (``AUTOCAST_DTYPE``): the
results must be the float64 reference's on the float32 values the kernel sees, the gradients
must reach each leaf in its own dtype, and outside autocast a dtype mix must still be refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from addersr_plugin.ops import adder_conv2d, adder_conv2d_reference
from addersr_plugin.ops.adder_conv2d import AUTOCAST_DEVICE_TYPES, AUTOCAST_DTYPE

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
