"""``AdderSRModel`` stability: the non-finite guard, gradient-norm clipping, the warmup of each
param group, and the rollback on a validation collapse. In-process, tiny nets, CPU."""

from __future__ import annotations

import copy
import math
import re
from types import SimpleNamespace

import pytest
import torch

import addersr_plugin  # noqa: F401  (compat fixes first; registers archs and the model)
from basicsr.models.sr_model import SRModel  # noqa: E402  (after the compat fixes)
from addersr_plugin.models import AdderSRModel
from addersr_plugin.models.adder_sr_model import STATE_KEY
from test_adder_sr_model import OURS, SMALL, _batch, _opt

EDSR = {"type": "EDSR", **SMALL, "num_block": 2}
VAL = {"val_freq": 1, "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2}}}



def _model(network_g=OURS, train=None, **top):
    torch.manual_seed(0)
    return AdderSRModel(_opt(network_g, {"ema_decay": 0.5, **(train or {})}, **top))


def _state(model) -> dict:
    """Everything a skipped step must leave alone: net_g (weights and buffers), EMA, optimizer."""
    return copy.deepcopy({"net": model.net_g.state_dict(), "ema": model.net_g_ema.state_dict(),
                          "opt": model.optimizer_g.state_dict()["state"]})


def _assert_same(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    else:
        assert torch.equal(a, b), path  # bit-identical


def _step(model, it, data=None):
    model.feed_data(data or _batch(seed=it))
    model.optimize_parameters(it)


def test_nan_pixel_batch_is_skipped_and_training_continues(warnings_log):
    model = _model()
    _step(model, 1)  # Adam state exists: the skip must not touch it either
    before = _state(model)
    data = _batch(seed=5)
    data["lq"][1, 2, 3, 4] = float("nan")
    _step(model, 2, data)
    _assert_same(_state(model), before)
    assert model.skipped_steps == 1 and model.get_current_log()["l_skipped"] == 1
    assert any("iteration 2: step skipped, non-finite values in the input (lq)" in w for w in warnings_log)
    _step(model, 3)  # the next finite batch trains again
    assert not torch.equal(model.net_g.state_dict()["body.0.unit1.adder.weight"],
                           before["net"]["body.0.unit1.adder.weight"])
    assert model._consecutive_skips == 0 and model.skipped_steps == 1


def test_nonfinite_loss_after_forward_restores_bn_statistics(warnings_log):
    # The input is finite, so the forward runs and train-mode BN updates its running statistics;
    # the loss is NaN (an output hook) and the step must leave the BN buffers bit-identical.
    model = _model()
    _step(model, 1)
    before = _state(model)
    poison = model.net_g.register_forward_hook(lambda m, i, out: out * float("nan"))
    _step(model, 2)
    poison.remove()
    _assert_same(_state(model), before)
    assert any("the loss is nan (input finite)" in w for w in warnings_log)


def test_nonfinite_gradient_is_skipped(warnings_log):
    model = _model()
    _step(model, 1)
    before = _state(model)
    weight = model.net_g.body[0].unit1.adder.weight
    hook = weight.register_hook(lambda g: g * float("inf"))
    _step(model, 2)
    hook.remove()
    _assert_same(_state(model), before)  # includes the BN buffers the forward had updated
    assert model.skipped_steps == 1 and all(p.grad is None for p in model.net_g.parameters())
    assert any("iteration 2: step skipped, the gradient norm is" in w and "input finite" in w for w in warnings_log)
    _step(model, 3)
    assert model._consecutive_skips == 0


def test_consecutive_nonfinite_batches_raise():
    model = _model(train={"nonfinite_max_skips": 3})
    bad = _batch()
    bad["gt"][0, 0, 0, 0] = float("inf")
    _step(model, 1, bad)
    _step(model, 2, bad)
    _step(model, 3)  # a good step resets the consecutive count
    _step(model, 4, bad)
    _step(model, 5, bad)
    with pytest.raises(FloatingPointError, match=r"3 consecutive training steps skipped \(iteration 6: non-finite "
                                                 r"values in the input \(gt\).*lower the learning rate.*the last "
                                                 r"checkpoint is intact"):
        _step(model, 6, bad)
    assert model.skipped_steps == 5


@pytest.mark.parametrize("network_g, optim", [(EDSR, "Adam"), (OURS, "SGD")], ids=["edsr-adam", "adder-sgd"])
def test_diverging_learning_rate_never_makes_weights_nonfinite(network_g, optim):
    model = _model(network_g, {"optim_g": {"type": optim, "lr": 1e6}, "grad_clip": None, "nonfinite_max_skips": 100})
    for it in range(1, 7):
        _step(model, it)
        for name, v in model.net_g.state_dict().items():
            assert torch.isfinite(v).all(), (it, name)
    assert model.skipped_steps > 0  # the run did diverge: the guard, not luck, kept the weights finite


def _applied_norms(model) -> list[float]:
    """Total gradient norm as the optimizer sees it (after any clipping), one per step taken."""
    norms = []
    params = [p for g in model.optimizer_g.param_groups for p in g["params"]]
    model.optimizer_g.register_step_pre_hook(lambda *_: norms.append(
        float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))))
    return norms


