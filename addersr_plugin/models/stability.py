"""Training-stability helpers of ``AdderSRModel`` (docs/training.md, "Stability options").

Option checks, the gradient-norm clipper, BatchNorm-buffer snapshots, CPU copies of state dicts
and the persistent learning-rate scaling used by the rollback. Only torch here: the model wires
them into BasicSR.
"""

from __future__ import annotations

import math

import torch

CLIP_MOMENTUM = 0.98  # running mean of the gradient norm: about the last 50 steps
ROLLBACK_DEFAULTS = {"drop_db": 1.0, "lr_factor": 0.5, "max_rollbacks": 3}


def _check(name: str, value, ok, want: str):
    # bool is an int to Python: `grad_clip: true` must not read as 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return value


def _positive(name, value):
    return float(_check(name, value, lambda v: 0 < v < math.inf, "a positive number"))


def _count(name, value):
    return int(_check(name, value, lambda v: v >= 1 and float(v).is_integer(), "an integer >= 1"))


def parse_options(train_opt: dict) -> dict:
    """The stability options of ``train:`` with their defaults; ValueError naming a bad one."""
    clip = train_opt.get("grad_clip", "auto")
    if clip is None or clip is False or (not isinstance(clip, (bool, str)) and clip == 0):
        clip = None
    elif clip != "auto":
        clip = float(_check("train.grad_clip", clip, lambda v: 0 < v < math.inf,
                            "null/0 (off), 'auto' or a positive number"))
    out = {
        "max_skips": _count("train.nonfinite_max_skips", train_opt.get("nonfinite_max_skips", 20)),
        "clip": clip,
        "clip_factor": float(_check("train.grad_clip_factor", train_opt.get("grad_clip_factor", 5.0),
                                    lambda v: 1 < v < math.inf, "a number > 1")),
        "clip_warmup": _count("train.grad_clip_warmup", train_opt.get("grad_clip_warmup", 50)),
        "rollback": None,
    }
    rollback = train_opt.get("rollback")
    if rollback is None or rollback is False:
        return out
    if rollback is True:
        rollback = {}
    if not isinstance(rollback, dict):
        raise ValueError(f"train.rollback must be a mapping such as {ROLLBACK_DEFAULTS} or null, got {rollback!r}")
    unknown = set(rollback) - set(ROLLBACK_DEFAULTS)
    if unknown:
        raise ValueError(f"train.rollback: unknown option(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(ROLLBACK_DEFAULTS)}")
    rb = {**ROLLBACK_DEFAULTS, **rollback}
    out["rollback"] = {
        "drop_db": _positive("train.rollback.drop_db", rb["drop_db"]),
        "lr_factor": float(_check("train.rollback.lr_factor", rb["lr_factor"], lambda v: 0 < v <= 1,
                                  "a number in (0, 1]")),
        "max_rollbacks": _count("train.rollback.max_rollbacks", rb["max_rollbacks"]),
    }
    return out


class GradClipper:
    """Clips the total gradient norm to a fixed value, or ('auto') to ``factor`` × its running mean.

    'auto' measures for ``warmup`` steps without clipping (plain mean), then keeps an EMA of
    momentum :data:`CLIP_MOMENTUM`. Each norm enters the mean capped at the threshold, so a spike
    raises the threshold by at most 2 % × (factor - 1) instead of loosening it for the next ~100
    steps, while a real, gradual growth of the gradient scale is still followed.
    """

    def __init__(self, mode, factor: float = 5.0, warmup: int = 50):
        self.mode, self.factor, self.warmup = mode, factor, warmup
        self.mean, self.count, self.clipped = 0.0, 0, 0

    def threshold(self) -> float:
        if self.mode is None:
            return math.inf
        if self.mode == "auto":
            return self.factor * self.mean if self.count >= self.warmup else math.inf
        return self.mode

    def clip(self, params) -> float:
        """Clips the gradients of ``params`` in place; returns their total norm before clipping.

        A non-finite norm changes no statistic (the caller skips that step).
        """
        limit = self.threshold()
        params = list(params)
        if math.isinf(limit):  # nothing to clip (off, or 'auto' in its warmup): the norm only
            # clip_grad_norm_ would still multiply every gradient by 1 (a pass over all of them).
            norm = float(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
        else:
            norm = float(torch.nn.utils.clip_grad_norm_(params, limit))  # fp32 grads
        if math.isfinite(norm):
            self.clipped += norm > limit
            if self.mode == "auto":
                self.count += 1
                m = min(CLIP_MOMENTUM, 1 - 1 / self.count)  # the plain mean until 1/(1-m) samples, then EMA
                self.mean = m * self.mean + (1 - m) * min(norm, limit)
        return norm

    def state_dict(self) -> dict:
        return {"mean": self.mean, "count": self.count, "clipped": self.clipped}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.count, self.clipped = float(state["mean"]), int(state["count"]), int(state["clipped"])


def snapshot_buffers(net: torch.nn.Module) -> list[torch.Tensor]:
    """Copies of every buffer: train-mode BN updates running_mean/var (and num_batches_tracked) in
    the forward, before any loss is known. They are small, so copying them every step is cheap."""
    return [b.detach().clone() for b in net.buffers()]


@torch.no_grad()
def restore_buffers(net: torch.nn.Module, snapshot: list[torch.Tensor]) -> None:
    for b, saved in zip(net.buffers(), snapshot):
        b.copy_(saved)


def _all_finite(t: torch.Tensor) -> bool:
    # One reduction instead of isfinite's elementwise passes: a NaN or an infinity anywhere makes
    # the sum non-finite, so a finite sum proves every element finite. Only a sum that overflowed
    # (finite elements beyond ~1e38 in all) needs the exact, slower check.
    if not t.is_floating_point() and not t.is_complex():
        return True
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def nonfinite(**tensors) -> list[str]:
    """Names of the tensors that hold a NaN or an infinity."""
    return [name for name, t in tensors.items() if t is not None and not _all_finite(t)]


def to_cpu(obj):
    """A deep copy of a (nested) state dict with every tensor on the CPU."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return type(obj)((k, to_cpu(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def scale_learning_rates(optimizers, schedulers, factor: float) -> None:
    """Multiplies every learning rate by ``factor`` for good.

    basicsr's schedulers recompute the lr every step: CosineAnnealingRestartLR from ``base_lrs``,
    MultiStepRestartLR from the current lr and, at restarts, from the group's ``initial_lr``
    (which basicsr's warmup reads too). All of them are scaled so the next step keeps the change.
    """
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
    for scheduler in schedulers:
        if hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]


__all__ = ["CLIP_MOMENTUM", "ROLLBACK_DEFAULTS", "GradClipper", "nonfinite", "parse_options", "restore_buffers",
           "scale_learning_rates", "snapshot_buffers", "to_cpu"]
