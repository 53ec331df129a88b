"""``AdderSRModel``: BasicSR's ``SRModel`` with what adder networks need to train well.

``model_type: AdderSRModel`` in an option file. Without the options below it trains exactly as
``SRModel`` does. It adds:

* **EMA that includes BatchNorm statistics.** basicsr 1.4.2's ``model_ema`` averages parameters
  only, so the running mean/var of every BN in ``net_g_ema`` would stay at their initial values
  (0 and 1) and the EMA model would be useless for adder networks, which have a BN after every
  adder layer. Here floating-point buffers are averaged with the same decay as the parameters
  and integer buffers (``num_batches_tracked``) copied. ``train.ema_decay`` as in BasicSR.
* **Distillation from a trained teacher** (ours; PKKD / EAdderSR do this for adder nets):
  ``network_t`` + ``path.pretrain_network_t`` (+ ``param_key_t``, default ``params_ema`` when
  present, else ``params``) build a frozen teacher; ``train.distill_opt`` (any BasicSR loss,
  e.g. ``{type: L1Loss, loss_weight: 1.0}``) pulls the student's output towards the teacher's,
  and ``train.feature_distill_opt`` with ``layers: [[student_module, teacher_module], ...]``
  does the same for intermediate features (same shapes needed; the twins have them).
  Set ``path.ignore_resume_networks: [network_t]`` so that ``--auto_resume`` keeps the teacher
  path (basicsr would otherwise point it at a ``net_t_<iter>.pth`` that is never saved).
* **Optimizers beyond Adam**: ``optim_g.type`` ``Adam``, ``AdamW`` or ``SGD`` (AdderNet trains
  with SGD + momentum, where its adaptive learning rate matters; under Adam it is nearly a no-op).
* **A learning-rate multiplier for adder weights**, ``optim_g.adder_lr_mult`` (default 1). Adam
  moves every weight by about ``lr`` per step whatever its gradient, and adder weights start at
  N(0, 1) while the features they are compared with (``|x - w|``) are several times larger: at the
  CNN's learning rate they barely leave their initial values (docs/quality.md measures this).

Stability (``train:`` options; ``models/stability.py``; docs/training.md "Stability options"). A
16-block AdderEDSR collapsed mid-training (validation 38.26 -> 24.55 dB), and one NaN batch used
to stop the run:

* **Non-finite guard**, always on: a batch whose input, loss or gradient holds a NaN/inf never
  reaches the weights, the BN statistics or the EMA (BN buffers are snapshot before the forward
  and restored, since train-mode BN updates them before the loss is known); it is counted
  (``skipped_steps``, ``l_skipped`` in the log) and logged. ``nonfinite_max_skips`` (20)
  consecutive skips raise ``FloatingPointError``.
* **Gradient-norm clipping**, ``grad_clip`` (default ``auto``: ``grad_clip_factor`` (5) x the
  running mean of the norm after ``grad_clip_warmup`` (50) steps; a number: a fixed max norm;
  null/0: off). The statistic is saved in the training state (resumes keep it); ``grad_norm`` and
  ``clipped`` are logged.
* **Linear warmup**, basicsr's ``warmup_iter``, fixed: basicsr overwrites the lr and its
  MultiStepRestartLR continues from the last warm value, so the lr stayed at (W-1)/W of its value
  for the whole run. Here warmup scales each group's scheduled lr by k/W and is undone next step.
* **Rollback on validation collapse**, ``rollback: {drop_db: 1.0, lr_factor: 0.5,
  max_rollbacks: 3}`` (off by default): a CPU copy of the best-PSNR weights (net_g, net_g_ema,
  optimizer) is restored when validation PSNR falls more than ``drop_db`` below the best, and
  the learning rates are multiplied by ``lr_factor`` for good.

Mixed precision (``models/amp.py``; docs/training.md "Mixed precision"): ``use_amp: true`` trains
under ``torch.autocast``, in float16 (with a GradScaler) or, with ``amp_bf16: true``, bfloat16 (the
only choice on the CPU); the names are traiNNer-redux's. Validation stays in float32. The gradients
are unscaled before clipping and the non-finite check, and a step the GradScaler skips because its
scaled float16 gradients overflowed is not a non-finite skip (``amp_skipped`` in the log).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger

from ..checkpoint_io import LoadError, checkpoint_state, read_checkpoint, strict_load

from .amp import MixedPrecision, parse_amp_options
from .stability import (GradClipper, nonfinite, parse_options, restore_buffers, scale_learning_rates,
                        snapshot_buffers, to_cpu)

OPTIMIZERS = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "SGD": torch.optim.SGD}
STATE_KEY = "addersr_stability"  # our key in basicsr's training state (<iter>.state)


class DistillationError(LoadError):
    """The distillation options cannot work (missing teacher, mismatched features)."""


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * net`` for parameters and floating-point buffers.

    Integer buffers (BN's ``num_batches_tracked``) are copied. ``decay = 0`` copies everything.
    """
    net_params = dict(net.named_parameters())
    for name, p in ema.named_parameters():
        p.mul_(decay).add_(net_params[name].detach(), alpha=1 - decay)
    net_buffers = dict(net.named_buffers())
    for name, b in ema.named_buffers():
        src = net_buffers[name]
        if b.is_floating_point():
            b.mul_(decay).add_(src, alpha=1 - decay)
        else:
            b.copy_(src)


