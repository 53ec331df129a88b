"""Turning a trained float network into its integer-adder version, and measuring the result."""

from __future__ import annotations

import copy
import math
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from .calibrate import METHODS, CalibrationError, LayerStats, adder_layers, choose_grid, collect
from .block import InferenceResidualBlock, InferenceShortcutBlock, replaceable, residual_replaceable
from .layer import QuantAdderConv2d
from .power import replace_power_activations


def _set_child(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def convert(model: nn.Module, stats: Dict[str, LayerStats], folds: Dict[str, str], method: str,
            percentile: float = 99.99) -> nn.Module:
    """A copy of ``model`` (eval mode) with every AdderConv2d replaced by a QuantAdderConv2d on
    the grid ``method`` picks from ``stats``, each BN of ``folds`` folded (replaced by Identity)
    and each PowerActivation replaced by its three-pass inference version."""
    q = copy.deepcopy(model).eval()
    for name, layer in adder_layers(q).items():
        norm = q.get_submodule(folds[name]) if name in folds else None
        _set_child(q, name, QuantAdderConv2d.from_float(layer, choose_grid(stats[name], method, percentile), norm))
        if norm is not None:
            _set_child(q, folds[name], nn.Identity())
    return replace_power_activations(q)


def _replace_verified(q: nn.Module, names: List[str], make_fast, batches: Sequence[Tensor]) -> List[str]:
    """Replace each module ``names`` of ``q`` by ``make_fast(module)`` where that reproduces the
    module's output (to float32 rounding) on the inputs it sees for ``batches``."""
    inputs: Dict[str, List[Tensor]] = {name: [] for name in names}
    handles = [q.get_submodule(n).register_forward_pre_hook(lambda _m, a, n=n: inputs[n].append(a[0].clone()))
               for n in names]
    try:
        for x in batches[:2]:
            q(x)
    finally:
        for h in handles:
            h.remove()
    replaced = []
    for name in names:
        block = q.get_submodule(name)
        fast = make_fast(block)
        if inputs[name] and all(torch.allclose(fast(x.clone()), block(x), rtol=1e-5, atol=1e-5 * float(x.abs().max()))
                                for x in inputs[name]):
            _set_child(q, name, fast)
            replaced.append(name)
    return replaced


@torch.inference_mode()
def fuse_blocks(q: nn.Module, batches: Sequence[Tensor]) -> List[str]:
    """Replace each replaceable ShortcutAdderBlock of ``q`` by its inference version (shortcut and
    ReLU fused into the integer kernel, the rest in place), then each AdderEDSR residual block
    around two such units by its in-place version, keeping a replacement only if it reproduces
    the module's output on the inputs it sees for ``batches`` (to float32 rounding). Returns the
    names of the modules replaced."""
    fused = _replace_verified(q, [n for n, m in q.named_modules() if replaceable(m)], InferenceShortcutBlock,
                              batches)
    fused += _replace_verified(q, [n for n, m in q.named_modules() if residual_replaceable(m)],
                               InferenceResidualBlock, batches)
    return fused


def skeleton(model: nn.Module, folds: Dict[str, str]) -> nn.Module:
    """``model`` with empty integer layers in place (the structure a checkpoint is loaded into)."""
    for name, layer in adder_layers(model).items():
        _set_child(model, name, QuantAdderConv2d.like(layer, name in folds))
        if name in folds:
            _set_child(model, folds[name], nn.Identity())
    return replace_power_activations(model).eval()


def psnr(a: Tensor, b: Tensor, peak: float = 1.0) -> float:
    mse = float((a.double() - b.double()).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


@torch.inference_mode()
def fidelity(qmodel: nn.Module, refs: Sequence[Tensor], batches: Sequence[Tensor]) -> float:
    """Mean PSNR (dB, images in [0, 1]) of ``qmodel`` against the float outputs ``refs``."""
    vals = [psnr(qmodel(x).clamp(0, 1), r.clamp(0, 1)) for x, r in zip(batches, refs)]
    return sum(vals) / len(vals)


def quantize_model(model: nn.Module, calib: Sequence[Tensor], method: str = "auto", percentile: float = 99.99):
    """Quantize a trained float network's adder layers (Python API of ``addersr quantize``).

    Args:
        model: any network whose adder layers are ``AdderConv2d`` modules (e.g. AdderEDSR).
        calib: a few input tensors (N, C, H, W) in the network's input range.
        method: ``"minmax"``, ``"percentile"``, ``"mse"`` or ``"auto"`` (each, keep the one whose
            output is closest to the float network's on ``calib``).
        percentile: for ``"percentile"``.

    Returns:
        (integer model, report dict: method, per-method PSNR vs float on ``calib``, folded BNs).
    """
    if method != "auto" and method not in METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; expected auto or one of {', '.join(METHODS)}")
    calib = list(calib)
    model = model.eval()
    stats, folds = collect(model, calib)
    with torch.inference_mode():
        refs = [model(x) for x in calib]
    scores: Dict[str, float] = {}
    best: Optional[nn.Module] = None
    for m in (METHODS if method == "auto" else (method,)):
        q = convert(model, stats, folds, m, percentile)
        fused = fuse_blocks(q, calib)
        scores[m] = fidelity(q, refs, calib)
        if best is None or scores[m] > scores[chosen]:
            best, chosen, best_fused = q, m, fused
    report = {"method": chosen, "psnr_vs_float": scores, "percentile": percentile, "folded_norms": dict(folds),
              "inplace_blocks": best_fused,
              "layers": sorted(stats), "calibration_batches": len(calib)}
    return channels_last(best), report


def channels_last(q: nn.Module) -> nn.Module:
    """``q`` with its 4-D weights in channels_last, which is how integer networks run: the head
    convolution then hands the adder layers NHWC features, their kernel reads those without a
    transpose and writes NHWC (``adder_conv2d_u8_affine`` keeps the input's layout), and
    oneDNN's float convolutions (upsampler, tail) are faster on NHWC as well. Same function:
    only strides change."""
    return q.to(memory_format=torch.channels_last)
