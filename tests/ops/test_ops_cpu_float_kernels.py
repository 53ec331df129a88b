"""The float32 CPU kernels' two paths: AVX-512 (used where the CPU has it) and AVX2 (forced by
``ADDERSR_FLOAT_KERNEL=avx2``), on the same inputs, against the float64 reference and against
each other: forward (AVX-512 computes it as Σx + Σw − 2·Σmin(x, w)), the input gradient
(hardtanh and sign) and the sign weight gradient (the full one is a convolution gradient on both
paths). Shapes cross the AVX-512 tiles' edges: 27 taps, K not a multiple of 4, output channels
not a multiple of 8 or 16, ragged pixel chunks (192 pixels), batch 3, stride, dilation, groups,
1×1 and 5×5, channels_last and strided inputs, and both forward paths (packed columns, and the
padded image read directly where output rows of 36..48 pixels fill the 48-pixel tile)."""

from __future__ import annotations

import pytest
import torch

from addersr_plugin.ops import adder_conv2d_reference, extension_available
from addersr_plugin.ops._extension import FLOAT_KERNEL_ENV, cpu_float_kernel, cpu_has_avx512
from addersr_plugin.ops.reference import reference_grad_input, reference_grad_weight

pytestmark = [
    pytest.mark.skipif(not extension_available(), reason="the compiled extension is not built"),
    pytest.mark.skipif(not cpu_has_avx512(), reason="this CPU lacks AVX-512 F/DQ/VL/BW: only the AVX2 path exists"),
]
ops = torch.ops.addersr
KERNELS = ("avx512", "avx2")

# name: (batch, Cin, Cout, (H, W), kernel, stride, padding, dilation, groups, bias, layout)
CASES = {
    "rgb-stem-27taps-batch3": (3, 3, 10, (9, 11), 3, 1, 1, 1, 1, True, "contiguous"),
    "k576-ragged-chunks": (2, 64, 13, (17, 15), 3, 1, 1, 1, 1, False, "contiguous"),
    "stride2-5x5-channels-last": (1, 6, 37, (23, 21), 5, 2, 2, 1, 1, True, "channels_last"),
    "groups3-dilated-strided": (3, 9, 12, (14, 13), 3, 1, 2, 2, 3, False, "strided"),
    "1x1-batch3": (3, 17, 20, (7, 30), 1, 1, 0, 1, 1, True, "contiguous"),
    "depthwise-k9": (2, 5, 5, (12, 12), 3, (1, 2), 1, 1, 5, False, "channels_last"),
    # rows of 36..48 output pixels: the AVX-512 forward reads a padded image instead of columns
    "direct-k576-rows48": (1, 64, 16, (7, 48), 3, 1, 1, 1, 1, True, "contiguous"),
    "direct-stride-h2-dilated-w": (3, 5, 11, (13, 45), 3, (2, 1), 1, (1, 2), 1, False, "channels_last"),
    "direct-groups-5x5": (2, 6, 9, (6, 40), 5, 1, 2, 1, 3, True, "strided"),
}


def _layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":  # every other column of a wider buffer: not dense in any format
        wide = t.new_zeros(*t.shape[:3], 2 * t.shape[3])
        wide[..., ::2] = t
        return wide[..., ::2]
    return t.contiguous()