def test_grad_clip_number_bounds_the_applied_norm():
    model = _model(train={"grad_clip": 0.01})
    norms = _applied_norms(model)
    for it in range(1, 4):
        _step(model, it)
        assert model.get_current_log()["grad_norm"] > 0.01  # the raw norm is larger: clipping happened
    assert max(norms) <= 0.01 * (1 + 1e-4) and model.grad_clipper.clipped == 3
    off = _model(train={"grad_clip": 0})
    norms_off = _applied_norms(off)
    _step(off, 1)
    assert off.grad_clipper.threshold() == math.inf
    assert norms_off[0] == pytest.approx(off.get_current_log()["grad_norm"], rel=1e-4) and norms_off[0] > 0.01


def test_grad_clip_auto_cuts_spikes_only():
    model = _model(train={"grad_clip_warmup": 3, "grad_clip_factor": 2.0})
    norms = _applied_norms(model)
    assert model.grad_clipper.mode == "auto" and model.grad_clipper.threshold() == math.inf
    raw = []
    for it in range(1, 4):  # warmup: measured, never clipped
        _step(model, it)
        raw.append(model.get_current_log()["grad_norm"])
    assert norms == pytest.approx(raw, rel=1e-4) and model.grad_clipper.clipped == 0
    assert model.grad_clipper.mean == pytest.approx(sum(raw) / 3)  # the plain mean during warmup
    limit = model.grad_clipper.threshold()
    assert limit == pytest.approx(2 * sum(raw) / 3)
    scale = model.net_g.body[0].unit1.adder.weight.register_hook(lambda g: g * 1e4)  # a spike
    _step(model, 4)
    scale.remove()
    assert model.get_current_log()["grad_norm"] > 10 * limit
    assert norms[-1] <= limit * (1 + 1e-4) and model.grad_clipper.clipped == 1
    assert model.get_current_log()["clipped"] == 1
    _step(model, 5)  # the spike entered the mean capped at the threshold
    assert model.grad_clipper.threshold() < 1.5 * limit


def test_clip_statistic_round_trips_the_training_state(tmp_path):
    opt_path = {"pretrain_network_g": None, "strict_load_g": True, "training_states": str(tmp_path)}
    model = _model(train={"grad_clip_warmup": 2}, path=opt_path)
    for it in range(1, 5):
        _step(model, it)
    model.skipped_steps = 2
    model.save_training_state(0, 4)
    state = torch.load(tmp_path / "4.state", weights_only=False)
    assert state[STATE_KEY]["clip"]["count"] == 4
    resumed = _model(train={"grad_clip_warmup": 2}, path=opt_path)
    resumed.resume_training(state)
    assert resumed.grad_clipper.state_dict() == model.grad_clipper.state_dict()
    assert resumed.grad_clipper.threshold() == model.grad_clipper.threshold() < math.inf
    assert resumed.skipped_steps == 2
    del state[STATE_KEY]  # a state written before this key existed still loads, with fresh statistics
    old = _model(path=opt_path)
    old.resume_training(state)
    assert old.grad_clipper.count == 0 and old.grad_clipper.threshold() == math.inf
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("scheduler", [
    {"type": "MultiStepLR", "milestones": [1000], "gamma": 0.5},
    {"type": "CosineAnnealingRestartLR", "periods": [100000], "eta_min": 0}], ids=["multistep", "cosine"])
def test_warmup_ramps_each_param_group_to_its_own_lr(scheduler):
    train = {"optim_g": {"type": "Adam", "lr": 1e-3, "adder_lr_mult": 10}, "scheduler": scheduler}
    model = _model(train=copy.deepcopy(train))
    own = [1e-3, 1e-2]
    lrs = []
    for it in range(1, 8):
        model.update_learning_rate(it, warmup_iter=4)
        lrs.append([g["lr"] for g in model.optimizer_g.param_groups])
        if it == 2:  # resuming from this iteration's state continues the same ramp
            resumed = _model(train=copy.deepcopy(train))
            resumed.resume_training({"optimizers": [model.optimizer_g.state_dict()],
                                     "schedulers": [model.schedulers[0].state_dict()]})
    for it, got in enumerate(lrs, 1):
        assert got == pytest.approx([lr * min(it, 4) / 4 for lr in own], rel=1e-6), it
    # basicsr's own warmup leaves MultiStepRestartLR at 3/4 of the lr after it (the bug fixed here)
    for it in range(3, 8):
        resumed.update_learning_rate(it, warmup_iter=4)
    assert [g["lr"] for g in resumed.optimizer_g.param_groups] == pytest.approx(lrs[-1], rel=1e-6)


