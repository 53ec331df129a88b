"""Calibration on awkward data (docs/int8.md): non-finite activations are a named error that says
which layer saw them, a layer that saw only zeros gets a usable grid, an already quantized network
is recognised, and the per-layer clamped fraction of the report is what the quantizer does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from addersr_plugin.nn import AdderConv2d
from addersr_plugin.quant import CalibrationError, collect, grid_for_range, quantize, quantize_model
from test_quant import _photo_pairs, trained  # noqa: F401  (the module's trained AdderEDSR fixture)


# --------------------------------------------------------------------------- non-finite activations

@pytest.mark.parametrize("bad, count", [(float("nan"), "1 NaN and 0 infinite"), (float("inf"), "0 NaN and 1 infinite")],
                         ids=["nan", "inf"])
def test_non_finite_activations_name_the_layer_and_the_batch(trained, bad, count):  # noqa: F811
    """A calibration batch holding one NaN (or inf) pixel: the error names the first adder layer
    it reaches and the batch, instead of failing inside torch.quantile or int()."""
    calib = list(_photo_pairs(3, 32, seed=7)[0].split(1))
    calib[1] = calib[1].clone()
    calib[1][0, 1, 5, 6] = bad
    pattern = (r"adder layer 'body.0.unit1.adder' saw non-finite input values on calibration batch 2 \(\d+ NaN "
               rf"and \d+ infinite of \d+ values; the batch itself holds {count} of 768 values\)")
    with pytest.raises(CalibrationError, match=pattern):
        quantize_model(trained, calib, "auto")


def test_a_layer_deep_in_the_network_is_named():
    """Finite input, but a layer in the middle produces an infinity: the adder layer after it is
    named, not the first one."""
    class Overflow(nn.Module):  # a float layer gone wrong: every (non-zero) feature becomes ±inf
        def forward(self, x):
            return x * float("inf")

    net = nn.Sequential(AdderConv2d(3, 4, 3, padding=1, eta=None), Overflow(),
                        AdderConv2d(4, 4, 3, padding=1, eta=None)).eval()
    with pytest.raises(CalibrationError, match=r"adder layer '2' saw non-finite input values on calibration batch "
                                               r"1 \(0 NaN and 256 infinite of 256 values; the batch itself holds "
                                               r"0 NaN and 0 infinite of 192 values\)"):
        collect(net, [torch.rand(1, 3, 8, 8)])


# --------------------------------------------------------------------------- a range of zero width

def test_an_all_zero_range_gets_the_fallback_grid():
    grid = grid_for_range(0.0, 0.0)
    assert (grid.scale, grid.zero_point) == (1 / 255, 0)  # [0, 1] when nothing else is known
    grid = grid_for_range(0.0, 0.0, fallback=(-0.4, 1.2))
    assert grid.lo <= -0.4 and grid.hi >= 1.2 and grid.scale == pytest.approx(1.6 / 255, rel=0.01)
    # a step below the smallest normal float32 (the kernel divides by it in float32) is no range
    assert grid_for_range(0.0, 1e-40, fallback=(-1.0, 1.0)).scale == pytest.approx(2 / 255, rel=0.01)
    assert grid_for_range(0.0, 0.0, fallback=(0.0, 0.0)).scale == 1 / 255
    with pytest.raises(ValueError, match=r"grid_for_range: the range must be finite, got \[nan, 1.0\]"):
        grid_for_range(float("nan"), 1.0)


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
def test_a_layer_that_saw_only_zeros_gets_its_weights_grid(method):
    """Constant-zero activations (an adder layer after a ReLU of negative values): every method
    gives the grid of the layer's weight range (not a scale of ~4e-11 that clamps everything),
    so the weights are on the grid unclamped and a later non-zero input is quantized sensibly."""
    torch.manual_seed(0)
    layer = AdderConv2d(3, 4, 3, padding=1, eta=None)
    net = nn.Sequential(nn.ReLU(), layer).eval()
    q, report = quantize_model(net, [-torch.rand(1, 3, 8, 8)], method)  # ReLU -> all zeros
    grid = q[1].input_grid
    w = layer.weight.detach()
    assert grid.lo <= float(w.min()) and grid.hi >= float(w.max())
    assert grid.scale == pytest.approx((max(float(w.max()), 0) - min(float(w.min()), 0)) / 255, rel=0.01)
    assert torch.equal(q[1].qweight, quantize(w, grid))  # no weight clamped
    x = torch.rand(1, 3, 8, 8) * float(w.max())  # inputs within the weights' range
    with torch.no_grad():
        ref, out = net(x), q(x)
    # 27 taps, each off by at most half a step
    assert (out - ref).abs().max() <= 27 * grid.scale / 2 + 1e-4
    assert report["clamped"] == {"1": 0.0}


# --------------------------------------------------------------------------- already quantized

def test_an_already_quantized_network_is_recognised(trained):  # noqa: F811
    calib = list(_photo_pairs(1, 32, seed=8)[0].split(1))
    qnet, _ = quantize_model(trained, calib, "minmax")
    with pytest.raises(CalibrationError, match=r"the network is already quantized: it has integer adder layers "
                                               r"\(QuantAdderConv2d\) and no AdderConv2d layers to quantize"):
        quantize_model(qnet, calib)


# --------------------------------------------------------------------------- the clamped fraction

@pytest.mark.parametrize("method, percentile", [("percentile", 90.0), ("minmax", 99.99)])
def test_clamped_fraction_is_what_the_quantizer_clamps(method, percentile):
    """One adder layer fed the calibration input directly: the report's fraction equals a float64
    count of the values whose round(x / s) + z falls outside [0, 255]."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(AdderConv2d(3, 4, 3, padding=1, eta=None)).eval()
    calib = [torch.randn(1, 3, 16, 16, generator=g) * 3 + 1 for _ in range(3)]
    q, report = quantize_model(net, calib, method, percentile)
    grid = q[0].input_grid
    x = torch.cat([c.flatten() for c in calib]).double()
    levels = torch.round(x / grid.scale) + grid.zero_point
    want = float(((levels < 0) | (levels > 255)).double().mean())
    assert report["clamped"]["0"] == pytest.approx(want, abs=1 / x.numel())
    if method == "minmax":
        assert want == 0.0
    else:  # the 10 % and 90 % percentiles: about a fifth of the values beyond them
        assert 0.17 < want < 0.23
