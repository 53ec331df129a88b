"""Bad arguments to ``adder_conv2d`` (and its reference) fail early with a named, clear error."""

from __future__ import annotations

import pytest
import torch

from addersr_plugin.ops import adder_conv2d, adder_conv2d_reference

IMPLS = [adder_conv2d, adder_conv2d_reference]
IMPL_IDS = ["op", "reference"]


def _x(*shape, **kw):
    return torch.randn(*shape, **kw)


# (id, kwargs-builder, exception, message regex). Defaults: x (2, 4, 8, 8), w (6, 4, 3, 3).
def _args(**over):
    args = dict(input=_x(2, 4, 8, 8), weight=_x(6, 4, 3, 3), bias=None, stride=1, padding=0,
                dilation=1, groups=1)
    args.update(over)
    return args


BAD = [
    ("input-3d", lambda: _args(input=_x(4, 8, 8)), ValueError, r"input must be 4-D .* got shape \(4, 8, 8\)"),
    ("input-5d", lambda: _args(input=_x(1, 2, 4, 8, 8)), ValueError, r"input must be 4-D"),
    ("weight-3d", lambda: _args(weight=_x(6, 4, 3)), ValueError, r"weight must be 4-D .* got shape \(6, 4, 3\)"),
    ("channels-vs-weight", lambda: _args(weight=_x(6, 3, 3, 3)), ValueError,
     r"input has 4 channels but weight expects 3 per group"),
    ("channels-vs-groups", lambda: _args(weight=_x(6, 4, 3, 3), groups=2), ValueError,
     r"input has 4 channels but weight expects 4 per group × groups=2 = 8"),
    ("cout-not-divisible", lambda: _args(weight=_x(5, 2, 3, 3), groups=2), ValueError,
     r"out channels 5 are not divisible by groups=2"),
    ("groups-zero", lambda: _args(groups=0), ValueError, r"groups must be a positive int, got 0"),
    ("stride-zero", lambda: _args(stride=0), ValueError, r"stride must be positive, got \(0, 0\)"),
    ("stride-negative", lambda: _args(stride=(1, -2)), ValueError, r"stride must be positive, got \(1, -2\)"),
    ("dilation-zero", lambda: _args(dilation=(0, 1)), ValueError, r"dilation must be positive, got \(0, 1\)"),
    ("dilation-negative", lambda: _args(dilation=-1), ValueError, r"dilation must be positive"),
    ("padding-negative", lambda: _args(padding=(0, -1)), ValueError, r"padding must be non-negative, got \(0, -1\)"),
    ("stride-triple", lambda: _args(stride=(1, 1, 1)), TypeError, r"stride must be an int or a pair of ints"),
    ("padding-float", lambda: _args(padding=1.5), TypeError, r"padding must be an int or a pair of ints"),
    ("dilation-bool", lambda: _args(dilation=True), TypeError, r"dilation must be an int or a pair of ints"),
    ("output-empty", lambda: _args(input=_x(2, 4, 2, 8)), ValueError,
     r"output size would be 0x6 .* it must be positive"),
    ("output-negative-dilated", lambda: _args(dilation=4), ValueError, r"output size would be 0x0"),
    ("int-input", lambda: _args(input=torch.ones(2, 4, 8, 8, dtype=torch.int32),
                                weight=torch.ones(6, 4, 3, 3, dtype=torch.int32)),
     TypeError, r"input must be a floating-point tensor, got dtype torch.int32"),
    ("bool-input", lambda: _args(input=torch.ones(2, 4, 8, 8, dtype=torch.bool)),
     TypeError, r"input must be a floating-point tensor"),
    ("dtype-mismatch", lambda: _args(weight=_x(6, 4, 3, 3, dtype=torch.float64)), TypeError,
     r"weight dtype torch.float64 does not match input dtype torch.float32"),
    ("device-mismatch", lambda: _args(weight=_x(6, 4, 3, 3, device="meta")), ValueError,
     r"weight is on meta but input is on cpu"),
    ("bias-shape", lambda: _args(bias=_x(5)), ValueError, r"bias must have shape \(6,\), got \(5,\)"),
    ("bias-2d", lambda: _args(bias=_x(6, 1)), ValueError, r"bias must have shape \(6,\), got \(6, 1\)"),
    ("bias-dtype", lambda: _args(bias=_x(6, dtype=torch.float64)), TypeError,
     r"bias dtype torch.float64 does not match input dtype torch.float32"),
    ("bias-device", lambda: _args(bias=_x(6, device="meta")), ValueError, r"bias is on meta but input is on cpu"),
    ("bias-not-tensor", lambda: _args(bias=[0.0] * 6), TypeError, r"bias must be a tensor or None"),
    ("input-not-tensor", lambda: _args(input=[[1.0]]), TypeError, r"input and weight must be tensors"),
    # Cin == 0: an empty tap sum; the CPU kernel used to return its output buffer unwritten.
    ("zero-channels", lambda: _args(input=_x(2, 0, 5, 5), weight=_x(3, 0, 3, 3)), ValueError,
     r"adder_conv2d: input has zero channels \(Cin == 0\)"),
    ("zero-channels-bias", lambda: _args(input=_x(2, 0, 5, 5), weight=_x(3, 0, 3, 3), bias=_x(3)), ValueError,
     r"input has zero channels \(Cin == 0\); an adder convolution needs at least one input channel"),
    ("zero-channels-groups", lambda: _args(input=_x(1, 0, 5, 5), weight=_x(4, 0, 1, 1), groups=2), ValueError,
     r"input has zero channels \(Cin == 0\)"),
]