def _fake_validation(model, monkeypatch, psnr, it, name="val_set"):
    """Run the model's nondist_validation with basicsr's part replaced by a fixed PSNR."""
    monkeypatch.setattr(SRModel, "nondist_validation",
                        lambda self, *a: setattr(self, "metric_results", {"psnr": psnr}))
    loader = SimpleNamespace(dataset=SimpleNamespace(opt={"name": name}))
    model.nondist_validation(loader, it, None, False)


def test_rollback_restores_best_weights_and_lowers_lr(monkeypatch, warnings_log):
    model = _model(train={"rollback": {"drop_db": 1.0, "lr_factor": 0.5, "max_rollbacks": 1},
                          "scheduler": {"type": "CosineAnnealingRestartLR", "periods": [8]},
                          "optim_g": {"type": "Adam", "lr": 1e-3, "adder_lr_mult": 10}}, val=VAL)

    def cosine(it):  # the schedule's lr factor at iteration it, as basicsr steps it
        return 0.5 * (1 + math.cos(math.pi * (it - 1) / 8))

    def train(it):
        model.update_learning_rate(it)
        _step(model, it)

    train(1)
    _fake_validation(model, monkeypatch, 30.0, 1)  # the best so far: remembered
    best = _state(model)
    _fake_validation(model, monkeypatch, 20.0, 1, name="other_set")  # only the first set is watched
    for it in range(2, 4):
        train(it)
    assert not model.check_rollback(29.5, 3)  # 0.5 dB below: within drop_db
    _fake_validation(model, monkeypatch, 25.0, 3)  # collapse: back to iteration 1, lr halved
    _assert_same(_state(model), best)
    assert model.rollbacks == 1
    want = [lr * cosine(3) / 2 for lr in (1e-3, 1e-2)]  # the current lr halved, not iteration 1's
    assert [g["lr"] for g in model.optimizer_g.param_groups] == pytest.approx(want, rel=1e-6)
    assert any("validation PSNR fell from 30.0000 dB (iteration 1) to 25.0000 dB: restored the weights of "
               f"iteration 1, learning rate x0.5 -> {want[0]:.3g}, {want[1]:.3g} (rollback 1/1)" in w
               for w in warnings_log)
    model.update_learning_rate(4)  # the scheduler recomputes from base_lrs: the halving stays
    want = [lr * cosine(4) / 2 for lr in (1e-3, 1e-2)]
    assert [g["lr"] for g in model.optimizer_g.param_groups] == pytest.approx(want, rel=1e-6)
    _step(model, 4)
    assert not model.check_rollback(float("nan"), 4)  # max_rollbacks reached: warns, goes on
    assert model.rollbacks == 1 and "max_rollbacks (1) reached" in warnings_log[-1]


def test_defaults():
    model = _model()
    clip = model.grad_clipper
    assert (model.max_skips, clip.mode, clip.factor, clip.warmup, model._rollback) == (20, "auto", 5.0, 50, None)
    assert _model(train={"grad_clip": None}).grad_clipper.mode is None
    rb = _model(train={"rollback": {}}, val=VAL)._rollback
    assert rb == {"drop_db": 1.0, "lr_factor": 0.5, "max_rollbacks": 3}


@pytest.mark.parametrize("train, top, message", [
    ({"grad_clip": -1}, {}, "train.grad_clip must be null/0 (off), 'auto' or a positive number, got -1"),
    ({"grad_clip": "always"}, {}, "train.grad_clip must be"),
    ({"grad_clip": True}, {}, "train.grad_clip must be"),
    ({"grad_clip_factor": 1}, {}, "train.grad_clip_factor must be a number > 1, got 1"),
    ({"grad_clip_warmup": 0}, {}, "train.grad_clip_warmup must be an integer >= 1, got 0"),
    ({"nonfinite_max_skips": 2.5}, {}, "train.nonfinite_max_skips must be an integer >= 1, got 2.5"),
    ({"rollback": {"drop_db": 0}}, {"val": VAL}, "train.rollback.drop_db must be a positive number, got 0"),
    ({"rollback": {"lr_factor": 1.5}}, {"val": VAL}, "train.rollback.lr_factor must be a number in (0, 1]"),
    ({"rollback": {"max_rollbacks": 0}}, {"val": VAL}, "train.rollback.max_rollbacks must be an integer >= 1"),
    ({"rollback": {"drop": 1}}, {"val": VAL}, "train.rollback: unknown option(s) drop"),
    ({"rollback": 2}, {"val": VAL}, "train.rollback must be a mapping"),
    ({"rollback": {}}, {}, "train.rollback needs validation"),
    ({"rollback": {}}, {"val": VAL, "datasets": {"train": {}}}, "train.rollback needs validation"),
])
def test_bad_option_values_raise(train, top, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _model(train=train, **top)
