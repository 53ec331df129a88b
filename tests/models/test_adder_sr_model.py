"""``AdderSRModel``: EMA that keeps BatchNorm statistics, distillation losses, SGD, and that an
AdderEDSR's loss falls within ~50 iterations at a fixed seed. In-process, tiny nets, CPU."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import addersr_plugin  # noqa: F401  (compat fixes first; registers archs and the model)
from basicsr.models.sr_model import SRModel  # noqa: E402  (after the compat fixes)
from addersr_plugin.models import AdderSRModel, DistillationError, ema_update
from sr_helpers import textured_image




SMALL = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "upscale": 2}
OURS = {"type": "AdderEDSR", **SMALL, "image_skip": True, "dc_free_head": True}


def _opt(network_g: dict, train: dict | None = None, **top) -> dict:
    opt = {
        "name": "t", "model_type": "AdderSRModel", "num_gpu": 0, "is_train": True, "dist": False, "scale": 2,
        "network_g": copy.deepcopy(network_g),
        "path": {"pretrain_network_g": None, "strict_load_g": True},
        "train": {"ema_decay": 0, "optim_g": {"type": "Adam", "lr": 1e-3},
                  "scheduler": {"type": "MultiStepLR", "milestones": [1000], "gamma": 0.5},
                  "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}},
    }
    opt["train"].update(train or {})
    opt.update(top)
    return opt


def _batch(n=4, size=24, seed=0):
    imgs = [torch.from_numpy(textured_image(size, size, seed + i)).permute(2, 0, 1).float() / 255 for i in range(n)]
    gt = torch.stack(imgs)
    lq = F.interpolate(gt, scale_factor=0.5, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    return {"lq": lq, "gt": gt}


def test_ema_averages_bn_running_statistics():
    torch.manual_seed(0)
    decay = 0.5
    model = AdderSRModel(_opt(OURS, {"ema_decay": decay}))
    bn = "body.0.unit1.norm"
    expected = {k: v.clone() for k, v in model.net_g_ema.state_dict().items() if k.startswith(bn)}
    for it in range(3):
        model.feed_data(_batch(seed=it))
        model.optimize_parameters(it + 1)
        live = model.net_g.state_dict()
        for k in expected:  # the recurrence, computed here independently of ema_update
            if expected[k].is_floating_point():
                expected[k] = decay * expected[k] + (1 - decay) * live[k]
            else:
                expected[k] = live[k].clone()
    ema = model.net_g_ema.state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(ema[k], v)
    assert ema[f"{bn}.num_batches_tracked"].item() == 3
    assert not torch.equal(ema[f"{bn}.running_var"], torch.ones_like(ema[f"{bn}.running_var"]))

    # basicsr's own SRModel leaves the EMA copy's BN statistics at their initial values:
    # the reason AdderSRModel exists (this is the behaviour the test guards against).
    torch.manual_seed(0)
    plain = SRModel(_opt(OURS, {"ema_decay": decay}, model_type="SRModel"))
    plain.feed_data(_batch())
    plain.optimize_parameters(1)
    assert torch.equal(plain.net_g_ema.state_dict()[f"{bn}.running_mean"], torch.zeros(8))


def test_ema_update_decay_zero_copies_everything():
    a, b = torch.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    b.train()
    b(torch.randn(4, 3, 5, 5) * 3 + 1)
    ema_update(a, b, 0.0)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


@pytest.fixture
def teacher_file(tmp_path):
    torch.manual_seed(1)
    from basicsr.archs.edsr_arch import EDSR

    teacher = EDSR(**SMALL)
    path = tmp_path / "teacher.pth"
    torch.save({"params": teacher.state_dict()}, path)
    return str(path), teacher.eval()


def _distill_opt(teacher_path: str, train: dict) -> dict:
    return _opt(OURS, train, network_t={"type": "EDSR", **SMALL},
                path={"pretrain_network_g": None, "strict_load_g": True, "pretrain_network_t": teacher_path})


def test_output_and_feature_distillation_losses(teacher_file):
    path, teacher = teacher_file
    torch.manual_seed(0)
    model = AdderSRModel(_distill_opt(path, {
        "distill_opt": {"type": "L1Loss", "loss_weight": 0.5, "reduction": "mean"},
        "feature_distill_opt": {"type": "MSELoss", "loss_weight": 2.0, "reduction": "mean",
                                "layers": [["body", "body"]]}}))
    data = _batch()
    student = copy.deepcopy(model.net_g)
    with torch.no_grad():  # the losses, computed here from independent copies of both nets
        s_body, t_body = {}, {}
        student.body.register_forward_hook(lambda m, i, o: s_body.__setitem__("x", o))
        teacher.body.register_forward_hook(lambda m, i, o: t_body.__setitem__("x", o))
        out_s, out_t = student(data["lq"]), teacher(data["lq"])
        want_distill = 0.5 * (out_s - out_t).abs().mean()
        want_feat = 2.0 * ((s_body["x"] - t_body["x"]) ** 2).mean()
        want_pix = (out_s - data["gt"]).abs().mean()
    t_before = copy.deepcopy(model.net_t.state_dict())
    model.feed_data(data)
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert log["l_distill"] == pytest.approx(want_distill.item(), rel=1e-5)
    assert log["l_feat"] == pytest.approx(want_feat.item(), rel=1e-5)
    assert log["l_pix"] == pytest.approx(want_pix.item(), rel=1e-5)
    for k, v in model.net_t.state_dict().items():  # the teacher is frozen
        assert torch.equal(v, t_before[k]), k
    assert not model.net_t.training


def test_distillation_bad_inputs(teacher_file, tmp_path):
    path, _ = teacher_file
    with pytest.raises(DistillationError, match="teacher checkpoint not found: .*nope.pth. When resuming, basicsr "
                                                "rewrites pretrain_network_t unless path.ignore_resume_networks"):
        AdderSRModel(_distill_opt(str(tmp_path / "nope.pth"), {}))
    with pytest.raises(DistillationError, match="the student has no module 'trunk'"):
        AdderSRModel(_distill_opt(path, {"feature_distill_opt": {"type": "L1Loss", "layers": [["trunk", "body"]]}}))
    with pytest.raises(DistillationError, match="layers must be a list of \\[student_module, teacher_module\\] pairs"):
        AdderSRModel(_distill_opt(path, {"feature_distill_opt": {"type": "L1Loss", "layers": ["body"]}}))
    with pytest.raises(DistillationError, match="need a teacher: set network_t and path.pretrain_network_t"):
        AdderSRModel(_opt(OURS, {"distill_opt": {"type": "L1Loss"}}))
    wrong = _distill_opt(path, {"distill_opt": {"type": "L1Loss"}})
    wrong["network_t"]["num_feat"] = 16
    with pytest.raises(DistillationError, match="does not match network_t"):
        AdderSRModel(wrong)


def test_sgd_and_unknown_optimizer():
    model = AdderSRModel(_opt(OURS, {"optim_g": {"type": "SGD", "lr": 0.01, "momentum": 0.9}}))
    assert isinstance(model.optimizer_g, torch.optim.SGD)
    with pytest.raises(NotImplementedError, match="optimizer RMSprop is not supported; use one of Adam, AdamW, SGD"):
        AdderSRModel(_opt(OURS, {"optim_g": {"type": "RMSprop", "lr": 0.01}}))


def test_adder_lr_mult_gives_adder_weights_their_own_learning_rate():
    model = AdderSRModel(_opt(OURS, {"optim_g": {"type": "Adam", "lr": 1e-3, "adder_lr_mult": 10}}))
    others, adder = model.optimizer_g.param_groups
    assert adder["lr"] == pytest.approx(1e-2) and others["lr"] == pytest.approx(1e-3)
    weights = {id(m.weight) for m in model.net_g.modules() if type(m).__name__ == "AdderConv2d"}
    assert {id(p) for p in adder["params"]} == weights and len(weights) == 3  # 2 per block + after body
    assert not weights & {id(p) for p in others["params"]}
    with pytest.raises(ValueError, match="adder_lr_mult must be positive, got 0.0"):
        AdderSRModel(_opt(OURS, {"optim_g": {"type": "Adam", "lr": 1e-3, "adder_lr_mult": 0}}))


def _train_losses(network_g: dict, iters: int, lr: float) -> list[float]:
    torch.manual_seed(0)
    model = AdderSRModel(_opt(network_g, {"optim_g": {"type": "Adam", "lr": lr, "betas": [0.9, 0.99]}}))
    data = [_batch(n=4, size=32, seed=10 * i) for i in range(4)]
    losses = []
    for it in range(iters):
        model.feed_data(data[it % len(data)])
        model.optimize_parameters(it + 1)
        losses.append(model.get_current_log()["l_pix"])
    return losses


@pytest.mark.parametrize("network_g, drop", [
    ({"type": "AdderEDSR", **SMALL, "image_skip": False, "dc_free_head": False}, 0.5),  # the paper's: must halve
    (OURS, 0.1),  # ours starts at bicubic (image skip): must fall 10 % below bicubic's error
], ids=["paper", "ours"])
def test_adder_edsr_loss_falls_within_50_iterations(network_g, drop):
    losses = _train_losses(network_g, 50, 2e-3)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < (1 - drop) * first, (first, last)
