"""VDSR, the CNN counterpart of AdderVDSR (BasicSR 1.4.2 has no VDSR)."""

from __future__ import annotations

from torch import Tensor, nn

from ..nn import bicubic_upsample
from ._arch_util import check_vdsr_args
from ..integration.registration import register_arch


@register_arch
class VDSR(nn.Module):
    """VDSR (Kim et al., CVPR 2016): ``num_layer`` 3×3 convolutions, ReLU after all but
    the last, global residual on the bicubic-interpolated input.

    Same interface and same input convention as :class:`AdderVDSR` (the network
    interpolates its LQ input by ``upscale``), for like-for-like comparisons. Weights use
    He (Kaiming normal, fan_in) init as in the paper; biases start at zero.

    Args:
        num_in_ch (int): input channels. Default 3.
        num_out_ch (int): output channels; must equal num_in_ch. Default 3.
        num_feat (int): feature channels. Default 64.
        num_layer (int): total conv layers (>= 2). Default 20.
        upscale (int): interpolation factor (>= 1). Default 4.
        zero_init_last (bool): the last convolution starts at zero, so the network starts as
            bicubic interpolation. With the paper's He init the first output adds a residual
            far larger than the one to learn (the first batch's L1 error against bicubic's is in
            docs/quality_depth/vdsr_optim_probe.json), and in the depth study every optimizer
            tried on a 16-feature, 20-layer VDSR (Adam 2e-3 with and without clipping, Adam
            1e-4 with L1 or MSE, the paper's SGD with clipping) removed it by silencing the
            last hidden ReLUs (all but 0.01 % under Adam 2e-3 and SGD): the net stays at bicubic.
            With this option it trains at Adam 1e-4 and better at 2e-4 (docs/quality_depth.md,
            benchmarks/quality/vdsr_optim_probe.py); at 5e-4 it still dies. The shipped VDSR
            option files turn it on. Default False (the paper's init).
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_layer: int = 20,
                 upscale: int = 4, zero_init_last: bool = False):
        super().__init__()
        check_vdsr_args("VDSR", num_in_ch, num_out_ch, num_feat, num_layer, upscale)
        self.upscale = upscale
        layers = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(num_layer - 2):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(num_feat, num_out_ch, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        if zero_init_last:
            nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: Tensor) -> Tensor:
        up = bicubic_upsample(x, self.upscale)
        return up + self.body(up)