def _inputs(name, seed=0, x_std=1.0):
    n, cin, cout, (h, w), k, stride, padding, dilation, groups, bias, layout = CASES[name]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=g) * x_std
    wt = torch.randn(cout, cin // groups, k, k, generator=g)
    b = torch.randn(cout, generator=g) if bias else None
    geom = [list(v) if isinstance(v, tuple) else [v, v] for v in (stride, padding, dilation)] + [groups]
    return _layout(x, layout), wt, b, geom


def _grad_output(x, w, geom, seed=1):
    y_shape = adder_conv2d_reference(x.double(), w.double(), None, *geom).shape
    return torch.randn(y_shape, generator=torch.Generator().manual_seed(seed))


def _assert_close(actual, expected, what):
    """test_ops.py's float32 tolerance: sums of hundreds of terms, relative to the largest value."""
    assert actual.dtype == torch.float32 and actual.shape == expected.shape, what
    atol = 1e-4 * (1.0 + expected.abs().max().item())
    torch.testing.assert_close(actual.double(), expected.double(), rtol=1e-4, atol=atol, msg=lambda m: f"{what}: {m}")


def _run(kernel, monkeypatch, fn):
    monkeypatch.setenv(FLOAT_KERNEL_ENV, kernel)
    assert cpu_float_kernel() == kernel
    return fn()


@pytest.mark.parametrize("name", list(CASES))
def test_forward_both_paths_match_reference_and_each_other(name, monkeypatch):
    x, w, b, geom = _inputs(name)
    expected = adder_conv2d_reference(x.double(), w.double(), None if b is None else b.double(), *geom)
    outs = {k: _run(k, monkeypatch, lambda: ops.adder_conv2d(x, w, b, *geom, "full", "hardtanh")) for k in KERNELS}
    for k, y in outs.items():
        _assert_close(y, expected, f"forward ({k})")
        assert y.is_contiguous()
    _assert_close(outs["avx512"], outs["avx2"], "forward avx512 vs avx2")


@pytest.mark.parametrize("mode", ["hardtanh", "sign"])
@pytest.mark.parametrize("name", list(CASES))
def test_grad_input_both_paths_match_reference_and_each_other(name, mode, monkeypatch):
    x, w, _, geom = _inputs(name)
    gy = _grad_output(x, w, geom)
    expected = reference_grad_input(gy.double(), x.double(), w.double(), *geom, mode)
    outs = {k: _run(k, monkeypatch, lambda: ops.adder_conv2d_grad_input(gy, x, w, *geom, mode)) for k in KERNELS}
    for k, gx in outs.items():
        _assert_close(gx, expected, f"grad input {mode} ({k})")
    _assert_close(outs["avx512"], outs["avx2"], f"grad input {mode} avx512 vs avx2")


@pytest.mark.parametrize("mode", ["sign", "full"])
@pytest.mark.parametrize("name", list(CASES))
def test_grad_weight_both_paths_match_reference_and_each_other(name, mode, monkeypatch):
    x, w, _, geom = _inputs(name)
    gy = _grad_output(x, w, geom)
    expected = reference_grad_weight(gy.double(), x.double(), w.double(), *geom, mode)
    outs = {k: _run(k, monkeypatch, lambda: ops.adder_conv2d_grad_weight(gy, x, w, *geom, mode)) for k in KERNELS}
    for k, gw in outs.items():
        _assert_close(gw, expected, f"grad weight {mode} ({k})")
    _assert_close(outs["avx512"], outs["avx2"], f"grad weight {mode} avx512 vs avx2")


def test_sign_gradients_at_ties_and_nan(monkeypatch):
    """Exact ties give sign 0 and hardtanh 0, and a NaN input gives sign 0 (the reference's
    sign, built from comparisons, and the AVX2 kernels'; vfixupimmps' table must agree).
    1×1 kernel, no padding: every tap is a real input value."""
    x = torch.tensor([[[[0.5, 2.0, -1.0, float("nan")]]]])
    w = torch.tensor([[[[0.5]]]])
    gy = torch.ones(1, 1, 1, 4)
    geom = ([1, 1], [0, 0], [1, 1], 1)
    for k in KERNELS:
        gx = _run(k, monkeypatch, lambda: ops.adder_conv2d_grad_input(gy, x, w, *geom, "sign"))
        assert gx.flatten().tolist() == [0.0, -1.0, 1.0, 0.0], k
        gx = _run(k, monkeypatch, lambda: ops.adder_conv2d_grad_input(gy, x, w, *geom, "hardtanh"))
        assert gx.flatten()[:3].tolist() == [0.0, -1.0, 1.0], k
        gw = _run(k, monkeypatch, lambda: ops.adder_conv2d_grad_weight(gy, x, w, *geom, "sign"))
        assert gw.item() == 0.0, k  # 0 (tie) + 1 + (−1) + 0 (NaN)
    expected = reference_grad_input(gy.double(), x.double(), w.double(), *geom, "sign")
    assert expected.flatten().tolist() == [0.0, -1.0, 1.0, 0.0]


def test_min_identity_error_on_realistic_magnitudes(monkeypatch):
    """The AVX-512 forward sums Σx + Σw − 2·Σmin(x, w), whose terms are larger than the result;
    on an EDSR-like layer (576 taps, features ~N(0, 5), weights ~N(0, 1)) its error against the
    float64 reference must stay within a small multiple of the direct AVX2 sum's."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 64, 20, 20, generator=g) * 5
    w = torch.randn(16, 64, 3, 3, generator=g)
    geom = ([1, 1], [1, 1], [1, 1], 1)
    expected = adder_conv2d_reference(x.double(), w.double(), None, *geom)
    err = {k: (_run(k, monkeypatch, lambda: ops.adder_conv2d(x, w, None, *geom, "full", "hardtanh")).double()
               - expected).abs().max().item() for k in KERNELS}
    scale = expected.abs().max().item()
    assert err["avx512"] <= 1e-5 * scale, (err, scale)
    assert err["avx512"] <= 8 * err["avx2"] + 1e-7 * scale, err


def test_float64_is_unaffected_by_the_switch(monkeypatch):
    """float64 always runs the AVX2 (at::vec) kernels: the variable changes nothing there."""
    x, w, b, geom = _inputs("k576-ragged-chunks")
    x, w = x.double(), w.double()
    outs = [_run(k, monkeypatch, lambda: ops.adder_conv2d(x, w, None, *geom, "full", "hardtanh")) for k in KERNELS]
    assert torch.equal(outs[0], outs[1])
