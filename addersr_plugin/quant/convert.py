"""Turning a trained float network into its integer-adder version, and measuring the result."""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Dict, Iterator, List, Optional, Sequence

import torch
from torch import Tensor, nn

from .calibrate import METHODS, CalibrationError, LayerStats, adder_layers, choose_grid, collect
from .block import InferenceResidualBlock, InferenceShortcutBlock, replaceable, residual_replaceable
from .grid import QMAX
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
        # the weights' range: the grid of a layer that saw only zeros (grid_for_range)
        w = layer.weight.detach()
        grid = choose_grid(stats[name], method, percentile, (float(w.min()), float(w.max())))
        _set_child(q, name, QuantAdderConv2d.from_float(layer, grid, norm))
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
def fidelity(qmodel: nn.Module, refs: Sequence[Tensor], batches: Sequence[Tensor], progress=None) -> float:
    """Mean PSNR (dB, images in [0, 1]) of ``qmodel`` against the float outputs ``refs``;
    ``progress``, an optional tqdm bar, advances once per batch."""
    vals = []
    for x, r in zip(batches, refs):
        vals.append(psnr(qmodel(x).clamp(0, 1), r.clamp(0, 1)))
        if progress is not None:
            progress.update(1)
    return sum(vals) / len(vals)


@contextlib.contextmanager
def clamp_counter(q: nn.Module) -> Iterator[Dict[str, float]]:
    """While the block runs ``q``, count per integer adder layer the input values its quantizer
    clamps: ``round(x / s) + z`` (the kernel's arithmetic) outside [0, 255], i.e. more than half a
    step beyond the grid, where the error exceeds rounding. The yielded dict is filled with
    {layer name: clamped fraction} when the block ends."""
    counts = {name: [0, 0] for name, m in q.named_modules() if isinstance(m, QuantAdderConv2d)}

    def hook(name):
        def pre(module, args):
            grid = module.input_grid
            v = torch.round(args[0].float() / grid.scale).add_(grid.zero_point)
            counts[name][0] += int(((v < 0) | (v > QMAX)).sum())
            counts[name][1] += v.numel()
        return pre

    handles = [q.get_submodule(name).register_forward_pre_hook(hook(name)) for name in counts]
    fractions: Dict[str, float] = {}
    try:
        yield fractions
    finally:
        for h in handles:
            h.remove()
    fractions.update({name: c / n if n else 0.0 for name, (c, n) in counts.items()})


def quantize_model(model: nn.Module, calib: Sequence[Tensor], method: str = "auto", percentile: float = 99.99,
                   progress: bool = False):
    """Quantize a trained float network's adder layers (Python API of ``addersr quantize``).

    Args:
        model: any network whose adder layers are ``AdderConv2d`` modules (e.g. AdderEDSR).
        calib: a few input tensors (N, C, H, W) in the network's input range.
        method: ``"minmax"``, ``"percentile"``, ``"mse"`` or ``"auto"`` (each, keep the one whose
            output is closest to the float network's on ``calib``).
        percentile: for ``"percentile"``.
        progress: show tqdm progress bars on stderr (per calibration batch, then per batch of
            each method tried).

    Returns:
        (integer model, report dict: method, per-method PSNR vs float on ``calib``, folded BNs,
        ``clamped``: per adder layer the fraction of its input values on ``calib`` that the kept
        grid clamps, see :func:`clamp_counter`).
    """
    from tqdm import tqdm  # a basicsr dependency

    if method != "auto" and method not in METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; expected auto or one of {', '.join(METHODS)}")
    calib = list(calib)
    model = model.eval()
    refs: List[Tensor] = []
    with tqdm(total=len(calib), desc="calibrating", unit="image", disable=not progress, leave=False) as bar:
        stats, folds = collect(model, calib, progress=bar, outputs=refs)
    scores: Dict[str, float] = {}
    best: Optional[nn.Module] = None
    methods = METHODS if method == "auto" else (method,)
    with tqdm(total=len(methods) * len(calib), desc=f"choosing {methods[0]} grids", unit="image",
              disable=not progress, leave=False) as bar:
        for m in methods:
            bar.set_description(f"choosing {m} grids")  # mse's search over ranges takes a while
            q = convert(model, stats, folds, m, percentile)
            bar.set_description(f"trying {m}")
            fused = fuse_blocks(q, calib)
            with clamp_counter(q) as clamped:
                scores[m] = fidelity(q, refs, calib, bar)
            if best is None or scores[m] > scores[chosen]:
                best, chosen, best_fused, best_clamped = q, m, fused, clamped
    report = {"method": chosen, "psnr_vs_float": scores, "percentile": percentile, "folded_norms": dict(folds),
              "inplace_blocks": best_fused, "clamped": best_clamped,
              "layers": sorted(stats), "calibration_batches": len(calib)}
    return channels_last(best), report


def channels_last(q: nn.Module) -> nn.Module:
    """``q`` with its 4-D weights in channels_last, which is how integer networks run: the head
    convolution then hands the adder layers NHWC features, their kernel reads those without a
    transpose and writes NHWC (``adder_conv2d_u8_affine`` keeps the input's layout), and
    oneDNN's float convolutions (upsampler, tail) are faster on NHWC as well. Same function:
    only strides change."""
    return q.to(memory_format=torch.channels_last)
