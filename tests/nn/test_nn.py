"""Layers: AdderConv2d (with the adaptive learning rate), PowerActivation, ShortcutAdderBlock."""

import copy
import io
import math

import pytest
import torch
from torch import nn

from addersr_plugin.nn import AdderConv2d, PowerActivation, ShortcutAdderBlock, adaptive_lr_scale
from addersr_plugin.ops import adder_conv2d, adder_conv2d_reference


def _raw_weight_grad(layer: AdderConv2d, x: torch.Tensor, loss_fn) -> torch.Tensor:
    """The weight gradient without ALR, through the functional op on a hook-free copy."""
    w = layer.weight.detach().clone().requires_grad_(True)
    y = adder_conv2d(x, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)
    loss_fn(y).backward()
    return w.grad


# --------------------------------------------------------------------------- AdderConv2d

def test_adder_conv_matches_reference_op():
    torch.manual_seed(0)
    layer = AdderConv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2, bias=True).double()
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(2, 4, 7, 9, dtype=torch.float64)
    expected = adder_conv2d_reference(x, layer.weight, layer.bias, 2, 1, 1, 2)
    torch.testing.assert_close(layer(x), expected)
    assert layer(x).shape == nn.functional.conv2d(x, layer.weight, None, 2, 1, 1, 2).shape


def test_adder_conv_extra_repr_like_conv2d():
    r = repr(AdderConv2d(3, 8, 3, padding=1, groups=1, eta=None))
    assert r == "AdderConv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False, eta=None)"
    r = repr(AdderConv2d(4, 4, (1, 3), dilation=2, groups=2, bias=True, input_grad="sign"))
    assert "dilation=(2, 2)" in r and "groups=2" in r and "bias=False" not in r and "input_grad='sign'" in r


