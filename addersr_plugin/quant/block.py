"""``InferenceShortcutBlock``: a quantized :class:`~addersr_plugin.nn.ShortcutAdderBlock` with
in-place elementwise steps.

The training block computes ``power(act(x + norm(adder(x))))`` with out-of-place ops. At
inference, with the BN folded into the integer layer, the shortcut add and the ReLU happen in
the integer kernel's store (``adder_conv2d_u8_affine``'s ``residual`` and ``relu``); otherwise
the adder layer's output is a fresh tensor nobody else holds, so the shortcut add, the ReLU and
the power activation work in place on it, and after a ReLU the power
activation needs no sign handling (``y ≥ 0``): ``y.pow_(alpha)``. Same function as the block
with :class:`.power.InferencePowerActivation`; :func:`replace_shortcut_blocks` replaces only
blocks of exactly that class, and :func:`~.convert.convert` checks each replaced block's output
against the generic one on the calibration inputs (falling back to the generic block if they
differ).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nn import AdderResidualBlock, ShortcutAdderBlock
from .layer import QuantAdderConv2d
from .power import InferencePowerActivation


class InferenceShortcutBlock(nn.Module):
    def __init__(self, block: ShortcutAdderBlock):
        super().__init__()
        self.adder, self.norm, self.act, self.power = block.adder, block.norm, block.act, block.power
        self.shortcut = block.shortcut
        # A folded BN (Identity) leaves adder -> (+x) -> ReLU, which the integer kernel does in
        # its store: one call, no elementwise pass.
        self.fused = isinstance(self.adder, QuantAdderConv2d) and (self.norm is None
                                                                    or isinstance(self.norm, nn.Identity))

    def forward(self, x: Tensor) -> Tensor:
        if self.fused and x.dtype == torch.float32:
            y = self.adder(x, residual=x if self.shortcut else None, relu=self.act is not None)
            return y if self.power is None else self._power(y)
        y = self.adder(x)
        if self.norm is not None:
            y = self.norm(y)
        if self.shortcut:
            y = y.add_(x)
        if self.act is not None:
            y = y.relu_()
        return y if self.power is None else self._power(y)

    def _power(self, y: Tensor) -> Tensor:
        alpha = self.power.log_alpha.exp().to(y.dtype)
        if self.power.num_channels is not None:
            alpha = alpha.view(-1, *([1] * (y.dim() - 2)))
        return y.pow_(alpha) if self.act is not None else y.abs().pow_(alpha).copysign_(y)

    def extra_repr(self) -> str:
        return f"shortcut={self.shortcut}"


def replaceable(block: nn.Module) -> bool:
    """A ShortcutAdderBlock (exactly) whose parts are the quantized/inference ones we know."""
    return (type(block) is ShortcutAdderBlock and isinstance(block.adder, QuantAdderConv2d)
            and (block.norm is None or isinstance(block.norm, (nn.Identity, nn.BatchNorm2d)))
            and (block.act is None or isinstance(block.act, nn.ReLU))
            and (block.power is None or isinstance(block.power, InferencePowerActivation)))


class InferenceResidualBlock(nn.Module):
    """EDSR's residual block around two adder units at inference: ``x + res_scale·unit2(unit1(x))``
    with the sum done in place on unit2's fresh output (one pass instead of a multiply and an add
    into new tensors)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.unit1, self.unit2, self.res_scale = block.unit1, block.unit2, float(block.res_scale)

    def forward(self, x: Tensor) -> Tensor:
        y = self.unit2(self.unit1(x))
        return y.add_(x) if self.res_scale == 1.0 else y.mul_(self.res_scale).add_(x)

    def extra_repr(self) -> str:
        return f"res_scale={self.res_scale}"


def residual_replaceable(block: nn.Module) -> bool:
    """An AdderEDSR residual block whose units run their in-place inference versions."""
    return (type(block) is AdderResidualBlock and isinstance(block.unit1, InferenceShortcutBlock)
            and isinstance(block.unit2, InferenceShortcutBlock))
