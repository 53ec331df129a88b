"""The operation counter on small hand-checkable models (meta device, no real compute)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import addersr_plugin  # noqa: F401  (registers the addersr::adder_conv2d op)
from addersr_plugin.energy import (EnergyError, OpCount, UnknownBNModeError, UnknownConventionError,
                                   UnknownPrecisionError, count_operations, energy_table, total)
from addersr_plugin.energy.table import PRECISIONS, table_markdown
from addersr_plugin.nn import AdderConv2d, PowerActivation, ShortcutAdderBlock
from addersr_plugin.ops import adder_conv2d


def _meta(module):
    return module.to("meta")


def _x(*shape):
    return torch.empty(*shape, device="meta")


def _count(model, x, **kw):
    records, _ = count_operations(_meta(model), x, **kw)
    return records


def _by_cat(records, cat):
    return total([r for r in records if r.category == cat])


class _Functional(nn.Module):
    """Wraps a function so it runs inside a module like a forward would."""

    def __init__(self, fn, *children):
        super().__init__()
        self.fn = fn
        self.children_ = nn.ModuleList(children)

    def forward(self, x):
        return self.fn(self, x)


def test_single_conv_paper_and_exact():
    # 1x3x10x10 -> 8x10x10, 3x3: each of 800 outputs is a 27-term dot product.
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=True)
    paper = _by_cat(_count(conv, _x(1, 3, 10, 10)), "conv")
    assert paper == OpCount(mul=21600, add=21600, macs=21600)
    exact = _by_cat(_count(conv, _x(1, 3, 10, 10), convention="exact"), "conv")
    assert exact == OpCount(mul=21600, add=800 * 26 + 800, macs=21600)  # K-1 adds + bias
    no_bias = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert _by_cat(_count(no_bias, _x(1, 3, 10, 10), convention="exact"), "conv").add == 800 * 26


def test_single_adder_layer():
    # 1x4x5x5 -> 6x5x5 (150 outputs), 36 taps: 5400 adder MACs.
    layer = AdderConv2d(4, 6, 3, padding=1)
    records = _count(layer, _x(1, 4, 5, 5))
    assert [r.op for r in records] == ["addersr.adder_conv2d"]
    assert records[0].module_type == "AdderConv2d"
    assert _by_cat(records, "adder") == OpCount(add=2 * 5400, macs=5400)  # subtract + accumulate
    exact = _by_cat(_count(layer, _x(1, 4, 5, 5), convention="exact"), "adder")
    assert exact == OpCount(add=5400 + 150 * 35, macs=5400)


def test_grouped_strided_dilated_layers():
    # 8->16 channels, groups 4 (2 input channels per group), stride 2, 9x9 -> 5x5.
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=False)
    assert _by_cat(_count(conv, _x(2, 8, 9, 9)), "conv").macs == 2 * 16 * 25 * 2 * 9
    # dilation 2, no padding, 11x11 -> 7x7
    dil = nn.Conv2d(4, 5, 3, dilation=2, bias=False)
    assert _by_cat(_count(dil, _x(1, 4, 11, 11)), "conv").macs == 5 * 49 * 4 * 9
    adder = _Functional(lambda m, x: adder_conv2d(x, m.w, stride=(2, 1), padding=1, groups=2))
    adder.w = nn.Parameter(torch.empty(6, 2, 3, 3))
    # 4->6 channels, groups 2; 8x7 -> 4x7 outputs; 18 taps each
    c = _by_cat(_count(adder, _x(1, 4, 8, 7)), "adder")
    assert c == OpCount(add=2 * 6 * 4 * 7 * 18, macs=6 * 4 * 7 * 18)
    linear = nn.Linear(10, 3)
    assert _by_cat(_count(linear, _x(4, 10)), "conv").macs == 4 * 10 * 3
    tconv = nn.ConvTranspose2d(4, 2, 2, stride=2, bias=False)  # every input meets 2*4 weights
    assert _by_cat(_count(tconv, _x(1, 4, 3, 3)), "conv").macs == 36 * 8


def test_bn_folded_and_unfolded():
    n = 8 * 10 * 10
    after_conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
    assert _by_cat(_count(after_conv, _x(1, 3, 10, 10)), "bn") == OpCount()  # into weights and bias
    exact = _by_cat(_count(after_conv, _x(1, 3, 10, 10), convention="exact"), "bn")
    assert exact == OpCount(add=n)  # the conv gains a bias
    after_adder = nn.Sequential(AdderConv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8))
    assert _by_cat(_count(after_adder, _x(1, 3, 10, 10)), "bn") == OpCount(mul=n, add=n)
    # an in-place ReLU in between makes the BN input no longer a bare conv output
    after_relu = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(8))
    assert _by_cat(_count(after_relu, _x(1, 3, 10, 10)), "bn") == OpCount(mul=n, add=n)
    unfolded = _by_cat(_count(after_conv, _x(1, 3, 10, 10), bn="unfolded"), "bn")
    assert unfolded == OpCount(mul=2 * n, add=2 * n, trans=8)  # rsqrt per channel


@pytest.mark.parametrize("num_channels", [None, 6])
def test_power_activation(num_channels):
    n = 2 * 6 * 4 * 5
    records = _count(PowerActivation(0.7, num_channels), _x(2, 6, 4, 5))
    assert len(records) == 1 and records[0].category == "power"  # priced as a whole, not by its aten ops
    assert records[0].count == OpCount(mul=n, cmp=n, trans=2 * n)


def test_shortcut_block_and_functional_ops():
    n = 8 * 6 * 6
    records = _count(ShortcutAdderBlock(8), _x(1, 8, 6, 6))
    cats = {r.category: r for r in records}
    assert cats["elementwise"].module == "" and cats["elementwise"].count == OpCount(add=n)  # self-shortcut
    assert cats["activation"].count == OpCount(cmp=n)
    assert _by_cat(records, "adder").macs == n * 72
    # bicubic x2 of 1x3x5x7: horizontal pass 3*5*14 + vertical pass 3*10*14 elements, 4 taps each
    up = _Functional(lambda m, x: F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False))
    e = 3 * 5 * 14 + 3 * 10 * 14
    assert _by_cat(_count(up, _x(1, 3, 5, 7)), "resample") == OpCount(mul=4 * e, add=3 * e)
    shuffle = nn.PixelShuffle(2)
    assert _count(shuffle, _x(1, 12, 3, 3)) == []  # data movement only
    res = _Functional(lambda m, x: (x - 0.5) * 255.0 + x * 0.1)
    assert _by_cat(_count(res, _x(1, 3, 4, 4)), "elementwise") == OpCount(mul=96, add=96)


def test_counts_scale_linearly_with_pixels():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), ShortcutAdderBlock(8), nn.Conv2d(8, 12, 3, padding=1),
                          nn.PixelShuffle(2))
    small = total(_count(model, _x(1, 3, 8, 8)))
    large = total(_count(model, _x(1, 3, 16, 24)))
    assert small.macs > 0 and small.trans > 0
    assert large.as_tuple() == tuple(6 * v for v in small.as_tuple())


def test_unknown_ops_are_listed_not_dropped():
    model = _Functional(lambda m, x: torch.special.erf(x))
    records = _count(model, _x(1, 2, 3, 3))
    assert [(r.category, r.op, r.count.elements) for r in records] == [("unpriced", "aten.erf", 18)]


def test_training_mode_restored_and_no_real_compute():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).to("meta").train()
    count_operations(model, _x(1, 3, 5, 5))
    assert model.training  # counting runs in eval mode and restores the mode
    big = nn.Conv2d(256, 256, 3, padding=1).to("meta")  # 1280x720 at 256 ch: fine on meta
    records, shape = count_operations(big, _x(1, 256, 720, 1280))
    assert shape == (1, 256, 720, 1280) and records[0].count.macs == 720 * 1280 * 256 * 256 * 9


def test_energy_table_cited_values():
    cited = {"fp32": (0.9, 3.7), "fp16": (0.4, 1.1), "int32": (0.1, 3.1), "int8": (0.03, 0.2)}
    assert set(PRECISIONS) == set(cited)
    for name, (add, mul) in cited.items():
        t = energy_table(name)
        assert (t.add_pj, t.mul_pj, t.cmp_pj) == (add, mul, add)
        assert t.trans_pj == pytest.approx(8 * mul + 8 * add)
    assert OpCount(mul=2, add=3, cmp=1, trans=1).energy_pj(energy_table("fp32")) == pytest.approx(
        2 * 3.7 + 3 * 0.9 + 0.9 + 36.8)
    md = table_markdown()
    assert "Horowitz" in md and "(estimate)" in md and "(cited)" in md


def test_bad_modes_are_named_errors():
    with pytest.raises(UnknownPrecisionError, match=r"unknown precision 'fp64'; expected one of fp32, fp16"):
        energy_table("fp64")
    with pytest.raises(UnknownConventionError, match="unknown counting convention 'flops'"):
        count_operations(nn.Identity(), _x(1, 1, 1, 1), convention="flops")
    with pytest.raises(UnknownBNModeError, match="unknown BN mode 'fused'"):
        count_operations(nn.Identity(), _x(1, 1, 1, 1), bn="fused")
    assert issubclass(UnknownPrecisionError, EnergyError)


# ------------------------------------------------------------------ review fixes


def test_bn_called_with_a_keyword_input():
    """``bn(input=y)`` used to raise IndexError in the pricing hook (it read args[0])."""
    model = _Functional(lambda m, x: m.children_[1](input=m.children_[0](x)),
                        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
    records = _count(model, _x(1, 3, 10, 10), convention="exact")
    assert _by_cat(records, "bn") == OpCount(add=8 * 10 * 10)  # folded into the conv, which gains a bias


def test_conv_flatten_batchnorm1d_folds_when_channels_survive():
    # Conv to a 1x1 map, Flatten, BatchNorm1d: BN channel c is conv channel c, so BN folds.
    head = nn.Sequential(nn.Conv2d(3, 8, 4, bias=False), nn.Flatten(), nn.BatchNorm1d(8))
    assert _by_cat(_count(head, _x(2, 3, 4, 4)), "bn") == OpCount()
    assert _by_cat(_count(head, _x(2, 3, 4, 4), convention="exact"), "bn") == OpCount(add=16)
    # A 3x3 map flattened to 72 features: BN's per-feature scale differs across positions of one
    # conv channel, so it cannot enter the shared weights: a multiply + add per element remains.
    wide = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.Flatten(), nn.BatchNorm1d(72))
    assert _by_cat(_count(wide, _x(2, 3, 5, 5)), "bn") == OpCount(mul=144, add=144)
    # Linear -> BatchNorm1d folds too.
    fc = nn.Sequential(nn.Linear(10, 6), nn.BatchNorm1d(6))
    assert _by_cat(_count(fc, _x(4, 10)), "bn") == OpCount()


@pytest.mark.parametrize("convention", ["paper", "exact"])
def test_linear_prices_its_bias_the_same_for_any_input_rank(convention):
    linear = nn.Linear(4, 5)
    flat = _count(linear, _x(6, 4), convention=convention)
    contiguous = _count(linear, _x(3, 2, 4), convention=convention)
    strided = _count(linear, _x(2, 3, 4).transpose(0, 1), convention=convention)  # runs as mm + add
    expected = OpCount(mul=120, add=120 if convention == "paper" else 30 * 3 + 30, macs=120)
    for records in (flat, contiguous, strided):
        assert total(records) == expected
        assert [r.category for r in records] == ["conv"]


def test_bilinear_upsampling():
    # bilinear x2 of 1x3x5x7: horizontal pass 3*5*14 + vertical pass 3*10*14 elements, 2 taps each
    up = _Functional(lambda m, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
    e = 3 * 5 * 14 + 3 * 10 * 14
    assert _by_cat(_count(up, _x(1, 3, 5, 7)), "resample") == OpCount(mul=2 * e, add=e)
    assert total(_count(nn.Upsample(scale_factor=2, mode="bilinear"), _x(1, 3, 5, 7))) == OpCount(mul=2 * e, add=e)


def _norm_ops(groups: int, m: int, affine: bool) -> OpCount:
    """Per group of m elements: mean (m-1 adds, 1 mul), centre (m subs), variance (m squares,
    m-1 adds, 1 mul), + eps (1 add), rsqrt (1), scale (m muls), affine (m muls, m adds)."""
    add = (m - 1) + m + (m - 1) + 1 + (m if affine else 0)
    mul = 1 + m + 1 + m + (m if affine else 0)
    return OpCount(mul=groups * mul, add=groups * add, trans=groups)


def test_group_norm_and_layer_norm():
    # GroupNorm(2 groups, 4 channels) on 2x4x3x3: 2 samples x 2 groups of 2*9 = 18 elements.
    assert _by_cat(_count(nn.GroupNorm(2, 4), _x(2, 4, 3, 3)), "norm") == _norm_ops(4, 18, True)
    assert _by_cat(_count(nn.GroupNorm(2, 4, affine=False), _x(2, 4, 3, 3)), "norm") == _norm_ops(4, 18, False)
    # LayerNorm over the last dim (3) of 2x4x3: 8 rows; over the last two (4, 3): 2 rows of 12.
    assert _by_cat(_count(nn.LayerNorm(3), _x(2, 4, 3)), "norm") == _norm_ops(8, 3, True)
    assert _by_cat(_count(nn.LayerNorm((4, 3)), _x(2, 4, 3)), "norm") == _norm_ops(2, 12, True)
    records = _count(nn.LayerNorm(3, elementwise_affine=False), _x(2, 4, 3))
    assert [r.category for r in records] == ["norm"] and records[0].count == _norm_ops(8, 3, False)


def test_gelu_exact_and_tanh():
    n = 2 * 3 * 3
    exact = _count(nn.GELU(), _x(1, 2, 3, 3))
    assert [(r.category, r.count) for r in exact] == [("activation", OpCount(mul=3 * n, add=n, trans=n))]
    tanh = _count(nn.GELU(approximate="tanh"), _x(1, 2, 3, 3))
    assert [(r.category, r.count) for r in tanh] == [("activation", OpCount(mul=6 * n, add=2 * n, trans=n))]
