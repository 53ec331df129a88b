"""``benchmarks/edsr_int8.py``: the int8 CNN baseline of the integer benchmarks. A tiny EDSR (8
features, 1 block) quantized on 4 textured crops: every convolution becomes a quantized one, the
mean shift stays float, and the int8 output is close to the float one (the old harness, which
quantized the whole traced forward with the mean shift inside on one crop, reached 27 dB on this
model; this construction 59 dB). PT2E runs only where torchao is installed."""

from __future__ import annotations


import pytest
import torch

from bench_helpers import load_benchmark as _load
from sr_helpers import textured_image

CONVS = {"conv_first", "body.0.conv1", "body.0.conv2", "conv_after_body", "upsample.0", "conv_last"}




@pytest.fixture(scope="module")
def tiny():
    """(edsr_int8 module, tiny float EDSR, calibration crops, a test image)."""
    from basicsr.archs.edsr_arch import EDSR

    from addersr_plugin.quant.images import image_tensor

    torch.manual_seed(0)
    edsr = EDSR(3, 3, num_feat=8, num_block=1, upscale=2).eval()
    calib = [image_tensor(textured_image(16, 16, i), None) for i in range(4)]
    return _load("edsr_int8"), edsr, calib, image_tensor(textured_image(24, 32, 9), None)


@pytest.fixture(scope="module")
def fx(tiny):
    import warnings

    mod, edsr, calib, _ = tiny
    with warnings.catch_warnings():  # torch.ao's deprecation notices
        warnings.simplefilter("ignore")
        return mod.edsr_int8_fx(edsr, calib)


def _psnr(a, b):
    return float(10 * torch.log10(1 / (a - b).pow(2).mean()))


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")  # torch.ao's deprecation notices
def test_fx_quantizes_every_convolution_and_keeps_the_mean_shift_float(tiny, fx):
    mod, edsr, calib, x = tiny
    q = fx
    kinds = mod.quantized_modules(q)
    assert {n.removeprefix("core.") for n in kinds} == CONVS
    assert kinds["core.body.0.conv1"] == "ConvReLU2d"  # conv + ReLU fused
    # the float shell: the input is shifted in float, then quantized as the core's first operation
    first = next(n for n in q.core.graph.nodes if n.op == "call_function")
    assert first.target is torch.quantize_per_tensor
    assert torch.equal(q.mean, edsr.mean.view(1, 3, 1, 1)) and q.img_range == 255.0
    with torch.no_grad():
        ref, out = edsr(x), q(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert _psnr(out, ref) > 55  # 59.4 dB measured; the old harness: 27 dB


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_float_layers_stay_float(tiny):
    mod, edsr, calib, x = tiny
    q = mod.edsr_int8_fx(edsr, calib, float_layers=("conv_first", "conv_last"))
    assert {n.removeprefix("core.") for n in mod.quantized_modules(q)} == CONVS - {"conv_first", "conv_last"}
    assert type(q.core.conv_first) is torch.nn.Conv2d and type(q.core.conv_last) is torch.nn.Conv2d


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_activation_report_names_every_conv_and_add(tiny, fx):
    mod, edsr, calib, x = tiny
    rep = mod.activation_report(edsr, fx, x)
    assert set(rep) == CONVS | {"upsample.1", "add0", "add1"}  # upsample.1: the pixel shuffle
    for row in rep.values():  # every point is an int8 tensor whose grid holds 0
        lo, hi = row["int8_range"]
        assert row["error_rms"] > 0 and row["float_rms"] > 0
        assert lo <= 0 <= hi and row["step"] == pytest.approx((hi - lo) / 255, rel=1e-5)


def test_pt2e_where_torchao_is_installed(tiny):
    mod, edsr, calib, x = tiny
    try:
        mod.pt2e_modules()
    except mod.Unavailable as exc:
        assert "pip install torchao" in str(exc)
        pytest.skip(str(exc))
    q = mod.edsr_int8_pt2e(edsr, calib, compile=False)
    with torch.no_grad():
        assert _psnr(q(x), edsr(x)) > 55  # 60.5 dB measured


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_matched_split_quantizes_only_the_body_like_adder_edsr_int8(tiny):
    import operator

    mod, edsr, calib, x = tiny
    q = mod.edsr_int8_fx(edsr, calib, float_layers=mod.MATCHED_FLOAT_LAYERS, float_adds=True)
    assert {n.removeprefix("core.") for n in mod.quantized_modules(q)} == {"body.0.conv1", "body.0.conv2",
                                                                            "conv_after_body"}
    graph = list(q.core.graph.nodes)
    first = next(n for n in graph if n.op in ("call_function", "call_module"))
    assert first.op == "call_module" and first.target == "conv_first"  # the image is not quantized
    adds = [n for n in graph if n.op == "call_function" and n.target in (operator.add, torch.add)]
    assert len(adds) == 2 and not any("quantized" in str(n.target) for n in graph if n.op == "call_function")
    quantizes = [n for n in graph if n.op == "call_function" and n.target is torch.quantize_per_tensor]
    assert len(quantizes) == 2  # into the block, into conv_after_body: each int8 run starts from float
    with torch.no_grad():
        ref, out, full = edsr(x), q(x), mod.edsr_int8_fx(edsr, calib)(x)
    assert _psnr(out, ref) > _psnr(full, ref) + 3  # fewer grids on the path: closer to fp32