def test_adder_conv_init_modes():
    torch.manual_seed(0)
    normal = AdderConv2d(64, 64, 3)
    scaled = AdderConv2d(64, 64, 3, init="scaled")
    assert abs(normal.weight.std().item() - 1.0) < 0.02
    assert abs(scaled.weight.std().item() - 1 / math.sqrt(64 * 9)) < 0.02 / math.sqrt(64 * 9)
    assert normal.bias is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(in_channels=0), "in_channels must be a positive int"),
    (dict(groups=3), "must both be divisible by groups=3"),
    (dict(eta=-1.0), "eta must be a positive finite number or None"),
    (dict(eta=float("nan")), "eta must be a positive finite number or None"),
    (dict(init="xavier"), "unknown init 'xavier'"),
])
def test_adder_conv_bad_arguments(kwargs, message):
    args = dict(in_channels=4, out_channels=4, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        AdderConv2d(**args)


@pytest.mark.parametrize("kernel_size", [None, (3,), "33", (3, 3.0)])
def test_adder_conv_bad_kernel_size_type(kernel_size):
    with pytest.raises(TypeError, match="AdderConv2d: kernel_size must be an int or a pair of ints"):
        AdderConv2d(2, 2, kernel_size)


def test_adder_conv_bad_grad_mode_named_by_op():
    layer = AdderConv2d(2, 2, 3, weight_grad="exact")
    with pytest.raises(ValueError, match="unknown weight_grad 'exact'"):
        layer(torch.randn(1, 2, 4, 4))


def _loss(y):
    return (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum()


def test_alr_rescales_weight_gradient_to_expected_norm():
    torch.manual_seed(0)
    layer = AdderConv2d(3, 5, 3, padding=1, eta=0.2)
    x = torch.randn(2, 3, 6, 6)
    raw = _raw_weight_grad(layer, x, _loss)
    _loss(layer(x)).backward()
    g = layer.weight.grad
    expected_norm = 0.2 * math.sqrt(layer.weight.numel())
    assert g.norm().item() == pytest.approx(expected_norm, rel=1e-5)
    # same direction as the raw gradient
    torch.testing.assert_close(g, raw * (expected_norm / raw.norm()))


def test_alr_disabled_leaves_gradient_untouched():
    torch.manual_seed(0)
    layer = AdderConv2d(3, 5, 3, padding=1, eta=None)
    x = torch.randn(2, 3, 6, 6)
    raw = _raw_weight_grad(layer, x, _loss)
    _loss(layer(x)).backward()
    torch.testing.assert_close(layer.weight.grad, raw)


def test_alr_eta_change_takes_effect_at_next_backward():
    torch.manual_seed(0)
    layer = AdderConv2d(3, 4, 3, eta=0.2)
    x = torch.randn(1, 3, 5, 5)
    layer.eta = 1.0
    _loss(layer(x)).backward()
    assert layer.weight.grad.norm().item() == pytest.approx(math.sqrt(layer.weight.numel()), rel=1e-5)
    layer.weight.grad = None
    layer.eta = None
    raw = _raw_weight_grad(layer, x, _loss)
    _loss(layer(x)).backward()
    torch.testing.assert_close(layer.weight.grad, raw)


def test_alr_zero_gradient_stays_zero():
    layer = AdderConv2d(2, 3, 3, eta=0.2)
    (layer(torch.randn(1, 2, 4, 4)) * 0).sum().backward()
    assert torch.equal(layer.weight.grad, torch.zeros_like(layer.weight))
    g = adaptive_lr_scale(torch.zeros(3, 3), 0.2)
    assert torch.equal(g, torch.zeros(3, 3))


def test_alr_norm_computed_in_fp32():
    # ||g||^2 = 1000 * 300^2 = 9e7 overflows float16 (max 65504); in fp32 it does not.
    g = torch.full((1000,), 300.0, dtype=torch.float16)
    out = adaptive_lr_scale(g, 0.2)
    assert out.dtype == torch.float16
    assert torch.isfinite(out).all()
    assert out.float().norm().item() == pytest.approx(0.2 * math.sqrt(1000), rel=1e-3)


def test_alr_float64_gradient_keeps_float64_precision():
    """A float64 gradient is rescaled in float64 (float32 would round it to ~1e-7 relative)."""
    torch.manual_seed(0)
    g = torch.randn(6, 4, 3, 3, dtype=torch.float64) * torch.logspace(-3, 3, 216, dtype=torch.float64).view(6, 4, 3, 3)
    out = adaptive_lr_scale(g, 0.2)
    assert out.dtype == torch.float64
    # Independent float64 formula: eta * sqrt(k) * g / ||g||_2, norm as a plain sum of squares.
    expected = 0.2 * math.sqrt(g.numel()) * g / g.pow(2).sum().sqrt()
    torch.testing.assert_close(out, expected, rtol=1e-14, atol=0.0)
    # Through the layer: a float64 layer's .grad is the float64-rescaled raw gradient.
    layer = AdderConv2d(4, 6, 3, padding=1, eta=0.2).double()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    raw = _raw_weight_grad(layer, x, _loss)
    _loss(layer(x)).backward()
    torch.testing.assert_close(layer.weight.grad, 0.2 * math.sqrt(raw.numel()) * raw / raw.norm(),
                               rtol=1e-14, atol=0.0)


def test_alr_each_backward_normalised_before_accumulation():
    torch.manual_seed(0)
    layer = AdderConv2d(2, 3, 3, eta=0.2)
    x1, x2 = torch.randn(1, 2, 5, 5), 3 * torch.randn(1, 2, 5, 5)
    expected = (adaptive_lr_scale(_raw_weight_grad(layer, x1, _loss), 0.2)
                + adaptive_lr_scale(_raw_weight_grad(layer, x2, _loss), 0.2))
    _loss(layer(x1)).backward()
    _loss(layer(x2)).backward()
    torch.testing.assert_close(layer.weight.grad, expected)


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "assign"])
def test_alr_survives_copies_that_drop_tensor_hooks(how):
    torch.manual_seed(0)
    layer = AdderConv2d(2, 3, 3, eta=0.2)
    if how == "deepcopy":
        layer = copy.deepcopy(layer)
    elif how == "pickle":
        buf = io.BytesIO()
        torch.save(layer, buf)
        buf.seek(0)
        layer = torch.load(buf, weights_only=False)
    else:
        layer.load_state_dict({"weight": torch.randn(3, 2, 3, 3, requires_grad=True)}, assign=True)
    assert not layer.weight._backward_hooks  # the copy lost the hook ...
    _loss(layer(torch.randn(1, 2, 5, 5))).backward()  # ... and forward put it back
    assert layer.weight.grad.norm().item() == pytest.approx(0.2 * math.sqrt(54), rel=1e-5)


def test_alr_hook_installed_once():
    layer = AdderConv2d(2, 3, 3)
    for _ in range(3):
        layer(torch.randn(1, 2, 4, 4))
    assert len(layer.weight._backward_hooks) == 1


# --------------------------------------------------------------------------- PowerActivation

def test_power_identity_at_alpha_one_and_square_at_two():
    y = torch.tensor([-2.0, -0.5, 0.0, 1e-9, 0.5, 3.0])
    torch.testing.assert_close(PowerActivation()(y), y)
    torch.testing.assert_close(PowerActivation(2.0)(torch.tensor([-3.0, 0.5, 2.0])), torch.tensor([-9.0, 0.25, 4.0]))


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0, 1.7])
def test_power_finite_at_zeros_and_small_alpha(alpha):
    act = PowerActivation(alpha)
    y = torch.tensor([0.0, -0.0, 1e-12, -1e-7, 1e-6, 0.3, -2.0], requires_grad=True)
    out = act(y)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(y.grad).all() and torch.isfinite(act.log_alpha.grad)
    assert out[0].item() == 0.0 and out[1].item() == 0.0
    # continuous where the curve turns linear (|y| = eps)
    eps = act.eps
    near = act(torch.tensor([eps * (1 - 1e-6), eps * (1 + 1e-6)], dtype=torch.float64))
    assert near[0].item() == pytest.approx(near[1].item(), rel=1e-4)


