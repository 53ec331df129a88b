"""AdderEDSR, AdderVDSR and VDSR: shapes, composition, ablation switches, training behaviour."""

import pytest
import torch
from torch import nn

import addersr_plugin  # noqa: F401
from addersr_plugin.archs import VDSR, AdderEDSR, AdderVDSR
from addersr_plugin.nn import AdderConv2d, PowerActivation, ShortcutAdderBlock
from basicsr.archs.edsr_arch import EDSR

TINY_EDSR = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2)
TINY_VDSR = dict(num_feat=8, num_layer=4)


def _count(net, cls):
    return sum(isinstance(m, cls) for m in net.modules())


def _nparams(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("make", [
    lambda s: AdderEDSR(upscale=s, **TINY_EDSR),
    lambda s: AdderEDSR(upscale=s, adder_upsampler=True, **TINY_EDSR),
    lambda s: AdderVDSR(upscale=s, **TINY_VDSR),
    lambda s: VDSR(upscale=s, **TINY_VDSR),
], ids=["AdderEDSR", "AdderEDSR-adder-up", "AdderVDSR", "VDSR"])
def test_output_shape_odd_sizes(make, scale):
    torch.manual_seed(0)
    net = make(scale)
    out = net(torch.rand(2, 3, 7, 5))
    assert out.shape == (2, 3, 7 * scale, 5 * scale)
    assert torch.isfinite(out).all()


def test_unsupported_upscale_named():
    with pytest.raises(ValueError, match="AdderEDSR: upscale 5 is not supported"):
        AdderEDSR(upscale=5, **TINY_EDSR)
    with pytest.raises(ValueError, match="AdderVDSR: upscale must be a positive int"):
        AdderVDSR(upscale=0, **TINY_VDSR)


@pytest.mark.parametrize("make, message", [
    (lambda: AdderEDSR(1, 1, num_feat=8, num_block=1), "rgb_mean has 3 values but the image has 1 channels"),
    (lambda: AdderEDSR(3, 1, num_feat=8, num_block=1), "num_out_ch \\(1\\) must equal num_in_ch \\(3\\)"),
    (lambda: AdderVDSR(num_layer=1), "num_layer must be >= 2"),
    (lambda: VDSR(num_in_ch=1, num_out_ch=3), "must equal num_in_ch"),
    (lambda: AdderEDSR(num_block=0, num_in_ch=3, num_out_ch=3), "num_block must be a positive int"),
])
def test_bad_arguments_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_single_channel_edsr_with_matching_mean():
    net = AdderEDSR(1, 1, num_feat=8, num_block=1, upscale=2, rgb_mean=(0.44,))
    assert net(torch.rand(1, 1, 5, 5)).shape == (1, 1, 10, 10)


@pytest.mark.parametrize("num_block, adder_up, scale", [(2, False, 4), (3, True, 4), (1, True, 3), (2, True, 2)])
def test_adder_edsr_composition(num_block, adder_up, scale):
    net = AdderEDSR(upscale=scale, adder_upsampler=adder_up, power_act=True, **dict(TINY_EDSR, num_block=num_block))
    up_steps = {2: 1, 3: 1, 4: 2}[scale] if adder_up else 0
    units = 2 * num_block + 1  # two per residual block + conv_after_body
    # the adder upsampler's steps are adder units too (one wiring of adder -> BN -> power), without shortcut
    assert _count(net, ShortcutAdderBlock) == units + up_steps
    # second_shortcut=False (the default): the second unit of a block uses the block's skip instead
    assert sum(1 for m in net.modules() if isinstance(m, ShortcutAdderBlock) and m.shortcut) == num_block + 1
    assert all(not b.unit2.shortcut and b.unit1.shortcut for b in net.body)
    paper = AdderEDSR(upscale=scale, second_shortcut=True, **dict(TINY_EDSR, num_block=num_block))
    assert sum(1 for m in paper.modules() if isinstance(m, ShortcutAdderBlock) and m.shortcut) == units
    assert _count(net, AdderConv2d) == units + up_steps
    assert _count(net, nn.BatchNorm2d) == units + up_steps
    assert _count(net, PowerActivation) == units + up_steps
    assert _count(net, nn.ReLU) == num_block  # only where EDSR's block has its ReLU
    convs = _count(net, nn.Conv2d)
    assert convs == 2 + ({2: 1, 3: 1, 4: 2}[scale] if not adder_up else 0)  # head, tail, conv upsampler


def test_adder_vdsr_composition():
    net = AdderVDSR(num_layer=7, num_feat=8)
    assert _count(net, AdderConv2d) == 5
    assert _count(net, nn.BatchNorm2d) == 5 and _count(net, PowerActivation) == 5
    assert _count(net, nn.Conv2d) == 2
    assert _count(net, nn.ReLU) == 6  # after conv_first and after every adder unit
    assert all(b.shortcut for b in net.modules() if isinstance(b, ShortcutAdderBlock))


@pytest.mark.parametrize("net", [VDSR(num_layer=6, num_feat=8), EDSR(3, 3, num_feat=8, num_block=2)],
                         ids=["VDSR", "EDSR"])
def test_cnn_counterparts_contain_no_adder_parts(net):
    assert _count(net, AdderConv2d) == 0 and _count(net, PowerActivation) == 0 and _count(net, nn.BatchNorm2d) == 0


@pytest.mark.parametrize("switch, cls", [
    (dict(norm=None), nn.BatchNorm2d), (dict(power_act=False), PowerActivation),
])
@pytest.mark.parametrize("arch", [AdderEDSR, AdderVDSR])
def test_ablation_switch_removes_part(arch, switch, cls):
    # AdderEDSR's default has no power activation (docs/quality.md); start from the paper's units
    kwargs = dict(TINY_EDSR, power_act=True) if arch is AdderEDSR else TINY_VDSR
    assert _count(arch(**kwargs), cls) > 0
    kwargs = {k: v for k, v in kwargs.items() if k not in switch}
    net = arch(**kwargs, **switch)
    assert _count(net, cls) == 0
    assert torch.isfinite(net(torch.rand(1, 3, 5, 5))).all()


@pytest.mark.parametrize("arch", [AdderEDSR, AdderVDSR])
def test_ablation_no_shortcut_and_sign_grad(arch):
    kwargs = TINY_EDSR if arch is AdderEDSR else TINY_VDSR
    net = arch(**kwargs, shortcut=False, input_grad="sign", eta=None)
    blocks = [m for m in net.modules() if isinstance(m, ShortcutAdderBlock)]
    assert blocks and not any(b.shortcut for b in blocks)
    adders = [m for m in net.modules() if isinstance(m, AdderConv2d)]
    assert all(a.input_grad == "sign" and a.eta is None for a in adders)


def test_self_shortcut_changes_the_function():
    torch.manual_seed(0)
    # Train mode: with BN's initial running stats (eval mode) the adder outputs, all about
    # -sum|x - w| << 0, are cut to zero by ReLU with or without the shortcut.
    a = AdderVDSR(**TINY_VDSR)
    b = AdderVDSR(**TINY_VDSR, shortcut=False)
    b.load_state_dict(a.state_dict())
    x = torch.rand(2, 3, 6, 6)
    assert not torch.allclose(a(x), b(x))


def test_adder_edsr_param_count_relates_to_edsr():
    # Each body conv (bias, 3x3, C->C) becomes an adder layer (no bias) + BN (2C), + alpha (1)
    # with the paper's power activation.
    for feat, blocks, scale in [(64, 16, 2), (64, 16, 3), (256, 32, 4)]:
        cnn = _nparams(EDSR(3, 3, feat, blocks, scale))
        body_convs = 2 * blocks + 1
        assert _nparams(AdderEDSR(3, 3, feat, blocks, scale)) == cnn + body_convs * (-feat + 2 * feat)
        assert _nparams(AdderEDSR(3, 3, feat, blocks, scale, power_act=True)) == cnn + body_convs * (-feat + 2 * feat + 1)


def test_adder_vdsr_param_count_relates_to_vdsr():
    cnn, adder = _nparams(VDSR()), _nparams(AdderVDSR())
    assert adder == cnn + 18 * (-64 + 2 * 64 + 1)
    # VDSR's published size: 20 layers of 3x3, 64 channels, RGB in/out here
    assert cnn == 3 * 64 * 9 + 64 + 18 * (64 * 64 * 9 + 64) + 64 * 3 * 9 + 3


@pytest.mark.parametrize("arch", [AdderEDSR, AdderVDSR])
def test_gradients_reach_every_parameter_and_step_changes_alpha(arch):
    torch.manual_seed(0)
    kwargs = dict(TINY_EDSR, upscale=2, adder_upsampler=True, power_act=True) if arch is AdderEDSR \
        else dict(TINY_VDSR, upscale=2)
    net = arch(**kwargs)
    lq, gt = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 12, 12)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    if arch is AdderEDSR:
        # image_skip starts conv_last at zero (the net starts at bicubic), so at the very first
        # step only conv_last gets a gradient: take that step, then everything must learn.
        nn.functional.l1_loss(net(lq), gt).backward()
        assert [n for n, p in net.named_parameters() if p.grad.abs().sum() > 0] == ["conv_last.weight",
                                                                                    "conv_last.bias"]
        opt.step()
        opt.zero_grad(set_to_none=True)
    nn.functional.l1_loss(net(lq), gt).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    zero = [n for n, p in net.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero
    alphas = {n: p.detach().clone() for n, p in net.named_parameters() if n.endswith("log_alpha")}
    assert alphas
    opt.step()
    params = dict(net.named_parameters())
    assert all(not torch.equal(params[n], v) for n, v in alphas.items())


@pytest.mark.parametrize("arch", [AdderEDSR, AdderVDSR, VDSR])
def test_state_dict_round_trip(arch, tmp_path):
    torch.manual_seed(0)
    kwargs = TINY_EDSR if arch is AdderEDSR else TINY_VDSR
    net = arch(**kwargs)
    net(torch.rand(4, 3, 6, 6))  # move BN running stats away from their init
    net.eval()
    torch.save(net.state_dict(), tmp_path / "net.pth")
    torch.manual_seed(1)
    other = arch(**kwargs)
    other.load_state_dict(torch.load(tmp_path / "net.pth", weights_only=True))
    other.eval()
    x = torch.rand(1, 3, 5, 7)
    torch.testing.assert_close(other(x), net(x))
    assert "mean_shift.mean" not in net.state_dict()  # like basicsr's EDSR: mean is not a weight


def test_eval_mode_uses_bn_running_stats():
    torch.manual_seed(0)
    net = AdderVDSR(**TINY_VDSR)
    for _ in range(3):
        net(torch.rand(4, 3, 6, 6))
    net.eval()
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    before = bn.running_mean.clone()
    x = torch.rand(2, 3, 6, 6)
    both = net(x)
    # per-sample results do not depend on the rest of the batch in eval mode
    torch.testing.assert_close(net(x[:1]), both[:1])
    assert torch.equal(bn.running_mean, before)


@pytest.mark.parametrize("arch", [AdderEDSR, AdderVDSR])
def test_no_nan_with_zero_input_and_small_alpha(arch):
    torch.manual_seed(0)
    kwargs = TINY_EDSR if arch is AdderEDSR else TINY_VDSR
    net = arch(**kwargs, alpha_init=0.5, power_per_channel=True)
    x = torch.zeros(2, 3, 5, 5)
    out = net(x)
    out.abs().mean().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    net.eval()
    assert torch.isfinite(net(x)).all()


def test_mean_buffer_follows_dtype():
    net = AdderEDSR(upscale=2, **TINY_EDSR).double()
    assert net(torch.rand(1, 3, 4, 4, dtype=torch.float64)).dtype == torch.float64


def test_adder_edsr_default_is_the_study_recipe():
    """The quality study's winner (docs/quality.md): image skip, DC-free head, no power activation;
    the paper's AdderEDSR is the three switches the other way."""
    from addersr_plugin.nn import DCFreeConv2d

    net = AdderEDSR(**TINY_EDSR)
    assert net.image_skip and isinstance(net.conv_first, DCFreeConv2d) and _count(net, PowerActivation) == 0
    paper = AdderEDSR(**TINY_EDSR, image_skip=False, dc_free_head=False, power_act=True)
    assert not paper.image_skip and type(paper.conv_first) is nn.Conv2d
    assert _count(paper, PowerActivation) == 2 * TINY_EDSR["num_block"] + 1  # one per adder unit


def test_dc_free_head_is_blind_to_flat_colour():
    """The DC-free head, numerically (not by its class): every filter that forward applies sums to
    zero over its taps, so flat images of any colour give identical features (the bias) away from
    the zero-padded border. The paper's plain head, the positive control, sees the colour."""
    torch.manual_seed(0)
    net = AdderEDSR(**TINY_EDSR).double().eval()
    paper = AdderEDSR(**TINY_EDSR, image_skip=False, dc_free_head=False).double().eval()
    head, cin = net.conv_first, TINY_EDSR["num_in_ch"]
    with torch.no_grad():
        for ci in range(cin):
            # a unit image on input channel ci: the centre output is bias + Σ_taps w[:, ci]
            x = torch.zeros(1, cin, 3, 3, dtype=torch.float64)
            x[:, ci] = 1
            tap_sums = head(x)[0, :, 1, 1] - head.bias
            assert tap_sums.abs().max() < 1e-12
            assert head.weight[:, ci].sum((1, 2)).abs().min() > 1e-4  # the stored weights do not: forward does it
        colours = torch.rand(6, cin, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        flat = colours.expand(6, cin, 7, 7)
        feats = head(net.mean_shift.normalize(flat))[..., 1:-1, 1:-1]
        assert torch.allclose(feats, head.bias.view(1, -1, 1, 1).expand_as(feats), rtol=0, atol=1e-9)
        plain = paper.conv_first(paper.mean_shift.normalize(flat))[..., 1:-1, 1:-1]
        assert (plain - plain[:1]).abs().amax() > 1.0  # different colours, different features


def test_second_shortcut_keeps_the_feature_scale_across_depth():
    """The depth fix, measured at initialisation: with both self-shortcuts a block doubles its input
    (x + relu(x + BN) + BN), so 16 blocks grow the features ~10^5-fold; without the second one the
    features stay near the head's scale. Same state-dict keys either way."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 24, 24)
    growth = {}
    for second in (True, False):
        net = AdderEDSR(3, 3, num_feat=8, num_block=16, upscale=2, second_shortcut=second)
        mags = []
        hooks = [b.register_forward_hook(lambda m, i, o: mags.append(o.abs().mean().item())) for b in net.body]
        net(x)
        for h in hooks:
            h.remove()
        growth[second] = mags[-1] / mags[0]
    assert growth[True] > 1e4 and growth[False] < 2
    assert AdderEDSR(3, 3, 8, 2, 2).state_dict().keys() == AdderEDSR(3, 3, 8, 2, 2, second_shortcut=True).state_dict().keys()


def test_zero_init_residual_makes_every_block_the_identity_at_init():
    """zero_init_residual: the second unit's BN gamma starts at 0, so each residual block returns its
    input exactly; the gammas still get gradients (the branch can grow) and the option refuses a
    second unit whose output a zero gamma would not silence."""
    torch.manual_seed(0)
    net = AdderEDSR(3, 3, num_feat=8, num_block=4, upscale=2, zero_init_residual=True)
    feats = []
    hooks = [b.register_forward_hook(lambda m, i, o: feats.append((i[0].clone(), o.clone()))) for b in net.body]
    out = net(torch.rand(2, 3, 12, 12))
    for h in hooks:
        h.remove()
    for block_in, block_out in feats:
        assert torch.equal(block_in, block_out)
    net.conv_last.weight.data.normal_()  # the image skip's zero tail would stop every gradient
    net(torch.rand(2, 3, 12, 12)).square().mean().backward()
    assert all(b.unit2.norm.weight.grad.abs().sum() > 0 for b in net.body)
    plain = AdderEDSR(3, 3, num_feat=8, num_block=4, upscale=2)
    assert all(b.unit2.norm.weight.eq(1).all() for b in plain.body)
    assert out.shape == (2, 3, 24, 24)
    for bad in (dict(second_shortcut=True), dict(power_act=True), dict(norm=None)):
        with pytest.raises(ValueError, match="zero_init_residual needs the second unit to end in BatchNorm"):
            AdderEDSR(3, 3, num_feat=8, num_block=2, upscale=2, zero_init_residual=True, **bad)


@pytest.mark.parametrize("arch", [VDSR, AdderVDSR])
def test_vdsr_zero_init_last_starts_as_bicubic_and_still_trains(arch):
    from addersr_plugin.nn import bicubic_upsample

    torch.manual_seed(0)
    net = arch(upscale=2, zero_init_last=True, **TINY_VDSR)
    x, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    assert torch.equal(net(x), bicubic_upsample(x, 2))
    assert arch(upscale=2, **TINY_VDSR)(x).sub(bicubic_upsample(x, 2)).abs().mean() > 1e-3  # default: He init
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(2):  # step 1 moves the last layer off zero; step 2 reaches the first layer
        opt.zero_grad()
        (net(x) - target).abs().mean().backward()
        opt.step()
    first = net.body[0] if arch is VDSR else net.conv_first
    assert first.weight.grad.abs().sum() > 0
    assert not torch.equal(net(x), bicubic_upsample(x, 2))
