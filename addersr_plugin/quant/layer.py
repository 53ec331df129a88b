"""``QuantAdderConv2d``: an :class:`~addersr_plugin.nn.AdderConv2d` (and, where folded, the
BatchNorm after it) running on the integer kernel ``addersr::adder_conv2d_u8``.

    float layer:      y = −Σ_k |x − w| + b                     then BN: g·y + h (per channel)
    integer layer:    S = Σ_k |qx − qw|        (int32, the SAD kernel)
                      out = A[c] · S + B[c]

with one grid (s, z) shared by input and weights, weights clamped to the grid's range and
``corr[c] = Σ_k |w − clamp(w)|`` (exact, see :mod:`.grid`)::

    A = −g·s        B = g·(b − corr) + h          (g = 1, h = 0 without a folded BN)
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..nn import AdderConv2d
from ..ops import adder_conv2d_u8, adder_conv2d_u8_affine
from .grid import Grid, clamp_weights, quantize


def bn_affine(bn: nn.BatchNorm2d) -> Tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as ``g·y + h`` per channel (float64)."""
    g = bn.weight.detach().double() if bn.affine else torch.ones(bn.num_features, dtype=torch.float64)
    h = bn.bias.detach().double() if bn.affine else torch.zeros(bn.num_features, dtype=torch.float64)
    inv = torch.rsqrt(bn.running_var.detach().double() + bn.eps)
    return g * inv, h - g * inv * bn.running_mean.detach().double()


class QuantAdderConv2d(nn.Module):
    """Integer adder layer; build it with :meth:`from_float` (or empty, then ``load_state_dict``).

    Buffers: ``qweight`` (uint8, the clamped weights on the grid), ``out_scale`` and
    ``out_bias`` (float32 (Cout,), the affine ``A``, ``B`` above), ``grid`` (float64 [scale,
    zero_point]). ``folded_norm`` records whether a BatchNorm is inside ``out_scale``/``out_bias``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=(1, 1), padding=(0, 0),
                 dilation=(1, 1), groups: int = 1, folded_norm: bool = False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)
        self.padding, self.dilation, self.groups = tuple(padding), tuple(dilation), groups
        self.folded_norm = folded_norm
        self.register_buffer("qweight", torch.zeros(out_channels, in_channels // groups, *self.kernel_size,
                                                    dtype=torch.uint8))
        self.register_buffer("out_scale", torch.zeros(out_channels))
        self.register_buffer("out_bias", torch.zeros(out_channels))
        self.register_buffer("grid", torch.tensor([1.0, 0.0], dtype=torch.float64))

    @classmethod
    def like(cls, layer: AdderConv2d, folded_norm: bool) -> "QuantAdderConv2d":
        """An empty integer layer with ``layer``'s geometry (to load a checkpoint into)."""
        return cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                   layer.dilation, layer.groups, folded_norm)

    @classmethod
    def from_float(cls, layer: AdderConv2d, grid: Grid, norm: Optional[nn.BatchNorm2d] = None) -> "QuantAdderConv2d":
        """Quantize ``layer`` on ``grid`` (its input's grid), folding ``norm`` when given."""
        q = cls.like(layer, norm is not None)
        w = layer.weight.detach().double()
        clamped, corr = clamp_weights(w, grid.lo, grid.hi)
        b = layer.bias.detach().double() if layer.bias is not None else torch.zeros_like(corr)
        g, h = bn_affine(norm) if norm is not None else (torch.ones_like(corr), torch.zeros_like(corr))
        q.qweight.copy_(quantize(clamped, grid))
        q.out_scale.copy_((-g * grid.scale).float())
        q.out_bias.copy_((g * (b - corr) + h).float())
        q.grid.copy_(torch.tensor([grid.scale, float(grid.zero_point)], dtype=torch.float64))
        return q

    @property
    def input_grid(self) -> Grid:
        return Grid(float(self.grid[0]), int(self.grid[1]))

    def int_sums(self, x: Tensor) -> Tensor:
        """The int32 sums ``Σ|qx − qw|`` for a float input ``x``."""
        grid = self.input_grid
        return adder_conv2d_u8(quantize(x, grid), self.qweight, grid.zero_point, self.stride, self.padding,
                               self.dilation, self.groups)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None, relu: bool = False) -> Tensor:
        # One fused call: quantize while padding, SAD sums, and in the store the affine, then
        # `+ residual` and ReLU when asked (an adder unit's self-shortcut and activation, so
        # they cost no pass over memory of their own).
        grid = self.input_grid
        y = adder_conv2d_u8_affine(x.float(), self.qweight, grid.scale, grid.zero_point, self.out_scale,
                                   self.out_bias, self.stride, self.padding, self.dilation, self.groups,
                                   None if residual is None else residual.float(), relu)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        g = self.input_grid
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, groups={self.groups}, scale={g.scale:.4g}, zero_point={g.zero_point}, "
                f"folded_norm={self.folded_norm}")
