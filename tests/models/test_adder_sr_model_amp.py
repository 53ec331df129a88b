"""Mixed precision: every architecture under CPU bf16 autocast, ``AdderSRModel``'s ``use_amp`` /
``amp_bf16``, and the float16 GradScaler's place in the step (unscale before clipping and the
non-finite check; its overflow skips are not non-finite skips). In-process, tiny nets, CPU.

Tolerances (docs/training.md, "Mixed precision"): the forward under bf16 autocast may differ
from float32 by < 4 % of the largest residual ``|sr - bicubic(lq)|`` (train and eval BatchNorm;
bf16 keeps 8 significant bits, 0.4 % per rounding); over 3 Adam steps the losses by < 1.5 % and
the trained nets' float32 outputs by < 15 % of their residual (Adam's sign-like first steps
amplify small gradient differences).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import addersr_plugin  # noqa: F401  (compat fixes first; registers archs and the model)
from addersr_plugin.models import AdderSRModel
from addersr_plugin.models.adder_sr_model import STATE_KEY
from addersr_plugin.models.amp import MixedPrecision, parse_amp_options
from addersr_plugin.nn import AdderConv2d
from test_adder_sr_model import SMALL, _batch, _opt

VDSR_SMALL = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_layer": 4, "upscale": 2}
ARCHS = {
    "adder_edsr": {"type": "AdderEDSR", **SMALL},
    "adder_edsr_power_adder_upsampler": {"type": "AdderEDSR", **SMALL, "power_act": True, "adder_upsampler": True,
                                         "power_per_channel": True},
    "adder_edsr_paper_x3": {"type": "AdderEDSR", **SMALL, "upscale": 3, "image_skip": False, "dc_free_head": False,
                            "power_act": True},
    "adder_edsr_x4_no_shortcut_no_bn": {"type": "AdderEDSR", **SMALL, "upscale": 4, "shortcut": False, "norm": None},
    "adder_vdsr": {"type": "AdderVDSR", **VDSR_SMALL},
    "adder_vdsr_power": {"type": "AdderVDSR", **VDSR_SMALL, "power_act": True},
    "vdsr": {"type": "VDSR", **VDSR_SMALL},
}
AMP = {"use_amp": True, "amp_bf16": True}
FORWARD_TOL, LOSS_TOL, TRAINED_TOL = 0.04, 0.015, 0.15



def _scale(net: dict) -> int:
    return net.get("upscale", 2)


def _data(seed: int, scale: int) -> dict:
    d = _batch(seed=seed)
    if scale != 2:
        d["lq"] = F.interpolate(d["gt"], scale_factor=1 / scale, mode="bicubic", antialias=True).clamp(0, 1)
        d["gt"] = d["gt"][:, :, :d["lq"].shape[2] * scale, :d["lq"].shape[3] * scale]
    return d


def _model(net: dict, train: dict | None = None, seed: int = 0, **top) -> AdderSRModel:
    torch.manual_seed(seed)
    return AdderSRModel(_opt(net, train, scale=_scale(net), **top))


def _residual_error(out, ref, lq, scale) -> float:
    """Largest difference relative to the largest residual of ``ref`` over bicubic."""
    up = F.interpolate(lq, scale_factor=scale, mode="bicubic", align_corners=False)
    return ((out.float() - ref).abs().max() / (ref - up).abs().max()).item()


def _record_dtypes(net):
    """Output dtypes of the adder layers and of the float convolutions, per forward."""
    seen = {"adder": set(), "conv": set()}
    for m in net.modules():
        kind = "adder" if isinstance(m, AdderConv2d) else "conv" if isinstance(m, torch.nn.Conv2d) else None
        if kind:
            m.register_forward_hook(lambda _m, _i, out, kind=kind: seen[kind].add(out.dtype))
    return seen


@pytest.mark.parametrize("name", list(ARCHS))
def test_forward_under_bf16_autocast_is_close_to_float32(name):
    net_opt = ARCHS[name]
    model = _model(net_opt, AMP)
    net = model.net_g
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.reset_parameters()  # conv_last starts at zero with image_skip: the residual must not be 0
    lq = _data(10, _scale(net_opt))["lq"]
    with torch.no_grad():
        net(lq), net(lq)  # BatchNorm statistics to run eval mode with
    seen = _record_dtypes(net)
    for training in (True, False):
        net.train(training)
        with torch.no_grad():
            ref = net(lq)
            with model.amp.autocast():
                out = net(lq)
        assert _residual_error(out, ref, lq, _scale(net_opt)) < FORWARD_TOL, (name, training)
    # autocast was on (float convs in bf16) and the adder layers ran in float32 (docs/adder_op.md)
    assert torch.bfloat16 in seen["conv"]
    assert seen["adder"] <= {torch.float32}


@pytest.mark.parametrize("name", list(ARCHS))
def test_training_steps_under_bf16_track_float32(name):
    net_opt = ARCHS[name]
    plain, amp = _model(net_opt), _model(net_opt, AMP)
    assert plain.amp.dtype is None and amp.amp.dtype == torch.bfloat16 and amp.amp.scaler is None
    seen = _record_dtypes(amp.net_g)
    start = copy.deepcopy(amp.net_g.state_dict())
    for it in range(1, 4):
        losses = []
        for m in (plain, amp):
            m.feed_data(_data(it, _scale(net_opt)))
            m.optimize_parameters(it)
            losses.append(m.get_current_log()["l_pix"])
        assert abs(losses[1] - losses[0]) / losses[0] < LOSS_TOL, (it, losses)
    assert amp.skipped_steps == 0 and torch.bfloat16 in seen["conv"] and seen["adder"] <= {torch.float32}
    for p in amp.net_g.parameters():  # gradients in the parameters' dtype
        assert p.grad is None or p.grad.dtype == p.dtype == torch.float32
    assert any(not torch.equal(v, start[k]) for k, v in amp.net_g.state_dict().items())  # it trained
    lq = _data(7, _scale(net_opt))["lq"]
    for m in (plain, amp):
        m.net_g.eval()
    with torch.no_grad():
        assert _residual_error(amp.net_g(lq), plain.net_g(lq), lq, _scale(net_opt)) < TRAINED_TOL


def test_amp_option_errors():
    cpu = torch.device("cpu")
    assert parse_amp_options({}, cpu) is None
    assert parse_amp_options({"use_amp": False, "amp_bf16": True}, cpu) is None
    assert parse_amp_options(AMP, cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="train.use_amp on the CPU needs train.amp_bf16: true"):
        parse_amp_options({"use_amp": True}, cpu)
    with pytest.raises(ValueError, match="train.use_amp must be true or false, got 'yes'"):
        parse_amp_options({"use_amp": "yes"}, cpu)
    with pytest.raises(ValueError, match="train.amp_bf16 must be true or false"):
        parse_amp_options({"use_amp": True, "amp_bf16": 1}, cpu)
    with pytest.raises(ValueError, match="train.use_amp on the CPU needs train.amp_bf16"):
        _model(ARCHS["adder_edsr"], {"use_amp": True})  # the model refuses it when it is built


# --------------------------------------------------------------------------- float16 + GradScaler
# CPU autocast runs float16 too (slowly, which is why the model refuses it on the CPU): these tests
# put a float16 MixedPrecision with a CPU GradScaler into a model to exercise the step's logic.

def _fp16_model(scale: float):
    model = _model(ARCHS["adder_edsr"], {**AMP, "ema_decay": 0.5})
    model.amp = MixedPrecision("cpu", torch.float16)
    model.amp.scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    return model


def _weights(model) -> dict:
    return copy.deepcopy({"params": dict(model.net_g.named_parameters()), "ema": model.net_g_ema.state_dict(),
                          "opt": model.optimizer_g.state_dict()["state"]})


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k][n], b[k][n]) for k in ("params", "ema") for n in a[k]) and \
        a["opt"].keys() == b["opt"].keys()


def test_gradscaler_overflow_is_skipped_without_counting_a_nonfinite_step(warnings_log):
    model = _fp16_model(2.0 ** 100)  # loss x 2^100: the float16 activation gradients overflow
    before = _weights(model)
    model.feed_data(_data(1, 2))
    model.optimize_parameters(1)
    assert _same(_weights(model), before)  # weights, EMA and optimizer untouched
    assert model.skipped_steps == 0 and model._consecutive_skips == 0 and not warnings_log
    assert model.amp.skipped == 1 and model.amp.scaler.get_scale() == 2.0 ** 99  # the scale backed off
    log = model.get_current_log()
    assert log["amp_skipped"] == 1 and log["l_skipped"] == 0 and log["amp_scale"] == 2.0 ** 99
    model.amp.scaler.update(2.0 ** 10)  # a scale that fits: the next step trains
    model.feed_data(_data(2, 2))
    model.optimize_parameters(2)
    assert not _same(_weights(model), before) and model.amp.skipped == 1 and model.skipped_steps == 0


def test_nonfinite_gradient_at_unit_scale_is_a_nonfinite_skip(warnings_log):
    """Above scale 1 a non-finite gradient may be the scaler's overflow; at 1 it is the training's."""
    model = _fp16_model(2.0)
    hook = model.net_g.conv_last.weight.register_hook(lambda g: g * float("nan"))
    model.feed_data(_data(1, 2))
    model.optimize_parameters(1)
    assert (model.amp.skipped, model.skipped_steps, model.amp.scaler.get_scale()) == (1, 0, 1.0)
    before = _weights(model)
    model.feed_data(_data(2, 2))
    model.optimize_parameters(2)
    assert (model.amp.skipped, model.skipped_steps) == (1, 1) and _same(_weights(model), before)
    assert model.amp.scaler.get_scale() == 1.0  # kept: the scale was not the cause
    assert any("iteration 2: step skipped, the gradient norm is nan" in w for w in warnings_log)
    hook.remove()
    model.feed_data(_data(3, 2))
    model.optimize_parameters(3)  # the scaler's per-step state was reset: training goes on
    assert model._consecutive_skips == 0 and not _same(_weights(model), before)


def test_clipping_and_the_logged_norm_see_unscaled_gradients():
    scaled, plain = _fp16_model(2.0 ** 16), _model(ARCHS["adder_edsr"], {"ema_decay": 0.5})
    for m in (scaled, plain):
        m.feed_data(_data(1, 2))
        m.optimize_parameters(1)
    norms = [m.get_current_log()["grad_norm"] for m in (scaled, plain)]
    assert scaled.amp.skipped == 0
    assert norms[0] == pytest.approx(norms[1], rel=0.05)  # not 2^16 times larger


def test_gradscaler_state_round_trips_the_training_state(tmp_path):
    path = {"pretrain_network_g": None, "strict_load_g": True, "training_states": str(tmp_path)}
    model = _fp16_model(2.0 ** 12)
    model.opt["path"] = path
    model.amp.skipped = 3
    model.feed_data(_data(1, 2))
    model.optimize_parameters(1)
    model.save_training_state(0, 1)
    state = torch.load(tmp_path / "1.state", weights_only=False)
    assert state[STATE_KEY]["amp"]["scaler"]["scale"] == 2.0 ** 12
    resumed = _fp16_model(2.0 ** 16)
    resumed.resume_training(state)
    assert resumed.amp.scaler.get_scale() == 2.0 ** 12 and resumed.amp.skipped == 3
