"""The measurements of ``profile_train_step.py``: BasicSR models, timed iterations, profiler tables.

A training iteration here is what ``basicsr train`` runs per batch once the data loader has
produced it: ``update_learning_rate``, ``feed_data``, ``optimize_parameters`` (data loading and
logging are left out; they are the same for both networks). The models are built by BasicSR's
``build_model`` from option dicts, so AdderEDSR trains through ``AdderSRModel`` with the shipped
recipe (``addersr_plugin/recipes/adder_edsr.yml``) and EDSR through BasicSR's own ``SRModel``.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

import addersr_plugin  # noqa: F401  (basicsr compat fixes; registers the archs and AdderSRModel)
from addersr_plugin import recipes
from addersr_plugin.models import adder_sr_model
from addersr_plugin.nn import adder_conv
from basicsr.models import build_model  # after addersr_plugin: it needs the compat fixes

ARCHS = ("AdderEDSR", "EDSR")
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}

# Self CPU time of every profiled event goes to one of these (docs/benchmarks.md, "Training step").
CATEGORIES = ("adder op forward", "adder op backward", "conv forward", "conv backward", "BN",
              "ReLU/shortcut adds", "image skip/bicubic/mean shift", "adaptive-LR hook", "loss",
              "optimizer step", "model checks (finite, clip, BN snapshot)", "copies/layout changes", "other")

# Labels of the record_function scopes this file opens around code it does not own.
ALR_SCOPE = "addersr.alr_hook"
CHECK_SCOPE = "addersr.model_checks"
MODULE_SCOPE = "nn.Module: "


def model_options(arch: str, num_feat: int, num_block: int, scale: int, lr: float = 1e-4) -> dict:
    """The option dict ``basicsr train`` would hold for the shipped AdderEDSR recipe or BasicSR's EDSR."""
    net = {"type": arch, "num_in_ch": 3, "num_out_ch": 3, "num_feat": num_feat, "num_block": num_block,
           "upscale": scale, "res_scale": 1, "img_range": 255.0, "rgb_mean": [0.4488, 0.4371, 0.4040]}
    opt = {
        "name": f"profile_{arch}", "model_type": "SRModel", "num_gpu": 0, "is_train": True, "dist": False,
        "scale": scale, "network_g": net,
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        # As the shipped option files: no EMA, Adam (0.9, 0.99), MultiStepLR, L1.
        "train": {"ema_decay": 0, "optim_g": {"type": "Adam", "lr": lr, "weight_decay": 0, "betas": [0.9, 0.99]},
                  "scheduler": {"type": "MultiStepLR", "milestones": [200000], "gamma": 0.5},
                  "total_iter": 300000, "warmup_iter": -1,
                  "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}},
    }
    if arch == "AdderEDSR":
        recipes.apply(opt, "adder_edsr")  # model_type AdderSRModel, the arch's flags, adder_lr_mult
    return opt


def make_batch(n: int, lr_size: int, scale: int, seed: int = 0) -> Dict[str, torch.Tensor]:
    """``n`` smooth random HR patches in [0, 1] and their bicubic LR (content does not change the cost)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, lr_size // 4 + 1, lr_size // 4 + 1, generator=g)
    gt = F.interpolate(coarse, size=(lr_size * scale,) * 2, mode="bicubic", align_corners=False).clamp(0, 1)
    lq = F.interpolate(gt, scale_factor=1 / scale, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    return {"lq": lq, "gt": gt}


class Trainer:
    """One BasicSR model, its batch in one memory layout, and its iteration counter."""

    def __init__(self, arch: str, layout: str, opt: dict, batch: Dict[str, torch.Tensor], seed: int = 0):
        torch.manual_seed(seed)
        self.arch, self.layout = arch, layout
        self.model = build_model(copy.deepcopy(opt))
        fmt = LAYOUTS[layout]
        # channels_last: parameters and batch in that layout, as `net.to(memory_format=...)` does.
        self.model.net_g.to(memory_format=fmt)
        self.batch = {k: v.contiguous(memory_format=fmt) for k, v in batch.items()}
        self.iter = 0

    def step(self) -> None:
        self.iter += 1
        self.model.update_learning_rate(self.iter, warmup_iter=-1)
        self.model.feed_data(self.batch)
        self.model.optimize_parameters(self.iter)


def time_interleaved(trainers: List[Trainer], rounds: int, iters: int, warmup: int) -> Dict[str, dict]:
    """Seconds per iteration of each trainer: ``rounds`` rounds, each running every trainer for
    ``iters`` iterations in turn (so drifts hit all alike), after ``warmup`` untimed iterations each."""
    for t in trainers:
        for _ in range(warmup):
            t.step()
    samples = defaultdict(list)
    for _ in range(rounds):
        for t in trainers:
            for _ in range(iters):
                t0 = time.perf_counter()
                t.step()
                samples[(t.arch, t.layout)].append(time.perf_counter() - t0)
    return {f"{a}/{lay}": {"median_s": statistics.median(s), "min_s": min(s), "max_s": max(s), "n": len(s)}
            for (a, lay), s in samples.items()}


# --------------------------------------------------------------------------- profiling

@contextlib.contextmanager
def _scopes(model):
    """Labels for the profiler: every module's forward, the adaptive-LR hook and the model's checks.

    Global module hooks open a ``record_function`` per module call; the ALR hook and the
    stability helpers are wrapped where their callers look them up (module globals), so the
    code under test is unchanged outside the profiled iterations.
    """
    stack = []

    def pre(module, _args):
        rf = torch.profiler.record_function(MODULE_SCOPE + type(module).__name__)
        rf.__enter__()
        stack.append(rf)

    def post(_module, _args, _out):
        stack.pop().__exit__(None, None, None)

    def scoped(fn, label):
        def wrapper(*a, **k):
            with torch.profiler.record_function(label):
                return fn(*a, **k)
        return wrapper

    handles = [torch.nn.modules.module.register_module_forward_pre_hook(pre),
               torch.nn.modules.module.register_module_forward_hook(post)]
    patched = [(adder_conv, "adaptive_lr_scale"), (adder_sr_model, "nonfinite"),
               (adder_sr_model, "snapshot_buffers")]
    saved = [(obj, name, getattr(obj, name)) for obj, name in patched if hasattr(obj, name)]
    for obj, name, fn in saved:
        setattr(obj, name, scoped(fn, ALR_SCOPE if name == "adaptive_lr_scale" else CHECK_SCOPE))
    clipper = getattr(model, "grad_clipper", None)
    if clipper is not None:
        clipper.clip = scoped(clipper.clip, CHECK_SCOPE)
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for obj, name, fn in saved:
            setattr(obj, name, fn)
        if clipper is not None:
            del clipper.clip


# How an event's self time is categorised, in three tiers (the first that matches wins):
# 1. a copy or layout change, by its own name, wherever it runs: also the ``.contiguous()`` an op
#    makes of a channels_last input, which is layout work, not the op's arithmetic;
# 2. the nearest ancestor (or the event itself) that is an op or scope of a category: the adder op
#    and its kernels' own calls, a convolution, BN, the optimizer, the wrapped hooks and checks;
# 3. the nearest module scope or autograd node that tells what the code serves (Python overhead of
#    a module's forward, the backward of an elementwise op), then elementwise ops by their module.
_OPS = (
    (lambda n: n.startswith("addersr::adder_conv2d") and "grad" in n, "adder op backward"),
    (lambda n: n.startswith("addersr::adder_conv2d"), "adder op forward"),
    (lambda n: n == ALR_SCOPE, "adaptive-LR hook"),
    (lambda n: n == CHECK_SCOPE, "model checks (finite, clip, BN snapshot)"),
    (lambda n: n.startswith("Optimizer."), "optimizer step"),
    (lambda n: n == "aten::convolution_backward", "conv backward"),
    (lambda n: n in ("aten::convolution", "aten::conv2d"), "conv forward"),
    (lambda n: n.startswith("aten::") and "batch_norm" in n, "BN"),
    (lambda n: n.startswith("aten::upsample_bicubic2d"), "image skip/bicubic/mean shift"),
    (lambda n: n == "aten::l1_loss", "loss"),
)
_COPIES = ("aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::to", "aten::empty_like",
           "aten::_copy_from", "aten::resize_", "aten::as_strided_")
_SCOPES = (  # module scopes (forward) and autograd nodes (backward), by substring
    ("GeneratedBackwardFor_addersr_adder_conv2d", lambda n: "adder op backward" if n.endswith("Backward")
     else "adder op forward"),
    (MODULE_SCOPE + "AdderConv2d", "adder op forward"),
    (MODULE_SCOPE + "BatchNorm2d", "BN"), ("NativeBatchNormBackward", "BN"),
    (MODULE_SCOPE + "Conv2d", "conv forward"), (MODULE_SCOPE + "DCFreeConv2d", "conv forward"),
    ("ConvolutionBackward", "conv backward"),
    (MODULE_SCOPE + "ReLU", "ReLU/shortcut adds"), ("ReluBackward", "ReLU/shortcut adds"),
    ("ThresholdBackward", "ReLU/shortcut adds"),
    (MODULE_SCOPE + "L1Loss", "loss"), ("L1LossBackward", "loss"), ("SgnBackward", "loss"),
    ("UpsampleBicubic2DBackward", "image skip/bicubic/mean shift"),
)
_ELEMENTWISE = ("aten::add", "aten::add_", "aten::mul", "aten::mul_", "aten::relu", "aten::relu_", "aten::clamp_min",
                "aten::clamp_min_", "aten::threshold_backward", "aten::sub", "aten::sub_", "aten::div", "aten::div_",
                "aten::neg", "aten::sum")
_BLOCKS = ("ShortcutAdderBlock", "AdderResidualBlock", "ResidualBlockNoBN")
_BLOCK_NODES = ("AddBackward", "MulBackward")
_TOP = ("AdderEDSR", "EDSR", "MeanShift")
_TOP_NODES = ("SubBackward", "DivBackward")


def categorize(event) -> str:
    """The category of ``event``'s self time (the tiers above)."""
    chain, e = [], event
    while e is not None:
        chain.append(e.name)
        e = e.cpu_parent
    if event.name in _COPIES:
        return "copies/layout changes"
    for name in chain:
        for test, category in _OPS:
            if test(name):
                return category
    for name in chain:
        for key, category in _SCOPES:
            if key in name and (not name.startswith(MODULE_SCOPE) or name == key):
                return category(name) if callable(category) else category
    if event.name in _ELEMENTWISE:
        module = next((n[len(MODULE_SCOPE):] for n in chain if n.startswith(MODULE_SCOPE)), None)
        node = next((n for n in chain if n.startswith("autograd::engine::evaluate_function: ")), "")
        if module in _BLOCKS or any(k in node for k in _BLOCK_NODES):
            return "ReLU/shortcut adds"
        if module in _TOP or any(k in node for k in _TOP_NODES):
            return "image skip/bicubic/mean shift"
    return "other"


def profile(trainer: Trainer, iters: int) -> dict:
    """Self CPU time per category and the heaviest ops of ``iters`` iterations, in ms per iteration."""
    with _scopes(trainer.model):
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(iters):
                trainer.step()
    events = [e for e in prof.events() if not e.is_async]
    cats: Dict[str, float] = defaultdict(float)
    ops: Dict[tuple, float] = defaultdict(float)
    for e in events:
        us = e.self_cpu_time_total
        if us <= 0:
            continue
        c = categorize(e)
        cats[c] += us
        ops[(c, e.name)] += us
    total = sum(cats.values())
    top = sorted(ops.items(), key=lambda kv: -kv[1])[:25]
    return {
        "iterations": iters,
        "total_self_ms_per_iter": total / 1000 / iters,
        "categories_ms_per_iter": {c: cats.get(c, 0.0) / 1000 / iters for c in CATEGORIES},
        "top_ops_ms_per_iter": [{"category": c, "op": n, "ms": us / 1000 / iters} for (c, n), us in top],
    }


def profile_all(trainers: List[Trainer], iters: int) -> Dict[str, dict]:
    return {f"{t.arch}/{t.layout}": profile(t, iters) for t in trainers}


def build_trainers(archs, layouts, num_feat: int, num_block: int, scale: int, batch_size: int,
                   lr_size: int, seed: int = 0, opt_hook: Optional[Callable[[dict], None]] = None) -> List[Trainer]:
    batch = make_batch(batch_size, lr_size, scale, seed)
    out = []
    for layout in layouts:
        for arch in archs:
            opt = model_options(arch, num_feat, num_block, scale)
            if opt_hook is not None:
                opt_hook(opt)
            out.append(Trainer(arch, layout, opt, batch, seed))
    return out


__all__ = ["ARCHS", "CATEGORIES", "LAYOUTS", "Trainer", "build_trainers", "categorize", "make_batch",
           "model_options", "profile", "profile_all", "time_interleaved"]
