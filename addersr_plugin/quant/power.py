"""``InferencePowerActivation``: :class:`~addersr_plugin.nn.PowerActivation` for inference in
three passes over the tensor instead of about eight.

The training module computes ``sgn(y)·|y|^alpha`` above ``eps`` and a line below it (so that its
gradients stay finite at 0, see its docstring). Inference needs no gradient, so here
``|y|^alpha`` is used everywhere: ``abs``, in-place ``pow``, in-place ``copysign``. The two
differ only where ``|y| ≤ eps`` (1e-6 by default), by at most ``eps^alpha``, far below the
quantization step of the adder layers around it. ``log_alpha`` keeps its name, so state dicts
are interchangeable.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nn import PowerActivation


class InferencePowerActivation(nn.Module):
    def __init__(self, source: PowerActivation):
        super().__init__()
        self.num_channels = source.num_channels
        self.register_buffer("log_alpha", source.log_alpha.detach().clone())

    def forward(self, y: Tensor) -> Tensor:
        alpha = self.log_alpha.exp().to(y.dtype)
        if self.num_channels is not None:
            alpha = alpha.view(-1, *([1] * (y.dim() - 2)))
        return y.abs().pow_(alpha).copysign_(y)

    def extra_repr(self) -> str:
        if self.num_channels is not None:
            return f"num_channels={self.num_channels}"
        return f"alpha={self.log_alpha.exp().item():.4g}"


def replace_power_activations(model: nn.Module) -> nn.Module:
    """Every PowerActivation of ``model`` replaced (in place) by its inference version."""
    for name, m in list(model.named_modules()):
        if isinstance(m, PowerActivation):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, InferencePowerActivation(m))
    return model
