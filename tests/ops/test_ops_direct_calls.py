"""Direct calls of the registered ``torch.ops.addersr.*`` operators (bypassing the Python wrapper)
get named errors from the C++ checks shared by the CPU and CUDA kernels
(``csrc/adder_conv2d_geometry.h``); the CUDA twin of this test, which can also mix devices,
is in ``test_ops_cuda.py`` (a CPU tensor beside a meta tensor dispatches to the meta kernel)."""

from __future__ import annotations

import pytest
import torch

from addersr_plugin.ops import extension_available

pytestmark = pytest.mark.skipif(not extension_available(), reason="the compiled extension is not built")

GEOM = ([1, 1], [0, 0], [1, 1], 1)
ops = torch.ops.addersr


def _tensors():
    return torch.randn(1, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.randn(1, 5, 4, 4)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda x, w, gy: ops.adder_conv2d(x, w.double(), None, *GEOM, "full", "hardtanh"),
         "weight dtype Double does not match input dtype Float"),
        (lambda x, w, gy: ops.adder_conv2d(x[0], w, None, *GEOM, "full", "hardtanh"),
         r"adder_conv2d: input must be 4-D"),
        (lambda x, w, gy: ops.adder_conv2d(x, w, torch.zeros(4), *GEOM, "full", "hardtanh"),
         r"adder_conv2d: bias must have shape \(5,\)"),
        (lambda x, w, gy: ops.adder_conv2d(x, w, None, [0, 1], [0, 0], [1, 1], 1, "full", "hardtanh"),
         "stride must be positive"),
        (lambda x, w, gy: ops.adder_conv2d(x, w[:, :3], None, *GEOM, "full", "hardtanh"),
         "input has 4 channels but weight expects 3 per group x groups=1"),
        (lambda x, w, gy: ops.adder_conv2d_grad_input(gy, x, w, *GEOM, "bogus"),
         "adder_conv2d_grad_input: unknown mode 'bogus'; expected 'hardtanh' or 'sign'"),
        (lambda x, w, gy: ops.adder_conv2d_grad_weight(gy, x, w, *GEOM, "hardtanh"),
         "adder_conv2d_grad_weight: unknown mode 'hardtanh'; expected 'full' or 'sign'"),
        (lambda x, w, gy: ops.adder_conv2d_grad_weight(gy[:, :3], x, w, *GEOM, "full"),
         r"grad_output must have shape \(1, 5, 4, 4\)"),
        (lambda x, w, gy: ops.adder_conv2d_grad_input(gy.double(), x, w, *GEOM, "sign"),
         "grad_output dtype Double does not match input dtype Float"),
        # Cin == 0 (x of shape (1, 0, 6, 6), weight (5, 0, 3, 3)): rejected by every operator.
        (lambda x, w, gy: ops.adder_conv2d(x[:, :0], w[:, :0], torch.zeros(5), *GEOM, "full", "hardtanh"),
         r"adder_conv2d: input has zero channels \(Cin == 0\); an adder convolution needs at least one"),
        (lambda x, w, gy: ops.adder_conv2d_grad_input(gy, x[:, :0], w[:, :0], *GEOM, "sign"),
         r"adder_conv2d_grad_input: input has zero channels \(Cin == 0\)"),
        (lambda x, w, gy: ops.adder_conv2d_grad_weight(gy, x[:, :0], w[:, :0], *GEOM, "full"),
         r"adder_conv2d_grad_weight: input has zero channels \(Cin == 0\)"),
    ],
    ids=["dtype", "3-D input", "bias shape", "stride", "channels", "input mode", "weight mode",
         "grad shape", "grad dtype", "zero channels", "zero channels grad_input", "zero channels grad_weight"],
)
def test_direct_calls_raise_named_errors(call, message):
    with pytest.raises(RuntimeError, match=message):
        call(*_tensors())