class AdderSRModel(SRModel):
    """SRModel + EMA with BN buffers + distillation + SGD/AdamW + stability (see the module docstring)."""

    _rollback = None  # also read by validation in test mode, where init_training_settings never runs

    def init_training_settings(self):
        train_opt = self.opt["train"]
        self._init_stability(parse_options(train_opt))
        self.amp = MixedPrecision(self.device.type, parse_amp_options(train_opt, self.device))
        self.net_t = None
        if self.opt.get("network_t"):
            self.net_t = self._build_teacher()
        elif train_opt.get("distill_opt") or train_opt.get("feature_distill_opt"):
            raise DistillationError("train.distill_opt/feature_distill_opt need a teacher: set network_t "
                                    "and path.pretrain_network_t")
        super().init_training_settings()
        self.cri_distill = build_loss(train_opt["distill_opt"]).to(self.device) \
            if train_opt.get("distill_opt") else None
        self.cri_feat = None
        self._features = {}
        feat_opt = train_opt.get("feature_distill_opt")
        if feat_opt:
            feat_opt = dict(feat_opt)
            pairs = feat_opt.pop("layers", None)
            if not pairs or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
                raise DistillationError("train.feature_distill_opt.layers must be a list of "
                                        "[student_module, teacher_module] pairs")
            self.feature_pairs = [tuple(p) for p in pairs]
            self.cri_feat = build_loss(feat_opt).to(self.device)
            self._hook_features()
        if self.net_t is not None and self.cri_distill is None and self.cri_feat is None:
            get_root_logger().warning("network_t is set but neither distill_opt nor feature_distill_opt: "
                                      "the teacher is loaded and not used")

    # ---- teacher ---------------------------------------------------------------------------

    def _build_teacher(self) -> torch.nn.Module:
        path = self.opt["path"].get("pretrain_network_t")
        if not path:
            raise DistillationError("network_t is set but path.pretrain_network_t (the trained teacher) is not")
        if not os.path.isfile(path):
            raise DistillationError(
                f"teacher checkpoint not found: {path}. When resuming, basicsr rewrites "
                "pretrain_network_t unless path.ignore_resume_networks lists network_t")
        net_t = build_network(self.opt["network_t"]).to(self.device)
        try:  # the one checkpoint reader of the package (checkpoint_io), its errors as DistillationError
            state, key = checkpoint_state(read_checkpoint(path, "teacher checkpoint"), path,
                                          self.opt["path"].get("param_key_t"))
            strict_load(net_t, state, path, "network_t")
        except LoadError as exc:
            raise DistillationError(str(exc)) from exc
        net_t.eval()
        for p in net_t.parameters():
            p.requires_grad_(False)
        get_root_logger().info(f"Teacher {self.opt['network_t']['type']} loaded from {path} [{key}]")
        return net_t

    def _hook_features(self) -> None:
        student = dict(self.get_bare_model(self.net_g).named_modules())
        teacher = dict(self.net_t.named_modules())
        for s_name, t_name in self.feature_pairs:
            for name, modules, who in ((s_name, student, "student"), (t_name, teacher, "teacher")):
                if name not in modules:
                    raise DistillationError(f"feature_distill_opt: the {who} has no module {name!r}")
            modules_hooks = ((student[s_name], ("s", s_name)), (teacher[t_name], ("t", t_name)))
            for module, key in modules_hooks:
                module.register_forward_hook(lambda _m, _i, out, key=key: self._features.__setitem__(key, out))

    # ---- optimisation ----------------------------------------------------------------------

    def setup_optimizers(self):
        train_opt = self.opt["train"]
        optim_opt = dict(train_opt["optim_g"])
        mult = float(optim_opt.pop("adder_lr_mult", 1.0))
        if not mult > 0:
            raise ValueError(f"train.optim_g.adder_lr_mult must be positive, got {mult}")
        from ..nn import AdderConv2d

        net = self.get_bare_model(self.net_g)
        adder = {id(m.weight) for m in net.modules() if isinstance(m, AdderConv2d)}
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if id(p) not in adder]}]
        if adder:
            groups.append({"params": [p for p in params if id(p) in adder], "lr": optim_opt["lr"] * mult})
        optim_type = optim_opt.pop("type")
        self.optimizer_g = self.get_optimizer(optim_type, groups, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        if optim_type not in OPTIMIZERS:
            raise NotImplementedError(f"optimizer {optim_type} is not supported; use one of {', '.join(OPTIMIZERS)}")
        return OPTIMIZERS[optim_type](params, lr, **kwargs)

    def model_ema(self, decay=0.999):
        ema_update(self.net_g_ema, self.get_bare_model(self.net_g), decay)

    def distillation_losses(self, loss_dict: OrderedDict):
        """The distillation terms for the current batch (teacher run without gradients)."""
        total = 0
        if self.net_t is None or (self.cri_distill is None and self.cri_feat is None):
            return total
        with torch.no_grad():
            out_t = self.net_t(self.lq)
        if self.cri_distill is not None:
            l_distill = self.cri_distill(self.output, out_t)
            total = total + l_distill
            loss_dict["l_distill"] = l_distill
        if self.cri_feat is not None:
            l_feat = 0
            for s_name, t_name in self.feature_pairs:
                fs, ft = self._features[("s", s_name)], self._features[("t", t_name)]
                if fs.shape != ft.shape:
                    raise DistillationError(f"feature_distill_opt: {s_name} {tuple(fs.shape)} and {t_name} "
                                            f"{tuple(ft.shape)} differ in shape")
                l_feat = l_feat + self.cri_feat(fs, ft)
            total = total + l_feat
            loss_dict["l_feat"] = l_feat
        return total

    def _losses(self):
        loss_dict = OrderedDict()
        l_total = 0
        if self.cri_pix:
            l_pix = self.cri_pix(self.output, self.gt)
            l_total = l_total + l_pix
            loss_dict["l_pix"] = l_pix
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            if l_percep is not None:
                l_total = l_total + l_percep
                loss_dict["l_percep"] = l_percep
            if l_style is not None:
                l_total = l_total + l_style
                loss_dict["l_style"] = l_style
        return l_total + self.distillation_losses(loss_dict), loss_dict

    # ---- stability (models/stability.py) ---------------------------------------------------

    def _init_stability(self, stab: dict) -> None:
        self.max_skips = stab["max_skips"]
        self.grad_clipper = GradClipper(stab["clip"], stab["clip_factor"], stab["clip_warmup"])
        self.skipped_steps = self._consecutive_skips = self.rollbacks = 0
        self.log_dict = OrderedDict()
        self._rollback, self._best, self._rollback_set = stab["rollback"], None, None
        if self._rollback is None:
            return
        metrics = (self.opt.get("val") or {}).get("metrics") or {}
        datasets = self.opt.get("datasets")
        if "psnr" not in metrics or (datasets is not None and not any(k.startswith("val") for k in datasets)):
            raise ValueError("train.rollback needs validation: a val dataset (datasets.val) and a metric "
                             "named psnr (val.metrics.psnr); set train.rollback: null or add them")
        if self.opt.get("dist"):  # validation runs on rank 0 only: a rollback there would desync the ranks
            raise ValueError("train.rollback is not supported with distributed training (--launcher)")

    def _any_rank(self, flag: bool) -> bool:
        """``flag`` or'ed over DDP ranks: every rank must skip the same step, or the others would
        wait for its gradients forever."""
        if not self.opt.get("dist"):
            return flag
        t = torch.tensor(float(flag), device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        # Non-finite data would poison the BN statistics in the forward: skip before running it.
        bad = nonfinite(lq=self.lq, gt=getattr(self, "gt", None))
        if self._any_rank(bool(bad)):
            return self._skip_step(current_iter, f"non-finite values in the input ({'/'.join(bad) or 'another rank'})")
        buffers = snapshot_buffers(self.net_g)
        with self.amp.autocast():  # the losses too: they read the autocast features of distillation
            self.output = self.net_g(self.lq)
            l_total, loss_dict = self._losses()
        finite = bool(torch.isfinite(l_total))
        if self._any_rank(not finite):
            where = "" if not finite else " on another rank"
            return self._skip_step(current_iter, f"the loss is {l_total.item()}{where} (input finite)", buffers,
                                   loss_dict)
        self.amp.backward(l_total, self.optimizer_g)  # unscaled gradients from here on
        norm = self.grad_clipper.clip([p for p in self.net_g.parameters() if p.grad is not None])
        if not math.isfinite(norm):  # grads are all-reduced: every DDP rank sees the same norm
            overflow = self.amp.overflowed()
            self.amp.skip()
            if overflow:  # the GradScaler's float16 overflow, not the training's: no skip counted
                self.optimizer_g.zero_grad()  # the forward was finite: its BN statistics stay
                self.log_dict = OrderedDict(self.log_dict, **self._counts())
                return None
            return self._skip_step(current_iter, f"the gradient norm is {norm} (loss {l_total.item():.4g}, "
                                   "input finite)", buffers, loss_dict)
        self.amp.step(self.optimizer_g)
        self._consecutive_skips = 0
        self.log_dict = self.reduce_loss_dict(loss_dict)
        self.log_dict.update(grad_norm=norm, **self._counts())
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _counts(self) -> dict:
        # Totals since the start (or resume): basicsr logs only every print_freq-th step's log_dict.
        return {"l_skipped": float(self.skipped_steps), "clipped": float(self.grad_clipper.clipped),
                **self.amp.log()}

    def _skip_step(self, current_iter, cause: str, buffers=None, loss_dict=None) -> None:
        if buffers is not None:
            restore_buffers(self.net_g, buffers)
        self.optimizer_g.zero_grad()
        self.skipped_steps += 1
        self._consecutive_skips += 1
        self.log_dict = OrderedDict(self.log_dict, **{k: v.item() for k, v in (loss_dict or {}).items()},
                                    **self._counts())
        get_root_logger().warning(
            f"iteration {current_iter}: step skipped, {cause}; weights, BN statistics and EMA unchanged "
            f"({self._consecutive_skips} consecutive, {self.skipped_steps} in all)")
        if self._consecutive_skips >= self.max_skips:
            raise FloatingPointError(
                f"{self._consecutive_skips} consecutive training steps skipped (iteration {current_iter}: {cause}; "
                "train.nonfinite_max_skips). Training diverged or the data hold NaN/inf: lower the learning "
                "rate (train.optim_g.lr), keep train.grad_clip on, check the data, then resume with "
                "--auto_resume: the last checkpoint is intact (skipped steps never reached the weights)")

    def update_learning_rate(self, current_iter, warmup_iter=-1):
        # basicsr's warmup overwrites each group's lr with initial_lr * k / W, and MultiStepRestartLR
        # then goes on from the last warm value: (W-1)/W of the lr for the rest of the run. Here the
        # warmup scales the scheduled lr by k / W and the previous step's factor is undone first
        # (stateless, so a resume in the middle of the warmup continues the same ramp).
        prev = current_iter - 1
        warm = [g for o in self.optimizers for g in o.param_groups]
        if 1 <= prev < warmup_iter:
            for group in warm:
                group["lr"] *= warmup_iter / prev
        super().update_learning_rate(current_iter, -1)
        if current_iter < warmup_iter:
            for group in warm:
                group["lr"] *= current_iter / warmup_iter

    def save_training_state(self, epoch, current_iter):
        super().save_training_state(epoch, current_iter)
        path = os.path.join(self.opt["path"]["training_states"], f"{current_iter}.state")
        if current_iter == -1 or not os.path.isfile(path):  # basicsr gave up writing it (and warned)
            return
        state = torch.load(path, map_location="cpu", weights_only=False)
        state[STATE_KEY] = {"clip": self.grad_clipper.state_dict(), "skipped_steps": self.skipped_steps,
                            "rollbacks": self.rollbacks, "amp": self.amp.state_dict()}
        torch.save(state, path + ".tmp")  # a kill now leaves the complete file basicsr wrote
        os.replace(path + ".tmp", path)

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        extra = resume_state.get(STATE_KEY)  # absent in states of older versions: fresh statistics
        if extra:
            self.grad_clipper.load_state_dict(extra["clip"])
            self.skipped_steps, self.rollbacks = int(extra["skipped_steps"]), int(extra["rollbacks"])
            self.amp.load_state_dict(extra.get("amp") or {})  # absent before mixed precision existed

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        name = dataloader.dataset.opt["name"]
        if self._rollback is not None and self.opt["is_train"] and hasattr(self, "metric_results"):
            self._rollback_set = self._rollback_set or name  # watch the first validation set only
            if name == self._rollback_set:
                self.check_rollback(float(self.metric_results["psnr"]), current_iter)

    def _snapshot(self) -> dict:
        snap = {"net_g": to_cpu(self.get_bare_model(self.net_g).state_dict()),
                "optimizer_g": to_cpu(self.optimizer_g.state_dict()), "clip": self.grad_clipper.state_dict()}
        if hasattr(self, "net_g_ema"):
            snap["net_g_ema"] = to_cpu(self.net_g_ema.state_dict())
        return snap

    def check_rollback(self, psnr: float, current_iter: int) -> bool:
        """After a validation: keep a copy of the best weights, or go back to them if PSNR collapsed.

        Returns True when it rolled back. A NaN PSNR counts as a collapse.
        """
        opt = self._rollback
        if not math.isnan(psnr) and (self._best is None or psnr > self._best[0]):
            self._best = (psnr, current_iter, self._snapshot())
            return False
        if self._best is None or psnr >= self._best[0] - opt["drop_db"]:
            return False
        best, best_iter, snap = self._best
        logger = get_root_logger()
        if self.rollbacks >= opt["max_rollbacks"]:
            logger.warning(f"iteration {current_iter}: validation PSNR {psnr:.4f} dB is {best - psnr:.2f} dB below "
                           f"the best ({best:.4f} dB); train.rollback.max_rollbacks ({opt['max_rollbacks']}) "
                           "reached, training goes on")
            return False
        # load_state_dict restores the best-time lrs too: keep the current ones, then scale them.
        lrs = [(g["lr"], g.get("initial_lr")) for g in self.optimizer_g.param_groups]
        self.get_bare_model(self.net_g).load_state_dict(snap["net_g"])
        if "net_g_ema" in snap:
            self.net_g_ema.load_state_dict(snap["net_g_ema"])
        self.optimizer_g.load_state_dict(snap["optimizer_g"])
        for group, (lr, initial) in zip(self.optimizer_g.param_groups, lrs):
            group["lr"] = lr
            if initial is not None:
                group["initial_lr"] = initial
        scale_learning_rates(self.optimizers, self.schedulers, opt["lr_factor"])
        self.grad_clipper.load_state_dict(dict(snap["clip"], clipped=self.grad_clipper.clipped))
        self.rollbacks += 1
        new_lr = ", ".join(f"{g['lr']:.3g}" for g in self.optimizer_g.param_groups)
        logger.warning(f"iteration {current_iter}: validation PSNR fell from {best:.4f} dB (iteration {best_iter}) "
                       f"to {psnr:.4f} dB: restored the weights of iteration {best_iter}, learning rate x"
                       f"{opt['lr_factor']} -> {new_lr} (rollback {self.rollbacks}/{opt['max_rollbacks']})")
        return True


__all__ = ["AdderSRModel", "DistillationError", "ema_update", "OPTIMIZERS"]
