"""AdderEDSR: EDSR whose body convolutions are AdderSR units (docs/architectures.md)."""

from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor, nn

from ..nn import (AdderResidualBlock, AdderUpsampleStep, DCFreeConv2d, MeanShift, ShortcutAdderBlock,
                  bicubic_upsample)
from ._arch_util import adder_unit_kwargs, check_positive_int, pixel_shuffle_steps
from ..integration.registration import register_arch


def make_upsampler(num_feat: int, upscale: int, adder: bool, **unit_kwargs) -> nn.Sequential:
    steps = []
    for s in pixel_shuffle_steps("AdderEDSR", upscale):
        if adder:
            steps.append(AdderUpsampleStep(num_feat, s, **unit_kwargs))
        else:
            steps += [nn.Conv2d(num_feat, s * s * num_feat, 3, 1, 1), nn.PixelShuffle(s)]
    return nn.Sequential(*steps)


@register_arch
class AdderEDSR(nn.Module):
    """EDSR with adder units (AdderSR, CVPR 2021), with the quality study's fixes on by default.

    ``image_skip=False, dc_free_head=False`` is the paper's AdderEDSR exactly; the defaults add
    an image-level bicubic skip and a DC-free head, without which the adder body does not
    generalise to photos whose colours it did not see in training (docs/quality.md).

    Head (``conv_first``), upsampler (unless ``adder_upsampler``) and ``conv_last`` are
    convolutions: their channel counts change, so they cannot have a self-shortcut. Every
    body convolution becomes a :class:`ShortcutAdderBlock`: two per residual block, plus
    ``conv_after_body``. Arguments up to ``rgb_mean`` are BasicSR's ``EDSR``'s.

    Args:
        num_in_ch (int): input channels.
        num_out_ch (int): output channels.
        num_feat (int): body channels. Default 64 (EDSR-baseline; paper scale 256).
        num_block (int): residual blocks. Default 16 (paper scale 32).
        upscale (int): 2^n or 3. Default 4.
        res_scale (float): residual scaling. Default 1 (paper scale 0.1).
        img_range (float): image range. Default 255.
        rgb_mean (sequence of float): per-channel mean (one per input channel).
        shortcut (bool): self-shortcut in each adder unit. Default True.
        power_act (bool): the paper's learnable power activation after each adder unit.
            Default False: the quality study (docs/quality.md) measured AdderEDSR better without
            it, at the study's and at a 5x longer schedule, and about twice as fast to train;
            ``True`` is the paper's AdderEDSR.
        norm ("bn" or None): BatchNorm after each adder layer. Default "bn".
        eta (float or None): adaptive learning rate of the adder layers. Default 0.2.
        weight_grad ("full"/"sign"), input_grad ("hardtanh"/"sign"): adder backward modes.
        adder_init ("normal"/"scaled"): adder weight init, see :class:`AdderConv2d`.
        alpha_init (float): initial power-activation alpha. Default 1.0.
        power_per_channel (bool): one alpha per channel. Default False.
        adder_upsampler (bool): upsampler convolutions become adder layers. Default False.
        image_skip (bool): ours, not the paper's: the output is the bicubic ×upscale input plus
            the network's output (VDSR's global residual), and ``conv_last`` starts at zero so
            training starts from bicubic. Colour then no longer has to pass through the adder
            body. Default True (docs/quality.md); ``False`` is the paper's AdderEDSR.
        dc_free_head (bool): ours: every ``conv_first`` filter sums to zero over its taps
            (:class:`DCFreeConv2d`), so the body sees local structure, not absolute colour.
            Needs ``image_skip`` (the colour must reach the output some other way). Default True
            (docs/quality.md); ``False`` is the paper's AdderEDSR.
        second_shortcut (bool): the second adder unit of each residual block keeps its own
            self-shortcut (the paper's "a shortcut on every adder layer"). Default False: the block's
            skip already gives that layer an identity path, and with both the features double in
            every block (×10^6 after 16 blocks), which made 16-block AdderEDSR train 1 dB worse
            than 4 blocks (docs/quality_depth.md). ``True`` is the paper's AdderEDSR and the
            structure of every model trained before this option existed.
        zero_init_residual (bool): the second unit of every residual block starts with a zero
            BatchNorm gamma, so every block starts as the identity (see
            :class:`AdderResidualBlock`). Needs ``norm="bn"``, ``second_shortcut=False`` and
            ``power_act=False``. Default False (the depth study measures it).
    """

    def __init__(self, num_in_ch: int, num_out_ch: int, num_feat: int = 64, num_block: int = 16, upscale: int = 4,
                 res_scale: float = 1, img_range: float = 255., rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040),
                 shortcut: bool = True, power_act: bool = False, norm: Optional[str] = "bn",
                 eta: Optional[float] = 0.2, weight_grad: str = "full", input_grad: str = "hardtanh",
                 adder_init: str = "normal", alpha_init: float = 1.0, power_per_channel: bool = False,
                 adder_upsampler: bool = False, image_skip: bool = True, dc_free_head: bool = True,
                 second_shortcut: bool = False, zero_init_residual: bool = False):
        super().__init__()
        if dc_free_head and not image_skip:
            raise ValueError("AdderEDSR: dc_free_head=True needs image_skip=True: a zero-sum head drops the "
                             "colour of flat regions, which then reaches the output only through the skip")
        for name, value in (("num_in_ch", num_in_ch), ("num_out_ch", num_out_ch), ("num_feat", num_feat),
                            ("num_block", num_block)):
            check_positive_int("AdderEDSR", name, value)
        if num_out_ch != num_in_ch:
            raise ValueError(f"AdderEDSR: num_out_ch ({num_out_ch}) must equal num_in_ch ({num_in_ch}): "
                             "the mean shift is added back to the output")
        self.upscale = upscale
        self.mean_shift = MeanShift("AdderEDSR", num_in_ch, rgb_mean, img_range)
        unit_kwargs = adder_unit_kwargs(shortcut, power_act, norm, eta, weight_grad, input_grad, adder_init,
                                        alpha_init, power_per_channel)

        self.image_skip = bool(image_skip)
        self.conv_first = (DCFreeConv2d if dc_free_head else nn.Conv2d)(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(AdderResidualBlock(num_feat, res_scale, second_shortcut, zero_init_residual,
                                                       **unit_kwargs)
                                    for _ in range(num_block)))
        self.conv_after_body = ShortcutAdderBlock(num_feat, act=None, **unit_kwargs)
        self.upsample = make_upsampler(num_feat, upscale, adder_upsampler, **unit_kwargs)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        if self.image_skip:  # start exactly at bicubic: the body learns the residual detail
            nn.init.zeros_(self.conv_last.weight)
            nn.init.zeros_(self.conv_last.bias)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv_first(self.mean_shift.normalize(x))
        res = self.conv_after_body(self.body(feat)) + feat
        out = self.conv_last(self.upsample(res))
        if self.image_skip:
            return bicubic_upsample(x, self.upscale) + out / self.mean_shift.img_range
        return self.mean_shift.denormalize(out)
