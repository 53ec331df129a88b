"""``InferenceShortcutBlock``: a quantized :class:`~addersr_plugin.nn.ShortcutAdderBlock` with
in-place elementwise steps.

The training block computes ``power(act(x + norm(adder(x))))`` with out-of-place ops. At
inference the adder layer's output is a fresh tensor nobody else holds, so the shortcut add,
the ReLU and the power activation can all work in place on it, and after a ReLU the power
activation needs no sign handling (``y ≥ 0``): ``y.pow_(alpha)``. Same function as the block
with :class:`.power.InferencePowerActivation`; :func:`replace_shortcut_blocks` replaces only
blocks of exactly that class, and :func:`~.convert.convert` checks each replaced block's output
against the generic one on the calibration inputs (falling back to the generic block if they
differ).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..nn import ShortcutAdderBlock
from .layer import QuantAdderConv2d
from .power import InferencePowerActivation


class InferenceShortcutBlock(nn.Module):
    def __init__(self, block: ShortcutAdderBlock):
        super().__init__()
        self.adder, self.norm, self.act, self.power = block.adder, block.norm, block.act, block.power
        self.shortcut = block.shortcut

    def forward(self, x: Tensor) -> Tensor:
        y = self.adder(x)
        if self.norm is not None:
            y = self.norm(y)
        if self.shortcut:
            y = y.add_(x)
        if self.act is not None:
            y = y.relu_()
        if self.power is not None:
            alpha = self.power.log_alpha.exp().to(y.dtype)
            if self.power.num_channels is not None:
                alpha = alpha.view(-1, *([1] * (y.dim() - 2)))
            y = y.pow_(alpha) if self.act is not None else y.abs().pow_(alpha).copysign_(y)
        return y

    def extra_repr(self) -> str:
        return f"shortcut={self.shortcut}"


def replaceable(block: nn.Module) -> bool:
    """A ShortcutAdderBlock (exactly) whose parts are the quantized/inference ones we know."""
    return (type(block) is ShortcutAdderBlock and isinstance(block.adder, QuantAdderConv2d)
            and (block.norm is None or isinstance(block.norm, (nn.Identity, nn.BatchNorm2d)))
            and (block.act is None or isinstance(block.act, nn.ReLU))
            and (block.power is None or isinstance(block.power, InferencePowerActivation)))