def test_power_all_zero_input_gives_zero_output_and_finite_grads():
    act = PowerActivation(0.5, num_channels=4)
    y = torch.zeros(2, 4, 3, 3, requires_grad=True)
    out = act(y)
    out.sum().backward()
    assert torch.equal(out, torch.zeros_like(out))
    assert torch.isfinite(y.grad).all() and torch.isfinite(act.log_alpha.grad).all()


def test_power_gradcheck_away_from_zero():
    act = PowerActivation(0.7).double()
    y = torch.tensor([[-2.0, -0.4], [0.3, 1.5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(act, (y,))
    # the alpha gradient: d/dalpha sgn(y)|y|^alpha = sgn(y)|y|^alpha log|y|, times dalpha/dlog_alpha = alpha
    act(y).sum().backward()
    a = act.alpha.detach()
    expected = (torch.sign(y) * y.abs() ** a * y.abs().log() * a).sum()
    torch.testing.assert_close(act.log_alpha.grad, expected.detach())


def test_power_per_channel_shapes_and_values():
    act = PowerActivation(1.0, num_channels=3)
    with torch.no_grad():
        act.log_alpha.copy_(torch.log(torch.tensor([1.0, 2.0, 0.5])))
    y = torch.full((1, 3, 2, 2), 4.0)
    out = act(y)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([4.0, 16.0, 2.0]))
    with pytest.raises(ValueError, match="expected input with 3 channels in dim 1"):
        act(torch.ones(1, 2, 2, 2))


def test_power_alpha_stays_positive_after_a_step_that_would_flip_a_plain_alpha():
    act = PowerActivation(1.0)
    y = torch.tensor([2.0, 3.0])
    act(y).sum().backward()
    # d sum / d alpha at alpha = 1 is 2 ln 2 + 3 ln 3 = 4.68: a plain alpha stepped by SGD with
    # lr = 1 would become 1 - 4.68 < 0. log_alpha just moves to -4.68.
    d_alpha = (y * y.log()).sum()
    assert 1.0 - d_alpha.item() < 0
    torch.optim.SGD(act.parameters(), lr=1.0).step()
    assert act.log_alpha.item() == pytest.approx(-d_alpha.item(), rel=1e-5)
    assert act.alpha.item() > 0
    out = act(torch.tensor([0.0, 0.5, -2.0]))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(alpha_init=0.0), "alpha_init must be a positive finite number"),
    (dict(alpha_init=float("inf")), "alpha_init must be a positive finite number"),
    (dict(num_channels=0), "num_channels must be a positive int or None"),
    (dict(eps=0.0), "eps must be a positive finite number"),
])
def test_power_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PowerActivation(**kwargs)


# --------------------------------------------------------------------------- ShortcutAdderBlock

def test_block_order_adder_bn_shortcut_relu_power():
    torch.manual_seed(0)
    block = ShortcutAdderBlock(4, alpha_init=1.5).double()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    y = block.adder(x)
    y = block.norm(y)
    y = torch.relu(x + y)
    expected = torch.sign(y) * y.abs() ** 1.5
    torch.testing.assert_close(block(x), expected)
    names = [n for n, _ in block.named_children()]
    assert names == ["adder", "norm", "act", "power"]
    assert block.adder.bias is None


@pytest.mark.parametrize("kwargs, absent", [
    (dict(norm=None), "norm"), (dict(act=None), "act"), (dict(power=False), "power"),
])
def test_block_switches_remove_the_part(kwargs, absent):
    block = ShortcutAdderBlock(4, **kwargs)
    assert getattr(block, absent) is None
    assert absent not in dict(block.named_children())
    if absent == "norm":
        assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
        assert block.adder.bias is not None  # an adder output without BN needs a shift
    if absent == "power":
        assert not any(isinstance(m, PowerActivation) for m in block.modules())


def test_block_without_shortcut_is_plain_composition():
    torch.manual_seed(0)
    block = ShortcutAdderBlock(3, shortcut=False, power=False).eval()
    x = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(block(x), torch.relu(block.norm(block.adder(x))))


def test_block_power_per_channel():
    block = ShortcutAdderBlock(5, power_per_channel=True)
    assert block.power.log_alpha.shape == (5,)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kernel_size=2), "kernel_size must be an odd int"),
    (dict(norm="in"), "unknown norm 'in'"),
    (dict(act="gelu"), "unknown act 'gelu'"),
])
def test_block_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShortcutAdderBlock(4, **kwargs)
