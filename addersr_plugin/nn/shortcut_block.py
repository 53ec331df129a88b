"""``ShortcutAdderBlock``: AdderSR's adder unit, adder -> BN -> (+x) -> ReLU -> PowerActivation.

The order was confirmed by an AdderNet/AdderSR co-author (AdderNet issues #67, #52, #47):
every adder layer is followed by BatchNorm, the self-shortcut (paper Eq. 7; an adder layer
cannot learn the identity) is added after BN, ReLU is kept where the CNN had one, and the
power activation comes last. Every part can be switched off for ablations; a switched-off
part is absent from the module tree (attribute None), not an identity placeholder.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .adder_conv import AdderConv2d
from .power_activation import PowerActivation

NORMS = ("bn", None)
ACTS = ("relu", None)


class ShortcutAdderBlock(nn.Module):
    """One AdderSR unit: adder -> BN -> (+x) -> ReLU -> power, on ``num_feat`` channels.

    The one place where the unit's order lives: the architectures build every adder layer of
    theirs (body units, and the adder upsampler's steps with ``out_feat``) from this class.

    Args:
        num_feat (int): input channels (and output channels unless ``out_feat`` is given).
        out_feat (int or None): output channels when they differ from ``num_feat`` (an
            upsampler step); the self-shortcut needs them equal.
        kernel_size (int): odd kernel size; padding keeps the spatial size. Default 3.
        shortcut (bool): add the self-shortcut ``x + BN(adder(x))``. Default True.
        norm ("bn" or None): BatchNorm2d after the adder layer. Default "bn". Without a norm
            the adder layer gets a bias (otherwise its output would be all non-positive).
        act ("relu" or None): activation after the shortcut. Default "relu".
        power (bool): learnable power activation at the end. Default True.
        eta, weight_grad, input_grad, init: passed to :class:`AdderConv2d`.
        alpha_init (float): initial power-activation alpha. Default 1.0.
        power_per_channel (bool): one alpha per channel instead of one per unit.
    """

    def __init__(self, num_feat: int, kernel_size: int = 3, shortcut: bool = True, norm: Optional[str] = "bn",
                 act: Optional[str] = "relu", power: bool = True, eta: Optional[float] = 0.2,
                 weight_grad: str = "full", input_grad: str = "hardtanh", init: str = "normal",
                 alpha_init: float = 1.0, power_per_channel: bool = False, out_feat: Optional[int] = None):
        super().__init__()
        out_feat = num_feat if out_feat is None else out_feat
        if shortcut and out_feat != num_feat:
            raise ValueError(f"ShortcutAdderBlock: the self-shortcut needs out_feat == num_feat, got {out_feat} "
                             f"and {num_feat}; use shortcut=False")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size % 2 != 1:
            raise ValueError(f"ShortcutAdderBlock: kernel_size must be an odd int, got {kernel_size!r}")
        if norm not in NORMS:
            raise ValueError(f"ShortcutAdderBlock: unknown norm {norm!r}; expected one of {NORMS}")
        if act not in ACTS:
            raise ValueError(f"ShortcutAdderBlock: unknown act {act!r}; expected one of {ACTS}")
        self.shortcut = bool(shortcut)
        self.adder = AdderConv2d(num_feat, out_feat, kernel_size, padding=kernel_size // 2, bias=norm is None,
                                 eta=eta, weight_grad=weight_grad, input_grad=input_grad, init=init)
        self.norm = nn.BatchNorm2d(out_feat) if norm == "bn" else None
        self.act = nn.ReLU(inplace=True) if act == "relu" else None
        self.power = (PowerActivation(alpha_init, out_feat if power_per_channel else None) if power else None)

    def forward(self, x: Tensor) -> Tensor:
        # The adder op computes in NCHW and returns NCHW: a channels_last x would be copied by the
        # op in the forward and again in the backward, and the shortcut would add mixed layouts.
        # One copy here (none for an NCHW x) keeps the whole unit in the op's layout.
        x = x.contiguous()
        y = self.adder(x)
        if self.norm is not None:
            y = self.norm(y)
        if self.shortcut:
            # In place: neither BN's nor the adder op's backward reads this output (both keep their
            # inputs), so it can hold the sum; autograd's version counter would raise otherwise.
            y = y.add_(x)
        if self.act is not None:
            y = self.act(y)
        if self.power is not None:
            y = self.power(y)
        return y

    def extra_repr(self) -> str:
        return f"shortcut={self.shortcut}"
