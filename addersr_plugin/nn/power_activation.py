"""``PowerActivation``: AdderSR's learnable power activation ``P(y) = sgn(y) * |y|^alpha``.

alpha > 1 sharpens (boosts high-frequency detail), alpha < 1 smooths. alpha stays > 0
because the layer learns ``log_alpha`` and uses ``alpha = exp(log_alpha)``: every real
value of the parameter is a valid alpha, so no optimiser step can make it negative or zero
(short of ``log_alpha`` below about -87, where ``exp`` underflows in fp32; no clamp is needed).

Post-ReLU features are often exactly zero, where ``|y|^alpha`` has an infinite slope for
alpha < 1 and the alpha-gradient ``|y|^alpha * log|y|`` is ``0 * -inf``. Below ``eps`` the
magnitude is therefore the straight line ``|y| * eps^(alpha - 1)``, which meets
``|y|^alpha`` at ``|y| = eps``: output, input gradient and alpha gradient are finite
everywhere, and exactly zero at ``y = 0``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn


class PowerActivation(nn.Module):
    """``P(y) = sgn(y) * |y|^alpha`` with a learnable alpha > 0.

    Args:
        alpha_init (float): initial alpha (> 0). Default 1.0, the identity.
        num_channels (int or None): None learns one alpha for the layer; an int learns one
            per channel of an (N, C, H, W) or (N, C) input with C == num_channels.
        eps (float): below this magnitude the power curve becomes linear (see module
            docstring); raised to the dtype's smallest normal number if smaller.

    The parameter is ``log_alpha`` (shape () or (num_channels,)); read ``alpha`` for alpha.
    """

    def __init__(self, alpha_init: float = 1.0, num_channels: Optional[int] = None, eps: float = 1e-6):
        super().__init__()
        if not (isinstance(alpha_init, (int, float)) and math.isfinite(alpha_init) and alpha_init > 0):
            raise ValueError(f"PowerActivation: alpha_init must be a positive finite number, got {alpha_init!r}")
        if num_channels is not None and (isinstance(num_channels, bool) or not isinstance(num_channels, int)
                                         or num_channels <= 0):
            raise ValueError(f"PowerActivation: num_channels must be a positive int or None, got {num_channels!r}")
        if not (eps > 0 and math.isfinite(eps)):
            raise ValueError(f"PowerActivation: eps must be a positive finite number, got {eps!r}")
        self.num_channels = num_channels
        self.eps = float(eps)
        shape = () if num_channels is None else (num_channels,)
        self.log_alpha = nn.Parameter(torch.full(shape, math.log(alpha_init)))

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.exp()

    def forward(self, y: Tensor) -> Tensor:
        alpha = self.log_alpha.exp().to(y.dtype)
        if self.num_channels is not None:
            if y.dim() < 2 or y.shape[1] != self.num_channels:
                raise ValueError(f"PowerActivation: expected input with {self.num_channels} channels in dim 1, "
                                 f"got shape {tuple(y.shape)}")
            alpha = alpha.view(-1, *([1] * (y.dim() - 2)))
        eps = max(self.eps, torch.finfo(y.dtype).tiny)
        mag = y.abs()
        above = mag.clamp_min(eps) ** alpha
        below = mag * torch.pow(torch.as_tensor(eps, dtype=y.dtype, device=y.device), alpha - 1)
        return torch.sign(y) * torch.where(mag > eps, above, below)

    def extra_repr(self) -> str:
        if self.num_channels is None and not self.log_alpha.is_meta:
            return f"alpha={self.alpha.item():.4g}"
        if self.num_channels is None:
            return "alpha=<meta>"
        return f"num_channels={self.num_channels}"