@pytest.mark.parametrize("impl", IMPLS, ids=IMPL_IDS)
@pytest.mark.parametrize("name,build,exc,match", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments(impl, name, build, exc, match):
    with pytest.raises(exc, match=match):
        impl(**build())


@pytest.mark.parametrize("impl", IMPLS, ids=IMPL_IDS)
@pytest.mark.parametrize("kw,match", [
    (dict(weight_grad="exact"), r"unknown weight_grad 'exact'; expected one of \('full', 'sign'\)"),
    (dict(input_grad="full"), r"unknown input_grad 'full'; expected one of \('hardtanh', 'sign'\)"),
    (dict(input_grad="Sign"), r"unknown input_grad 'Sign'"),
], ids=["weight-grad", "input-grad", "input-grad-case"])
def test_unknown_grad_mode(impl, kw, match):
    with pytest.raises(ValueError, match=match):
        impl(_x(1, 2, 5, 5), _x(3, 2, 3, 3), **kw)


def test_meta_tensors_give_shapes_without_compute():
    """The meta device is a legitimate device (shape inference), not only the 'wrong' one above."""
    x = torch.empty(2, 4, 9, 7, device="meta")
    w = torch.empty(6, 2, 3, 3, device="meta")
    b = torch.empty(6, device="meta")
    y = adder_conv2d(x, w, b, stride=2, padding=1, groups=2)
    assert y.device.type == "meta" and y.shape == (2, 6, 5, 4)


@pytest.mark.parametrize("name", ["reference_forward", "reference_grad_input", "reference_grad_weight"])
def test_reference_kernels_reject_zero_channels(name):
    """The reference is also the registered kernel when the extension is missing: a direct
    ``torch.ops.addersr.*`` call on it must refuse Cin == 0 like the compiled kernels do."""
    from addersr_plugin.ops import reference

    x, w = _x(2, 0, 5, 5), _x(3, 0, 3, 3)
    args = (x, w, None) if name == "reference_forward" else (_x(2, 3, 3, 3), x, w)
    mode = () if name == "reference_forward" else ("sign",)
    op = {"reference_forward": "adder_conv2d"}.get(name, name.replace("reference", "adder_conv2d"))
    with pytest.raises(ValueError, match=rf"^{op}: input has zero channels \(Cin == 0\)"):
        getattr(reference, name)(*args, (1, 1), (0, 0), (1, 1), 1, *mode)


def test_fake_kernel_rejects_zero_channels():
    """The meta/fake kernel (torch.compile, meta tensors) agrees with the real ones."""
    x = torch.empty(2, 0, 5, 5, device="meta")
    w = torch.empty(3, 0, 3, 3, device="meta")
    with pytest.raises(RuntimeError, match=r"adder_conv2d: input has zero channels \(Cin == 0\)"):
        torch.ops.addersr.adder_conv2d(x, w, None, [1, 1], [0, 0], [1, 1], 1, "full", "hardtanh")
