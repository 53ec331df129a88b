"""AdderVDSR: VDSR whose middle layers are AdderSR units (docs/architectures.md)."""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ..nn import ShortcutAdderBlock
from ..nn import bicubic_upsample
from ._arch_util import adder_unit_kwargs, check_vdsr_args
from ..integration.registration import register_arch


@register_arch
class AdderVDSR(nn.Module):
    """VDSR with adder units (AdderSR, CVPR 2021).

    ``conv_first`` (C -> num_feat, + ReLU) and ``conv_last`` (num_feat -> C) stay
    convolutions; the ``num_layer - 2`` middle layers are :class:`ShortcutAdderBlock`
    units (VDSR has a ReLU after each of them, so each unit keeps it). VDSR works on the
    bicubic-interpolated image with a global residual; to fit BasicSR's paired LQ/GT
    datasets the network interpolates its LQ input itself, so the output is ``upscale``
    times the input size.

    Args:
        num_in_ch (int): input channels. Default 3.
        num_out_ch (int): output channels; must equal num_in_ch (global residual). Default 3.
        num_feat (int): feature channels. Default 64.
        num_layer (int): total 3×3 layers including first and last (>= 2). Default 20.
        upscale (int): interpolation factor (>= 1). Default 4.
        shortcut, power_act, norm, eta, weight_grad, input_grad, adder_init, alpha_init,
        power_per_channel: as :class:`AdderEDSR`.
        zero_init_last (bool): ``conv_last`` starts at zero (the network starts as bicubic), as
            :class:`VDSR`'s option. Default False.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_layer: int = 20,
                 upscale: int = 4, shortcut: bool = True, power_act: bool = True, norm: Optional[str] = "bn",
                 eta: Optional[float] = 0.2, weight_grad: str = "full", input_grad: str = "hardtanh",
                 adder_init: str = "normal", alpha_init: float = 1.0, power_per_channel: bool = False,
                 zero_init_last: bool = False):
        super().__init__()
        check_vdsr_args("AdderVDSR", num_in_ch, num_out_ch, num_feat, num_layer, upscale)
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        unit = adder_unit_kwargs(shortcut, power_act, norm, eta, weight_grad, input_grad, adder_init, alpha_init,
                                 power_per_channel)
        self.body = nn.Sequential(*(ShortcutAdderBlock(num_feat, act="relu", **unit) for _ in range(num_layer - 2)))
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        if zero_init_last:
            nn.init.zeros_(self.conv_last.weight)
            nn.init.zeros_(self.conv_last.bias)

    def forward(self, x: Tensor) -> Tensor:
        up = bicubic_upsample(x, self.upscale)
        return up + self.conv_last(self.body(self.relu(self.conv_first(up))))
