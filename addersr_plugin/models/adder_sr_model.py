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
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger

OPTIMIZERS = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "SGD": torch.optim.SGD}


class DistillationError(ValueError):
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
    """SRModel + EMA with BN buffers + distillation + SGD/AdamW (see the module docstring)."""

    def init_training_settings(self):
        train_opt = self.opt["train"]
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
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        key = self.opt["path"].get("param_key_t") or ("params_ema" if "params_ema" in ckpt else "params")
        if key not in ckpt:
            raise DistillationError(f"{path} has no {key!r}; it holds: {', '.join(map(str, ckpt))}")
        state = {k[7:] if k.startswith("module.") else k: v for k, v in ckpt[key].items()}
        try:
            net_t.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise DistillationError(f"{path} does not match network_t: {exc}") from exc
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

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
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
        l_total = l_total + self.distillation_losses(loss_dict)
        if not torch.isfinite(l_total):
            raise FloatingPointError(f"loss is {l_total.item()} at iteration {current_iter}; lower the learning "
                                     "rate (the last checkpoint is intact)")
        l_total.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)


__all__ = ["AdderSRModel", "DistillationError", "ema_update", "OPTIMIZERS"]
