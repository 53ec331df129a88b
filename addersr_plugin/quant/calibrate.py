"""Calibration: what each adder layer's input looks like, and which BatchNorms can be folded.

Works on any network whose adder layers are :class:`~addersr_plugin.nn.AdderConv2d` modules:
forward hooks record each layer's input statistics. A ``BatchNorm2d`` is folded into the adder
layer before it when, in every calibration forward, the BN's input *is* that layer's output
tensor and both modules have the same parent (the ``ShortcutAdderBlock.adder``/``.norm`` shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..nn import AdderConv2d
from .grid import Grid, fake_quantize, grid_for_range

METHODS = ("minmax", "percentile", "mse")
_SAMPLES_PER_CALL = 1 << 16
_MAX_SAMPLES = 1 << 20


class CalibrationError(ValueError):
    """The network or the calibration data cannot be calibrated."""


@dataclass
class LayerStats:
    """Running min/max and a uniform subsample of one layer's input values."""

    lo: float = float("inf")
    hi: float = float("-inf")
    calls: int = 0
    samples: List[Tensor] = field(default_factory=list)
    n_samples: int = 0

    def update(self, x: Tensor, gen: torch.Generator) -> None:
        x = x.detach().float().flatten()
        self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
        self.calls += 1
        if self.n_samples < _MAX_SAMPLES:
            idx = torch.randint(0, x.numel(), (min(_SAMPLES_PER_CALL, x.numel()),), generator=gen)
            self.samples.append(x[idx].cpu())
            self.n_samples += idx.numel()

    def values(self) -> Tensor:
        return torch.cat(self.samples)


def choose_grid(stats: LayerStats, method: str, percentile: float = 99.99,
                fallback: Tuple[float, float] = (0.0, 1.0)) -> Grid:
    """The layer's grid by ``method``: ``minmax`` (the observed range), ``percentile`` (the
    ``100 − p`` and ``p`` percentiles, outliers clamped), ``mse`` (the range, shrunk by a common
    factor, with the least mean squared quantization error on the samples). A layer that saw
    nothing but zeros gets the grid of ``fallback`` (``convert`` passes its weights' range;
    :func:`~.grid.grid_for_range`)."""
    if method == "minmax":
        return grid_for_range(stats.lo, stats.hi, fallback)
    v = stats.values()
    if method == "percentile":
        q = torch.quantile(v[: 1 << 24].double(), torch.tensor([1 - percentile / 100, percentile / 100],
                                                               dtype=torch.float64))
        return grid_for_range(float(q[0]), float(q[1]), fallback)
    if method == "mse":
        best = None
        for f in torch.linspace(0.3, 1.0, 36).tolist():
            grid = grid_for_range(stats.lo * f, stats.hi * f, fallback)
            err = float((fake_quantize(v, grid) - v).square().mean())
            if best is None or err < best[0]:
                best = (err, grid)
        return best[1]
    raise CalibrationError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")


def adder_layers(model: nn.Module) -> Dict[str, AdderConv2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, AdderConv2d)}


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _nonfinite(x: Tensor) -> str:
    nan, inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
    return f"{nan} NaN and {inf} infinite of {x.numel()} values"


@torch.no_grad()
def collect(model: nn.Module, batches: Iterable[Tensor], seed: int = 0, progress=None,
            outputs: Optional[List[Tensor]] = None) -> Tuple[Dict[str, LayerStats], Dict[str, str]]:
    """Run ``model`` (eval mode) on ``batches``; returns (input stats per adder layer name,
    {adder layer name: name of the BatchNorm2d that can be folded into it}). ``progress``: an
    optional tqdm bar, advanced once per batch; ``outputs``: a list that receives the model's
    output for each batch (the float references, so that no second float pass is needed).

    Raises :class:`CalibrationError` naming the adder layer and the batch when a layer's input
    holds a NaN or an infinity."""
    layers = adder_layers(model)
    if not layers:
        from .layer import QuantAdderConv2d

        if any(isinstance(m, QuantAdderConv2d) for m in model.modules()):
            raise CalibrationError("the network is already quantized: it has integer adder layers "
                                   "(QuantAdderConv2d) and no AdderConv2d layers to quantize")
        raise CalibrationError("the network has no AdderConv2d layers to quantize")
    bns = {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    stats = {name: LayerStats() for name in layers}
    gen = torch.Generator().manual_seed(seed)
    last_out: Dict[str, Optional[Tensor]] = {}
    pairing: Dict[str, Optional[str]] = {}  # bn -> adder (None once it was fed anything else)
    handles = []

    batch_no = 0  # 1-based number of the calibration batch being run, for messages

    def pre_adder(name):
        def hook(_module, args):
            # A non-finite value would make the range (and every grid method) NaN or infinite.
            if not bool(torch.isfinite(args[0]).all()):
                raise CalibrationError(f"adder layer {name!r} saw non-finite input values on calibration batch "
                                       f"{batch_no} ({_nonfinite(args[0])}; the batch itself holds "
                                       f"{_nonfinite(current)}); calibrate on images the float network turns "
                                       "into finite features")
            stats[name].update(args[0], gen)
        return hook

    def post_adder(name):
        def hook(_module, _args, out):
            last_out[name] = out
        return hook

    def pre_bn(bn_name):
        def hook(_module, args):
            src = next((a for a, out in last_out.items() if out is args[0]), None)
            if bn_name not in pairing:
                pairing[bn_name] = src
            elif pairing[bn_name] != src:
                pairing[bn_name] = None
        return hook

    for name, layer in layers.items():
        handles += [layer.register_forward_pre_hook(pre_adder(name)), layer.register_forward_hook(post_adder(name))]
    for name, bn in bns.items():
        handles.append(bn.register_forward_pre_hook(pre_bn(name)))
    was_training = model.training
    model.eval()
    try:
        for current in batches:
            batch_no += 1
            out = model(current)
            if outputs is not None:
                outputs.append(out)
            last_out.clear()
            if progress is not None:
                progress.update(1)
        if batch_no == 0:
            raise CalibrationError("no calibration images")
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    missed = [name for name, s in stats.items() if s.calls == 0]
    if missed:
        raise CalibrationError(f"adder layers never reached by the calibration forward: {', '.join(missed)}")
    folds: Dict[str, str] = {}
    claimed = [a for a in pairing.values() if a is not None]
    for bn_name, adder_name in pairing.items():
        if (adder_name is not None and claimed.count(adder_name) == 1 and _parent(bn_name) == _parent(adder_name)
                and bns[bn_name].num_features == layers[adder_name].out_channels):
            folds[adder_name] = bn_name
    return stats, folds
