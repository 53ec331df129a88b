"""Count a network's arithmetic by running it on shapes only.

The network runs once under a ``TorchDispatchMode`` that sees every aten operator and
``addersr::adder_conv2d``; on the meta device this costs no compute (the adder op has a fake
kernel). Forward pre/post hooks on every module keep a module stack, so each operator call is
attributed to the innermost module running it, and functional operators inside a forward
(bicubic ``F.interpolate``, residual adds, mean shift, PixelShuffle) are counted too.

Three layer types are priced as a whole, from their shapes, instead of by the operators their
Python forward happens to use:

- ``nn.Linear``: a dot product of ``in_features`` terms (+ bias) per output element, however
  PyTorch decomposes it for the input's rank and layout (``rules.price_linear``).

- batch normalisation (``BN_MODES``):
  * ``folded`` (inference): after a convolution, BN folds into the conv's weights and bias (no
    operations under the paper convention; under ``exact``, one add per element when the conv
    had no bias). After an adder layer (or anything else) only the shift folds into a bias: the
    scale cannot enter ``-Σ|x - w|``, so it stays a per-channel multiply + add per element.
    A conv output that is only reshaped on the way (Conv → Flatten → BatchNorm1d) still folds
    when batch and channel dimensions are unchanged (spatial size 1), so that every BN channel
    is one conv output channel; otherwise BN's per-feature scale cannot enter shared weights.
  * ``unfolded`` (the training-form expression ``(x - μ)·rsqrt(σ² + ε)·γ + β``): 2 multiplies +
    2 adds per element and one rsqrt per channel. Computing batch statistics while training
    (about 2 more adds and 1 multiply per element) is not counted: this counts a forward pass.
- the power activation ``sgn(y)·|y|^α`` = ``sgn(y)·exp(α·log|y|)``: per element 1 log + 1 exp
  (transcendentals, priced by the estimate in ``table``), 1 multiply by α and 1 compare (the
  small-magnitude guard); ``|y|`` and restoring the sign are free. The layer's forward evaluates
  both sides of its guard for autograd; hardware evaluates one, which is what is priced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..nn import PowerActivation
from .counts import ADDER, BN, CONV, POWER, OpCount, Record
from .errors import UnknownBNModeError
from .rules import bind, check_convention, first_tensor, price_linear, price_op

BN_MODES = ("folded", "unfolded")
# Operators that only reshape (or copy) their first argument: a conv output passed through them
# can still take a folded BN (see _CountingState.follow_reshape).
_RESHAPES = frozenset({"view", "_unsafe_view", "reshape", "_reshape_alias", "flatten", "squeeze", "unsqueeze",
                       "clone", "contiguous", "alias", "detach"})


def check_bn_mode(bn: str) -> str:
    if bn not in BN_MODES:
        raise UnknownBNModeError(f"unknown BN mode {bn!r}; expected one of {', '.join(BN_MODES)}")
    return bn


@dataclass
class _Producer:
    category: str  # CONV or ADDER
    has_bias: bool
    tensor: Tensor  # kept alive so its id() is not reused while counting


class _CountingState:
    def __init__(self, model: nn.Module, convention: str, bn: str):
        self.names: Dict[int, str] = {id(m): name for name, m in model.named_modules()}
        self.convention = convention
        self.bn = bn
        self.stack: List[nn.Module] = []
        self.priced_depth = 0  # > 0 inside a module priced as a whole
        self.producers: Dict[int, _Producer] = {}
        self.records: List[Record] = []

    def _record(self, module: Optional[nn.Module], category: str, op: str, count: OpCount):
        if module is None:
            name, kind = "", "(functional)"
        else:
            name, kind = self.names.get(id(module), "?"), type(module).__name__
        self.records.append(Record(name, kind, category, op, count))

    def on_op(self, func, args, kwargs, out):
        if self.priced_depth:
            return
        priced = price_op(func, args, kwargs, out, self.convention)
        result = first_tensor(out)
        if result is not None:
            # Any op (in-place ReLU included) makes its output no longer a bare conv/adder output.
            self.producers.pop(id(result), None)
        if priced is None:
            self.follow_reshape(func, args, result)
            return
        category, count = priced
        if category in (CONV, ADDER) and result is not None:
            has_bias = bind(func, args, kwargs).get("bias") is not None
            self.producers[id(result)] = _Producer(category, has_bias, result)
        op = f"{func.namespace}.{func.overloadpacket.__name__}"
        self._record(self.stack[-1] if self.stack else None, category, op, count)

    def follow_reshape(self, func, args, result: Optional[Tensor]):
        """Keep a conv/adder output's producer across a pure reshape that leaves dims 0 and 1
        (batch, channel) as they were: the BN after it still sees one conv channel per channel."""
        if func.overloadpacket.__name__ not in _RESHAPES or result is None or not args:
            return
        source = args[0]
        producer = self.producers.get(id(source)) if isinstance(source, Tensor) else None
        if (producer is not None and source.dim() >= 2 and result.dim() >= 2
                and tuple(source.shape[:2]) == tuple(result.shape[:2]) and source.numel() == result.numel()):
            self.producers[id(result)] = _Producer(producer.category, producer.has_bias, result)

    # -- modules priced as a whole ------------------------------------------------------------

    def price_linear(self, module: nn.Linear, out: Tensor):
        has_bias = module.bias is not None
        self._record(module, CONV, "linear (from its shapes)",
                     price_linear(module.in_features, out, has_bias, self.convention))
        self.producers[id(out)] = _Producer(CONV, has_bias, out)

    def price_bn(self, module: nn.Module, inp: Tensor, out: Tensor):
        n = out.numel()
        if self.bn == "unfolded":
            channels = out.shape[1] if out.dim() > 1 else 1
            self._record(module, BN, "bn unfolded (x-mean)*rsqrt(var+eps)*gamma+beta",
                         OpCount(mul=2 * n, add=2 * n, trans=channels))
            return
        producer = self.producers.get(id(inp))
        if producer is not None and producer.category == CONV:
            extra_bias = self.convention == "exact" and not producer.has_bias
            self._record(module, BN, "bn folded into the conv's weights and bias",
                         OpCount(add=n if extra_bias else 0))
        else:
            after = "adder layer" if producer is not None else "non-linear input"
            self._record(module, BN, f"bn folded after {after}: per-channel scale + shift",
                         OpCount(mul=n, add=n))

    def price_power(self, module: nn.Module, out: Tensor):
        n = out.numel()
        self._record(module, POWER, "power sgn(y)*exp(alpha*log|y|)",
                     OpCount(mul=n, cmp=n, trans=2 * n))


def _priced_as_whole(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.batchnorm._BatchNorm, PowerActivation, nn.Linear))


def _module_input(args, kwargs) -> Optional[Tensor]:
    """The tensor a module was called with, positionally or as ``input=``/``x=`` (``bn(input=x)``)."""
    if args:
        return first_tensor(args[0]) if not isinstance(args[0], Tensor) else args[0]
    for key in ("input", "x"):
        if isinstance(kwargs.get(key), Tensor):
            return kwargs[key]
    return first_tensor(list(kwargs.values()))


class _CountingMode(TorchDispatchMode):
    def __init__(self, state: _CountingState):
        super().__init__()
        self.state = state

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.state.on_op(func, args, kwargs, out)
        return out


def _install_hooks(model: nn.Module, state: _CountingState):
    def pre(module, args, kwargs):
        state.stack.append(module)
        if _priced_as_whole(module):
            state.priced_depth += 1

    def post(module, args, kwargs, output):
        state.stack.pop()
        if not _priced_as_whole(module):
            return
        state.priced_depth -= 1
        if state.priced_depth:
            return
        out = first_tensor(output)
        if isinstance(module, PowerActivation):
            state.price_power(module, out)
        elif isinstance(module, nn.Linear):
            state.price_linear(module, out)
        else:
            state.price_bn(module, _module_input(args, kwargs), out)

    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True))
    return handles


def count_operations(model: nn.Module, input: Tensor, convention: str = "paper",
                     bn: str = "folded") -> Tuple[List[Record], Tuple[int, ...]]:
    """Run ``model(input)`` once in eval mode without gradients and count its operations.

    Use meta-device tensors for a free count (any device works). Returns the records, one per
    counted operator call or priced module, and the output shape.
    """
    check_convention(convention)
    check_bn_mode(bn)
    state = _CountingState(model, convention, bn)
    was_training = model.training
    handles = _install_hooks(model, state)
    model.eval()
    try:
        with torch.no_grad(), _CountingMode(state):
            output = model(input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out = first_tensor(output)
    if out is None:
        raise TypeError(f"count_operations: the model returned {type(output).__name__}, not a tensor")
    return state.records, tuple(out.shape)


def total(records: List[Record], categories=None) -> OpCount:
    """Sum of the records, optionally only those of the given categories."""
    acc = OpCount()
    for r in records:
        if categories is None or r.category in categories:
            acc = acc + r.count
    return acc
