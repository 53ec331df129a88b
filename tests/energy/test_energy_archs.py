"""Counts of the real architectures against the published and derived figures (docs/energy.md)."""

import pytest

import addersr_plugin  # noqa: F401
from addersr_plugin.energy import comparison, count_network, energy_table
from addersr_plugin.energy.report import comparison_text

HD = (1280, 720)
FP32 = energy_table("fp32")


def _vdsr(arch, scale, **kw):
    # The published VDSR works on the Y channel: 1 input/output channel.
    return count_network(dict(type=arch, num_in_ch=1, num_out_ch=1, upscale=scale, **kw), scale, HD)


def _edsr(arch, scale, feats, blocks, res_scale, **kw):
    return count_network(dict(type=arch, num_in_ch=3, num_out_ch=3, num_feat=feats, num_block=blocks,
                              upscale=scale, res_scale=res_scale, **kw), scale, HD)


def test_cnn_vdsr_720p_is_the_published_612_6_g_multiply_adds():
    vdsr = _vdsr("VDSR", 2)
    macs = vdsr.total(("conv",)).macs
    assert macs == pytest.approx(612.6e9, rel=1e-3)
    assert macs == 921600 * (9 * 64 + 18 * 9 * 64 * 64 + 9 * 64)  # 20 layers of 3x3 at 1280x720
    assert vdsr.input_shape == (1, 1, 360, 640) and vdsr.output_shape == (1, 1, 720, 1280)
    assert vdsr.total(("resample",)).mul > 0  # its internal bicubic upsampling is counted too


def test_adder_vdsr_x2_ratio_matches_the_derivation():
    cnn, adder = _vdsr("VDSR", 2), _vdsr("AdderVDSR", 2)
    # docs/energy.md: AdderVDSR ~1.1 G mul + 1224 G add; ~2.55x less energy than VDSR by the paper's rule.
    rule = adder.paper_rule()
    assert rule.mul == pytest.approx(1.1e9, rel=0.05) and rule.add == pytest.approx(1224e9, rel=2e-3)
    comp = comparison(adder, cnn, FP32)
    assert comp["ratio_paper_rule"] == pytest.approx(2.55, rel=0.02)
    # Counting BN scalings, power activations and shortcuts too lowers the ratio, and the report says why.
    assert 2.0 < comp["ratio_all"] < comp["ratio_paper_rule"]
    assert set(comp["left_out_by_paper_rule"]) >= {"bn", "power", "elementwise"}
    text = comparison_text(adder, cnn, FP32)
    assert "the paper's rule leaves out:" in text and "power activation" in text and "batch norm" in text


@pytest.mark.parametrize("feats,blocks,res_scale,conv_up,adder_up", [
    (64, 16, 1.0, 2.17, 2.53),   # EDSR-baseline x2
    (256, 32, 0.1, 2.34, 2.55),  # paper-scale EDSR x2
])
def test_adder_edsr_x2_ratios_match_the_derivation(feats, blocks, res_scale, conv_up, adder_up):
    cnn = _edsr("EDSR", 2, feats, blocks, res_scale)
    for adder_upsampler, expected in ((False, conv_up), (True, adder_up)):
        adder = _edsr("AdderEDSR", 2, feats, blocks, res_scale, adder_upsampler=adder_upsampler)
        assert comparison(adder, cnn, FP32)["ratio_paper_rule"] == pytest.approx(expected, rel=0.02)
    # Same MAC count, CNN and adder: only the pricing differs.
    assert adder.paper_rule().macs == cnn.paper_rule().macs


def test_ablations_remove_their_cost():
    full = _vdsr("AdderVDSR", 4)
    no_power = _vdsr("AdderVDSR", 4, power_act=False)
    assert full.total(("power",)).trans == 18 * 64 * 1280 * 720 * 2  # log + exp per element of 18 units
    assert no_power.total(("power",)).trans == 0
    assert no_power.paper_rule() == full.paper_rule()
