"""``adder_conv2d_u8`` (the SAD kernel when built) bit-exact against the int64 reference, the
reference against an independent tap-loop oracle, registration (opcheck, fake kernel), the
fallback without the extension, and every bad input's message."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from addersr_plugin.ops import (adder_conv2d_u8, adder_conv2d_u8_affine, adder_conv2d_u8_affine_reference,
                                adder_conv2d_u8_reference, extension_available)
from addersr_plugin.ops.quantize import quantize_u8

REPO = Path(__file__).resolve().parents[2]
OP = torch.ops.addersr.adder_conv2d_u8
AFFINE = torch.ops.addersr.adder_conv2d_u8_affine


# Without the compiled kernel the op *is* the reference, so comparing the two could not fail: skip
# then. The reference is checked against the independent tap-loop oracle either way.
needs_kernel = pytest.mark.skipif(
    not extension_available(), reason="the compiled kernel is not loaded: the op runs the reference, so comparing "
                                      "it with the reference would compare the reference with itself")


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def oracle_u8(x, w, zp, stride=1, padding=0, dilation=1, groups=1):
    """Σ|Xpad − W| by a loop over (out channel, in channel, tap) on strided slices, int64.

    Shares no code with the reference (which unfolds): the input is padded with ``zp``
    explicitly and each tap's values are read through a strided slice."""
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    cout, cin_g, kh, kw = w.shape
    ho = (x.shape[2] + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    wo = (x.shape[3] + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    xp = F.pad(x.long(), (p[1], p[1], p[0], p[0]), value=zp)
    y = torch.zeros(x.shape[0], cout, ho, wo, dtype=torch.int64)
    for co in range(cout):
        g = co // (cout // groups)
        for ci in range(cin_g):
            for i in range(kh):
                for j in range(kw):
                    r0, c0 = i * d[0], j * d[1]
                    tap = xp[:, g * cin_g + ci, r0: r0 + s[0] * (ho - 1) + 1: s[0], c0: c0 + s[1] * (wo - 1) + 1: s[1]]
                    y[:, co] += (tap - int(w[co, ci, i, j])).abs()
    return y.int()


def _data(n, cin, cout, hw, k, groups=1, seed=0, low=0, high=256):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(low, high, (n, cin, *hw), generator=g, dtype=torch.uint8)
    w = torch.randint(low, high, (cout, cin // groups, *_pair(k)), generator=g, dtype=torch.uint8)
    return x, w


# id: (n, cin, cout, (H, W), k, zp, stride, padding, dilation, groups, layout)
CASES = {
    "rgb-stem-27taps": (1, 3, 5, (8, 9), 3, 37, 1, 1, 1, 1, "nchw"),
    "ragged-K45-batch3": (3, 5, 7, (7, 6), 3, 128, 1, 1, 1, 1, "nchw"),
    "ragged-K63-stride2": (2, 7, 4, (9, 11), 3, 200, 2, 1, 1, 1, "nchw"),
    "stride-2x1-pad-asym": (1, 4, 3, (8, 7), 3, 91, (2, 1), (2, 0), 1, 1, "nchw"),
    "dilation2": (2, 6, 5, (10, 9), 3, 17, 1, 2, 2, 1, "nchw"),
    "dilation-1x3": (1, 4, 4, (7, 12), 3, 255, 1, (1, 3), (1, 3), 1, "nchw"),
    "groups2": (2, 8, 6, (6, 7), 3, 64, 1, 1, 1, 2, "nchw"),
    "groups4-stride2-dil2": (1, 8, 8, (11, 10), 3, 5, 2, 2, 2, 4, "nchw"),
    "depthwise": (1, 6, 6, (5, 6), 3, 99, 1, 1, 1, 6, "nchw"),
    "1x1": (3, 16, 10, (5, 4), 1, 0, 1, 0, 1, 1, "nchw"),
    "1x1-pad-zp": (1, 33, 2, (3, 3), 1, 250, 1, 2, 1, 1, "nchw"),
    "5x5-pad2": (2, 3, 4, (9, 8), 5, 140, 1, 2, 1, 1, "nchw"),
    "5x3-kernel": (1, 5, 3, (7, 9), (5, 3), 60, 1, (2, 1), 1, 1, "nchw"),
    "channels-last": (2, 9, 5, (7, 8), 3, 77, 1, 1, 1, 1, "channels_last"),
    "channels-last-groups-stride2": (3, 8, 10, (9, 11), 3, 5, 2, 1, 1, 2, "channels_last"),
    "non-contiguous": (2, 6, 4, (9, 8), 3, 33, 1, 1, 1, 1, "strided"),
    # 576 taps like an EDSR body layer; 143 pixels span several 28-pixel work chunks,
    # 65 channels leave a partial 3-row weight tile.
    "edsr-like-K576": (1, 64, 65, (11, 13), 3, 120, 1, 1, 1, 1, "nchw"),
    # K = 4704 > the 16 KiB chunk budget: one 4-pixel tile per work item.
    "huge-K-7x7": (1, 96, 2, (7, 7), 7, 10, 1, 3, 1, 1, "nchw"),
    "pad-larger-than-image": (1, 2, 3, (2, 3), 3, 201, 1, 3, 1, 1, "nchw"),
}


def _case(name):
    n, cin, cout, hw, k, zp, stride, padding, dilation, groups, layout = CASES[name]
    x, w = _data(n, cin, cout, hw, k, groups, seed=len(name))
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
        assert not x.is_contiguous()
    elif layout == "strided":
        big = torch.randint(0, 256, (n, cin * 2, hw[0] + 3, hw[1] * 2), dtype=torch.uint8)
        x = big[:, ::2, 1: 1 + hw[0], ::2]
        x.copy_(_data(n, cin, cout, hw, k, groups, seed=1)[0])
        w = w.transpose(2, 3).contiguous().transpose(2, 3)  # weight with permuted strides
        assert not x.is_contiguous() and not w.is_contiguous()
    return x, w, zp, stride, padding, dilation, groups


@needs_kernel
@pytest.mark.parametrize("name", list(CASES))
def test_op_bit_exact_against_reference(name):
    x, w, zp, stride, padding, dilation, groups = _case(name)
    y = adder_conv2d_u8(x, w, zp, stride, padding, dilation, groups)
    ref = adder_conv2d_u8_reference(x, w, zp, stride, padding, dilation, groups)
    # the output follows the input's memory format (F.conv2d's rule), and the reference agrees
    fmt = torch.channels_last if CASES[name][-1] == "channels_last" else torch.contiguous_format
    assert y.dtype == torch.int32 and y.is_contiguous(memory_format=fmt) and y.stride() == ref.stride()
    assert torch.equal(y, ref)
    # Same shape as F.conv2d with this geometry.
    conv = F.conv2d(x.float(), w.float(), None, stride, padding, dilation, groups)
    assert y.shape == conv.shape


@pytest.mark.parametrize("name", ["rgb-stem-27taps", "stride-2x1-pad-asym", "dilation-1x3", "groups4-stride2-dil2",
                                  "1x1-pad-zp", "5x3-kernel", "pad-larger-than-image"])
def test_reference_matches_independent_oracle(name):
    x, w, zp, stride, padding, dilation, groups = _case(name)
    ref = adder_conv2d_u8_reference(x, w, zp, stride, padding, dilation, groups)
    assert torch.equal(ref, oracle_u8(x, w, zp, stride, padding, dilation, groups))


def test_padding_uses_the_zero_point():
    """A constant image equal to the zero point is indistinguishable from its own padding."""
    w = _data(1, 4, 3, (1, 1), 3, seed=3)[1]
    x = torch.full((1, 4, 5, 5), 42, dtype=torch.uint8)
    y = adder_conv2d_u8(x, w, 42, padding=1)
    per_channel = (w.long() - 42).abs().sum((1, 2, 3)).int()
    assert torch.equal(y, per_channel.view(1, 3, 1, 1).expand_as(y))
    # With another zero point the border pixels differ from the interior.
    assert not torch.equal(adder_conv2d_u8(x, w, 0, padding=1), y)


def test_extreme_values_sum_exactly():
    """255·K per output: no saturation anywhere in the SAD lanes or the reduction."""
    x = torch.full((1, 64, 6, 6), 255, dtype=torch.uint8)
    w = torch.zeros(7, 64, 5, 5, dtype=torch.uint8)
    y = adder_conv2d_u8(x, w, 255, padding=2)
    assert torch.all(y == 255 * 64 * 25)
    assert torch.equal(adder_conv2d_u8(x, w.add(255), 0, padding=0), torch.zeros(1, 7, 2, 2, dtype=torch.int32))


@pytest.mark.parametrize("seed", range(12))
def test_random_shapes(seed):
    g = torch.Generator().manual_seed(1000 + seed)

    def r(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    groups = [1, 1, 2, 3][r(0, 3)]
    cin, cout = groups * r(1, 12), groups * r(1, 5)
    kh, kw = r(1, 5), r(1, 5)
    stride, dilation, padding = (r(1, 3), r(1, 3)), (r(1, 2), r(1, 2)), (r(0, 3), r(0, 3))
    h = max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]) + r(0, 7)
    w_ = max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]) + r(0, 7)
    x = torch.randint(0, 256, (r(1, 3), cin, h, w_), generator=g, dtype=torch.uint8)
    w = torch.randint(0, 256, (cout, cin // groups, kh, kw), generator=g, dtype=torch.uint8)
    zp = r(0, 255)
    y = adder_conv2d_u8(x, w, zp, stride, padding, dilation, groups)
    assert torch.equal(y, oracle_u8(x, w, zp, stride, padding, dilation, groups))


def test_empty_batch_and_meta():
    x, w = _data(0, 4, 3, (5, 5), 3)
    assert adder_conv2d_u8(x, w, 3, padding=1).shape == (0, 3, 5, 5)
    y = adder_conv2d_u8(x.to("meta").new_empty(2, 4, 9, 7), w.to("meta"), 3, stride=2)
    assert y.device.type == "meta" and y.shape == (2, 3, 4, 3) and y.dtype == torch.int32


# --------------------------------------------------------------------------- registration

@pytest.mark.parametrize("name", ["rgb-stem-27taps", "groups4-stride2-dil2", "channels-last", "5x3-kernel"])
def test_opcheck(name):
    x, w, zp, stride, padding, dilation, groups = _case(name)
    torch.library.opcheck(OP.default, (x, w, zp, list(_pair(stride)), list(_pair(padding)), list(_pair(dilation)),
                                       groups))


def test_compiled_kernel_serves_cpu_when_built():
    if not extension_available():
        pytest.skip("the compiled extension is not loaded in this environment")
    assert torch._C._dispatch_has_kernel_for_dispatch_key("addersr::adder_conv2d_u8", "CPU")
    assert "reference_u8" not in str(torch._C._dispatch_dump("addersr::adder_conv2d_u8"))


_FALLBACK_SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from addersr_plugin import ops
        x, w = torch.load(sys.argv[1])
        ys = [ops.adder_conv2d_u8(x, w, 19, 2, 1, 1, 2) for _ in range(3)]
        xf = (x.float() - 19) * 0.05
        yf = ops.adder_conv2d_u8_affine(xf, w, 0.05, 19, torch.ones(4), torch.zeros(4), 2, 1, 1, 2)
    torch.save({"warnings": [str(m.message) for m in caught if issubclass(m.category, ops.AdderExtensionWarning)],
                "y": ys[-1], "yf": yf}, sys.argv[2])
    """
)


def test_fallback_without_extension_is_exact_and_warns_once(tmp_path):
    x, w = _data(3, 6, 4, (9, 7), 3, groups=2, seed=5)
    torch.save((x, w), tmp_path / "in.pt")
    env = dict(os.environ, ADDERSR_DISABLE_EXTENSION="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-c", _FALLBACK_SCRIPT, str(tmp_path / "in.pt"), str(tmp_path / "out.pt")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = torch.load(tmp_path / "out.pt")
    u8 = [m for m in result["warnings"] if m.startswith("adder_conv2d_u8:")]
    assert len(u8) == 1 and "exact int64 reference" in u8[0], result["warnings"]
    assert torch.equal(result["y"], oracle_u8(x, w, 19, 2, 1, 1, 2))  # independent of either implementation
    assert torch.equal(result["yf"], result["y"].float())


# --------------------------------------------------------------------------- bad inputs

def _u8(*shape):
    return torch.zeros(*shape, dtype=torch.uint8)


def _args(**over):
    args = dict(input=_u8(2, 4, 8, 8), weight=_u8(6, 4, 3, 3), zero_point=3, stride=1, padding=0, dilation=1,
                groups=1)
    args.update(over)
    return args


BAD = [
    ("input-float", lambda: _args(input=torch.zeros(2, 4, 8, 8)), TypeError,
     r"input must be a uint8 tensor \(quantized values\), got dtype torch.float32"),
    ("input-int8", lambda: _args(input=torch.zeros(2, 4, 8, 8, dtype=torch.int8)), TypeError,
     r"input must be a uint8 tensor .* torch.int8"),
    ("weight-int32", lambda: _args(weight=torch.zeros(6, 4, 3, 3, dtype=torch.int32)), TypeError,
     r"weight must be a uint8 tensor .* torch.int32"),
    ("input-not-tensor", lambda: _args(input=[[1]]), TypeError, r"input and weight must be tensors"),
    ("input-3d", lambda: _args(input=_u8(4, 8, 8)), ValueError, r"input must be 4-D .* got shape \(4, 8, 8\)"),
    ("weight-5d", lambda: _args(weight=_u8(6, 4, 3, 3, 1)), ValueError, r"weight must be 4-D .* \(6, 4, 3, 3, 1\)"),
    ("device-mismatch", lambda: _args(weight=_u8(6, 4, 3, 3).to("meta")), ValueError,
     r"weight is on meta but input is on cpu"),
    ("zero-point-negative", lambda: _args(zero_point=-1), ValueError, r"zero_point must be in \[0, 255\], got -1"),
    ("zero-point-256", lambda: _args(zero_point=256), ValueError, r"zero_point must be in \[0, 255\], got 256"),
    ("zero-point-float", lambda: _args(zero_point=3.0), TypeError, r"zero_point must be an int, got 3.0"),
    ("zero-point-bool", lambda: _args(zero_point=True), TypeError, r"zero_point must be an int, got True"),
    ("zero-point-tensor", lambda: _args(zero_point=torch.tensor(3)), TypeError, r"zero_point must be an int"),
    ("channels-vs-weight", lambda: _args(weight=_u8(6, 3, 3, 3)), ValueError,
     r"input has 4 channels but weight expects 3 per group × groups=1 = 3"),
    ("cout-not-divisible", lambda: _args(weight=_u8(5, 2, 3, 3), groups=2), ValueError,
     r"out channels 5 are not divisible by groups=2"),
    ("groups-zero", lambda: _args(groups=0), ValueError, r"groups must be a positive int, got 0"),
    ("groups-float", lambda: _args(groups=1.0), ValueError, r"groups must be a positive int, got 1.0"),
    ("stride-zero", lambda: _args(stride=(1, 0)), ValueError, r"stride must be positive, got \(1, 0\)"),
    ("dilation-zero", lambda: _args(dilation=0), ValueError, r"dilation must be positive, got \(0, 0\)"),
    ("padding-negative", lambda: _args(padding=(-1, 0)), ValueError, r"padding must be non-negative, got \(-1, 0\)"),
    ("stride-triple", lambda: _args(stride=(1, 1, 1)), TypeError,
     r"stride must be an int or a pair of ints"),
    ("padding-float", lambda: _args(padding=0.5), TypeError, r"padding must be an int or a pair of ints"),
    ("kernel-empty", lambda: _args(weight=_u8(6, 4, 0, 3)), ValueError, r"kernel size must be positive, got \(0, 3\)"),
    ("zero-channels", lambda: _args(input=_u8(2, 0, 8, 8), weight=_u8(6, 0, 3, 3)), ValueError,
     r"input has zero channels \(Cin == 0\); an adder convolution needs at least one input channel"),
    ("output-empty", lambda: _args(input=_u8(2, 4, 2, 8)), ValueError, r"output size would be 0x6 .* must be positive"),
    ("too-many-taps", lambda: _args(input=_u8(1, 1 << 21, 2, 3), weight=_u8(1, 1 << 21, 2, 3)), ValueError,
     r"12582912 taps per output would overflow the int32 sum \(at most 8388608\)"),
]


@pytest.mark.parametrize("impl", [adder_conv2d_u8, adder_conv2d_u8_reference], ids=["op", "reference"])
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_named(impl, case):
    _, build, exc, pattern = case
    with pytest.raises(exc, match=r"^adder_conv2d_u8: .*" + pattern):
        impl(**build())


DIRECT_BAD = [
    ("float", lambda a: a.update(input=torch.zeros(2, 4, 8, 8)), r"input must be uint8, got Float"),
    ("weight-int", lambda a: a.update(weight=torch.zeros(6, 4, 3, 3, dtype=torch.int32)), r"weight must be uint8"),
    ("zero-point", lambda a: a.update(zero_point=300), r"zero_point must be in \[0, 255\], got 300"),
    ("channels", lambda a: a.update(weight=_u8(6, 3, 3, 3)), r"input has 4 channels but weight expects 3"),
    ("stride", lambda a: a.update(stride=[0, 1]), r"stride must be positive"),
    ("output", lambda a: a.update(input=_u8(2, 4, 2, 2)), r"output size would be non-positive"),
    ("zero-channels", lambda a: a.update(input=_u8(2, 0, 8, 8), weight=_u8(6, 0, 3, 3)),
     r"input has zero channels \(Cin == 0\)"),
    ("padding", lambda a: a.update(padding=[0, -2]), r"padding must be non-negative, got \(0, -2\)"),
    ("input-3d", lambda a: a.update(input=_u8(4, 8, 8)), r"input must be 4-D \(N, C, H, W\), got \(4, 8, 8\)"),
]


@pytest.mark.parametrize("case", DIRECT_BAD, ids=[c[0] for c in DIRECT_BAD])
def test_direct_op_call_checks_its_arguments(case):
    if not extension_available():
        pytest.skip("the direct-call checks are the compiled kernel's")
    _, edit, pattern = case
    a = dict(input=_u8(2, 4, 8, 8), weight=_u8(6, 4, 3, 3), zero_point=3, stride=[1, 1], padding=[0, 0],
             dilation=[1, 1], groups=1)
    edit(a)
    with pytest.raises(RuntimeError, match=r"adder_conv2d_u8: " + pattern):
        OP(*a.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to make CUDA tensors")
def test_cuda_tensors_are_refused_clearly():
    x, w = _data(1, 4, 3, (5, 5), 3)
    with pytest.raises(ValueError, match=r"only CPU tensors are supported \(there is no CUDA kernel\)"):
        adder_conv2d_u8(x.cuda(), w.cuda(), 0)
    with pytest.raises(RuntimeError, match=r"only CPU tensors are supported \(there is no CUDA kernel\)"):
        OP(x.cuda(), w.cuda(), 0, [1, 1], [0, 0], [1, 1], 1)


# --------------------------------------------------------------------------- the fused inference op

def _float_case(name, scale=0.0625):
    """A CASES geometry with a float32 input spanning beyond the grid (clamping) and exact ties
    (x = (k + 1/2)·scale, scale a power of two) for round-half-to-even."""
    x, w, zp, stride, padding, dilation, groups = _case(name)
    g = torch.Generator().manual_seed(7)
    xf = (x.float() - zp) * scale * 1.3 + torch.randn(x.shape, generator=g) * scale
    ties = (torch.randint(-300, 300, x.shape, generator=g).float() + 0.5) * scale
    xf = torch.where(torch.rand(x.shape, generator=g) < 0.3, ties, xf)
    if not x.is_contiguous():  # keep the case's layout
        xf = torch.empty_strided(x.shape, x.stride()).copy_(xf)
    return xf, w, scale, zp, stride, padding, dilation, groups


@needs_kernel
@pytest.mark.parametrize("name", list(CASES))
def test_affine_op_sums_are_exact(name):
    """With out_scale = 1 and out_bias = 0 the float output is the exact integer sum of the
    quantized input (sums < 2^24 are exact in float32): quantization and SAD both bit-exact."""
    x, w, scale, zp, stride, padding, dilation, groups = _float_case(name)
    cout = w.shape[0]
    y = adder_conv2d_u8_affine(x, w, scale, zp, torch.ones(cout), torch.zeros(cout), stride, padding, dilation,
                               groups)
    sums = adder_conv2d_u8_reference(quantize_u8(x, scale, zp), w, zp, stride, padding, dilation, groups)
    fmt = torch.channels_last if CASES[name][-1] == "channels_last" else torch.contiguous_format
    assert y.dtype == torch.float32 and y.is_contiguous(memory_format=fmt) and y.stride() == sums.stride()
    assert torch.equal(y, sums.float())


@needs_kernel
@pytest.mark.parametrize("name", ["rgb-stem-27taps", "groups4-stride2-dil2", "channels-last", "non-contiguous",
                                  "edsr-like-K576"])
def test_affine_op_matches_reference(name):
    x, w, scale, zp, stride, padding, dilation, groups = _float_case(name, scale=0.013)
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(w.shape[0], generator=g), torch.randn(w.shape[0], generator=g) * 10
    y = adder_conv2d_u8_affine(x, w, 0.013, zp, a, b, stride, padding, dilation, groups)
    ref = adder_conv2d_u8_affine_reference(x, w, 0.013, zp, a, b, stride, padding, dilation, groups)
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-5)  # fma vs addcmul rounding only


@needs_kernel
@pytest.mark.parametrize("residual, relu", [(True, False), (False, True), (True, True)],
                         ids=["residual", "relu", "residual-relu"])
@pytest.mark.parametrize("name", ["rgb-stem-27taps", "groups4-stride2-dil2", "channels-last", "non-contiguous",
                                  "edsr-like-K576", "ragged-K45-batch3"])
def test_affine_epilogue_matches_reference(name, residual, relu):
    """The fused shortcut and ReLU of an adder unit: max(fma(Σ, a, b) + residual, 0) in float32,
    against the reference (which rounds the affine once, as the kernel's fma does)."""
    x, w, scale, zp, stride, padding, dilation, groups = _float_case(name, scale=0.013)
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(w.shape[0], generator=g) * 0.01, torch.randn(w.shape[0], generator=g)
    plain = adder_conv2d_u8_affine(x, w, 0.013, zp, a, b, stride, padding, dilation, groups)
    # a residual of the output's shape, non-contiguous on purpose (the kernel makes it contiguous)
    r = torch.randn(plain.shape[0], plain.shape[1], plain.shape[3], plain.shape[2], generator=g).transpose(2, 3) \
        if residual else None
    y = adder_conv2d_u8_affine(x, w, 0.013, zp, a, b, stride, padding, dilation, groups, residual=r, relu=relu)
    ref = adder_conv2d_u8_affine_reference(x, w, 0.013, zp, a, b, stride, padding, dilation, groups, r, relu)
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)
    assert y.stride() == ref.stride() == plain.stride()
    expected = plain + r if residual else plain
    torch.testing.assert_close(y, expected.clamp_min(0) if relu else expected, rtol=1e-6, atol=1e-6)
    if relu:
        assert (y >= 0).all() and (y == 0).any()  # the ReLU did cut something


def test_affine_epilogue_opcheck():
    x, w, scale, zp, stride, padding, dilation, groups = _float_case("groups4-stride2-dil2")
    cout = w.shape[0]
    out = adder_conv2d_u8_affine(x, w, scale, zp, torch.rand(cout), torch.rand(cout), stride, padding, dilation,
                                 groups)
    torch.library.opcheck(AFFINE.default, (x, w, scale, zp, torch.rand(cout), torch.rand(cout),
                                           list(_pair(stride)), list(_pair(padding)), list(_pair(dilation)), groups,
                                           torch.randn(out.shape), True))


@pytest.mark.parametrize("name", ["rgb-stem-27taps", "groups4-stride2-dil2", "pad-larger-than-image"])
def test_affine_reference_matches_independent_oracle(name):
    """The fused op's reference, with out_scale = 1 and out_bias = 0, gives the oracle's exact sums
    of the quantized input (runs with or without the compiled kernel)."""
    x, w, scale, zp, stride, padding, dilation, groups = _float_case(name)
    cout = w.shape[0]
    y = adder_conv2d_u8_affine_reference(x, w, scale, zp, torch.ones(cout), torch.zeros(cout), stride, padding,
                                         dilation, groups)
    assert torch.equal(y, oracle_u8(quantize_u8(x, scale, zp), w, zp, stride, padding, dilation, groups).float())


def test_affine_opcheck():
    x, w, scale, zp, stride, padding, dilation, groups = _float_case("groups4-stride2-dil2")
    cout = w.shape[0]
    torch.library.opcheck(AFFINE.default, (x, w, scale, zp, torch.rand(cout), torch.rand(cout),
                                           list(_pair(stride)), list(_pair(padding)), list(_pair(dilation)), groups))


def _affine_args(**over):
    args = dict(input=torch.zeros(2, 4, 8, 8), weight=_u8(6, 4, 3, 3), scale=0.1, zero_point=3,
                out_scale=torch.ones(6), out_bias=torch.zeros(6), stride=1, padding=1, dilation=1, groups=1)
    args.update(over)
    return args


AFFINE_BAD = [
    ("input-uint8", lambda: _affine_args(input=_u8(2, 4, 8, 8)), TypeError,
     r"input must be a float32 tensor, got dtype torch.uint8"),
    ("input-f64", lambda: _affine_args(input=torch.zeros(2, 4, 8, 8, dtype=torch.float64)), TypeError,
     r"input must be a float32 tensor, got dtype torch.float64"),
    ("weight-float", lambda: _affine_args(weight=torch.zeros(6, 4, 3, 3)), TypeError, r"weight must be a uint8 tensor"),
    ("scale-zero", lambda: _affine_args(scale=0.0), ValueError, r"scale must be a positive finite number, got 0.0"),
    ("scale-inf", lambda: _affine_args(scale=float("inf")), ValueError, r"scale must be a positive finite number"),
    ("scale-tensor", lambda: _affine_args(scale=torch.tensor(0.1)), ValueError, r"scale must be a positive finite"),
    ("out-scale-shape", lambda: _affine_args(out_scale=torch.ones(5)), ValueError,
     r"out_scale must have shape \(6,\), got \(5,\)"),
    ("out-bias-dtype", lambda: _affine_args(out_bias=torch.zeros(6, dtype=torch.float64)), TypeError,
     r"out_bias must be float32, got dtype torch.float64"),
    ("out-bias-list", lambda: _affine_args(out_bias=[0.0] * 6), TypeError, r"out_bias must be a tensor, got list"),
    ("out-scale-device", lambda: _affine_args(out_scale=torch.ones(6, device="meta")), ValueError,
     r"out_scale is on meta but input is on cpu"),
    ("zero-point", lambda: _affine_args(zero_point=-3), ValueError, r"zero_point must be in \[0, 255\], got -3"),
    ("groups", lambda: _affine_args(groups=4, weight=_u8(6, 1, 3, 3)), ValueError,
     r"out channels 6 are not divisible by groups=4"),
    ("residual-shape", lambda: _affine_args(residual=torch.zeros(2, 4, 8, 8)), ValueError,
     r"residual must have the output's shape \(2, 6, 8, 8\), got \(2, 4, 8, 8\)"),
    ("residual-dtype", lambda: _affine_args(residual=torch.zeros(2, 6, 8, 8, dtype=torch.float64)), TypeError,
     r"residual must be float32, got dtype torch.float64"),
    ("residual-list", lambda: _affine_args(residual=[0.0]), TypeError, r"residual must be a tensor or None, got list"),
    ("residual-device", lambda: _affine_args(residual=torch.zeros(2, 6, 8, 8, device="meta")), ValueError,
     r"residual is on meta but input is on cpu"),
    ("relu-int", lambda: _affine_args(relu=1), TypeError, r"relu must be a bool, got int"),
]


@pytest.mark.parametrize("impl", [adder_conv2d_u8_affine, adder_conv2d_u8_affine_reference], ids=["op", "reference"])
@pytest.mark.parametrize("case", AFFINE_BAD, ids=[c[0] for c in AFFINE_BAD])
def test_affine_bad_input_is_named(impl, case):
    _, build, exc, pattern = case
    with pytest.raises(exc, match=r"^adder_conv2d_u8_affine: .*" + pattern):
        impl(**build())


@pytest.mark.parametrize("case", [
    ("scale", lambda a: a.update(scale=-1.0), r"scale must be positive and finite, got -1"),
    ("out-scale", lambda a: a.update(out_scale=torch.ones(3)), r"out_scale and out_bias must be float32 \(6,\)"),
    ("input-uint8", lambda a: a.update(input=_u8(2, 4, 8, 8)), r"input must be float32, got Byte"),
    ("residual", lambda a: a.update(residual=torch.zeros(2, 6, 8, 7)),
     r"residual must be a float32 tensor of the output's shape \(2, 6, 8, 8\) on the input's device, got Float "
     r"\(2, 6, 8, 7\)"),
], ids=lambda c: c[0])
def test_affine_direct_call_checks(case):
    if not extension_available():
        pytest.skip("the direct-call checks are the compiled kernel's")
    a = _affine_args(stride=[1, 1], padding=[1, 1], dilation=[1, 1])
    case[1](a)
    with pytest.raises(RuntimeError, match=r"adder_conv2d_u8_affine: " + case[2]):
        AFFINE(*a.values())


@pytest.mark.parametrize("name", ["ragged-K45-batch3", "channels-last-groups-stride2", "edsr-like-K576", "huge-K-7x7",
                                  "rgb-stem-27taps"])
def test_both_cpu_tiles_are_exact(name, monkeypatch):
    """The CPU kernel's two register tiles, AVX-512's 4x4 (used where the CPU has AVX-512BW/VL)
    and AVX2's 3x4 (forced by ADDERSR_U8_KERNEL=avx2), give the reference's sums and the same
    fused epilogue, bit for bit. On a CPU without AVX-512 both calls run the AVX2 tile."""
    if not extension_available():
        pytest.skip("the tiles are the compiled kernel's")
    x, w, zp, stride, padding, dilation, groups = _case(name)
    ref = adder_conv2d_u8_reference(x, w, zp, stride, padding, dilation, groups)
    xf, _, scale, _, *_ = _float_case(name)
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(w.shape[0], generator=g), torch.randn(w.shape[0], generator=g)
    res = torch.randn(ref.shape, generator=g)
    outs = []
    for kernel in ("default", "avx2"):
        if kernel == "avx2":
            monkeypatch.setenv("ADDERSR_U8_KERNEL", "avx2")
        assert torch.equal(adder_conv2d_u8(x, w, zp, stride, padding, dilation, groups), ref), kernel
        outs.append(adder_conv2d_u8_affine(xf, w, scale, zp, a, b, stride, padding, dilation, groups,
                                           residual=res, relu=True))
    assert torch.equal(outs[0], outs[1])
