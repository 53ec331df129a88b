"""Non-finite input of the fused integer op ``adder_conv2d_u8_affine`` (docs/int8.md): NaN reaches
exactly the outputs whose window reads it, as in the float layer, on both CPU tiles (AVX-512's and
AVX2's), through the quantizer's vector body and its scalar tail, in both layouts, and in the
reference; ±inf clamps to the grid's ends like any value beyond it. Also the quantizer's rounding.

The oracle is independent of both implementations: which outputs must be NaN comes from the
float64 float adder layer (``adder_conv2d_reference``) on the same input, and every other output
must equal the op's own output on the input with the NaNs replaced by a finite value (those
outputs never read a NaN)."""

from __future__ import annotations

import pytest
import torch

from addersr_plugin.ops import (adder_conv2d_reference, adder_conv2d_u8_affine, adder_conv2d_u8_affine_reference,
                                extension_available)
from addersr_plugin.ops.quantize import quantize_u8

SCALE, ZP = 0.0625, 40
NAN, INF = float("nan"), float("inf")

IMPLS = ["kernel-default-tile", "kernel-avx2-tile", "reference"]


@pytest.fixture(params=IMPLS)
def impl(request, monkeypatch):
    """The fused op on the CPU kernel's default tile (AVX-512's 4x4 where the CPU has it), on
    AVX2's 3x4 tile (ADDERSR_U8_KERNEL=avx2), and the pure-PyTorch reference."""
    if request.param == "reference":
        return adder_conv2d_u8_affine_reference
    if not extension_available():
        pytest.skip("the tiles are the compiled kernel's; without it the op is the reference, tested as such")
    if request.param == "kernel-avx2-tile":
        monkeypatch.setenv("ADDERSR_U8_KERNEL", "avx2")
    return adder_conv2d_u8_affine


def _layer(cin, cout, k, groups, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(0, 256, (cout, cin // groups, k, k), generator=g, dtype=torch.uint8)
    x = (torch.randint(0, 256, (2, cin, 7, 11), generator=g).float() - ZP) * SCALE
    return x, w


def _float_nan_mask(x, w, stride, padding, dilation, groups):
    """Which outputs the float64 float adder layer makes NaN for this input (the oracle)."""
    wf = (w.double() - ZP) * SCALE
    return torch.isnan(adder_conv2d_reference(x.double(), wf, None, stride, padding, dilation, groups))


# (where the NaNs go, layout, geometry). An NCHW row of W = 11 floats is quantized as one vector
# of 8 and a scalar tail of 3; a channels_last row of W·C = 33 as four vectors and a tail of 1.
CASES = {
    "vector-body-nchw": ([(0, 1, 2, 3)], "nchw", dict(stride=1, padding=1, dilation=1, groups=1)),
    "scalar-tail-nchw": ([(1, 2, 4, 9)], "nchw", dict(stride=1, padding=1, dilation=1, groups=1)),
    "vector-body-channels-last": ([(0, 0, 3, 2)], "channels_last", dict(stride=1, padding=1, dilation=1, groups=1)),
    "scalar-tail-channels-last": ([(1, 2, 6, 10)], "channels_last", dict(stride=1, padding=1, dilation=1,
                                                                        groups=1)),
    "border-stride2-dilation2": ([(0, 0, 0, 0), (1, 1, 6, 10)], "nchw", dict(stride=2, padding=2, dilation=2,
                                                                             groups=1)),
    "groups3-one-group-only": ([(0, 4, 3, 5)], "channels_last", dict(stride=1, padding=1, dilation=1, groups=3)),
}


@pytest.mark.parametrize("relu", [False, True], ids=["affine", "residual-relu"])
@pytest.mark.parametrize("name", list(CASES))
def test_nan_reaches_exactly_the_outputs_that_read_it(impl, name, relu):
    where, layout, geom = CASES[name]
    cin = 6 if geom["groups"] == 3 else 3
    x, w = _layer(cin, 6, 3, geom["groups"], seed=len(name))
    for pos in where:
        x[pos] = NAN
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    cout = w.shape[0]
    a, b = torch.ones(cout), torch.zeros(cout)  # the exact integer sums: bit-for-bit comparisons
    expected_nan = _float_nan_mask(x, w, **geom)
    assert expected_nan.any() and not expected_nan.all()  # the case tests both kinds of output
    if geom["groups"] == 3:  # a NaN of group 2's channels leaves groups 0 and 1 finite everywhere
        assert not expected_nan[:, :4].any() and expected_nan[:, 4:].any()
    res = -torch.rand(expected_nan.shape) * 1e4 if relu else None  # the ReLU would turn the sums to 0
    kw = dict(residual=res, relu=relu)
    y = impl(x, w, SCALE, ZP, a, b, **geom, **kw)
    assert torch.equal(torch.isnan(y), expected_nan)
    finite = impl(torch.nan_to_num(x, nan=0.5), w, SCALE, ZP, a, b, **geom, **kw)
    assert not torch.isnan(finite).any()
    assert torch.equal(y[~expected_nan], finite[~expected_nan])


def test_reference_and_kernel_agree_on_nan_input():
    if not extension_available():
        pytest.skip("without the compiled kernel the op is the reference")
    x, w = _layer(3, 6, 3, 1, seed=3)
    x[0, 0, 1, 1] = x[1, 2, 6, 9] = NAN
    args = (w, SCALE, ZP, torch.rand(6), torch.rand(6), 1, 1, 1, 1)
    y, ref = adder_conv2d_u8_affine(x, *args), adder_conv2d_u8_affine_reference(x, *args)
    assert torch.isnan(y).any()
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-5, equal_nan=True)


def test_an_all_nan_image_gives_an_all_nan_output(impl):
    x, w = _layer(3, 4, 3, 1)
    x[1] = NAN
    y = impl(x, w, SCALE, ZP, torch.ones(4), torch.zeros(4), padding=1, relu=True)
    assert torch.isnan(y[1]).all() and not torch.isnan(y[0]).any()


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_infinities_clamp_to_the_grid_ends(impl, layout):
    """+inf quantizes to 255 and −inf to 0, exactly as a finite value beyond the grid does."""
    x, w = _layer(3, 6, 3, 1, seed=9)
    x[0, 0, 2, 3], x[1, 2, 4, 9], x[0, 1, 6, 10] = INF, -INF, INF  # vector body and scalar tails
    big = torch.where(torch.isinf(x), x.sign() * 1e30, x)
    if layout == "channels_last":
        x, big = (t.contiguous(memory_format=torch.channels_last) for t in (x, big))
    args = (w, SCALE, ZP, torch.ones(6), torch.zeros(6), 1, 1, 1, 1)
    y = impl(x, *args)
    assert torch.isfinite(y).all()
    assert torch.equal(y, impl(big, *args))
    # and those are the sums of the inputs clamped to the grid's ends (255 and 0)
    lo, hi = -ZP * SCALE, (255 - ZP) * SCALE
    assert torch.equal(y, impl(x.clamp(lo, hi), *args))


def test_quantize_u8_rounds_half_to_even_and_clamps():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0]) * 0.25
    assert quantize_u8(x, 0.25, 10).tolist() == [10, 12, 12, 10, 8, 255, 0]


def test_quantize_u8_maps_nan_to_the_zero_point_and_clamps_infinities():
    x = torch.tensor([NAN, INF, -INF, 1.0, -NAN])
    assert quantize_u8(x, 0.25, 17).tolist() == [17, 255, 0, 21, 17]
    assert quantize_u8(x.double(), 0.25, 17).tolist() == [17, 255, 0, 21, 17]
