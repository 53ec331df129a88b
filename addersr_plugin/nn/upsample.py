"""Upsampling layers: the adder upsampler step and the bicubic image skip."""

from __future__ import annotations

from torch import Tensor, nn

from .shortcut_block import ShortcutAdderBlock


class AdderUpsampleStep(ShortcutAdderBlock):
    """One ×s upsampler step as an adder unit: adder(C -> s²C) -> BN -> power -> PixelShuffle(s).

    The CNN step is conv -> PixelShuffle with no activation, so the unit has no ReLU; the
    channel count changes, so no self-shortcut is possible. The unit is
    :class:`ShortcutAdderBlock` itself (one definition of the adder -> BN -> power order).
    """

    def __init__(self, num_feat: int, scale: int, **unit_kwargs):
        unit_kwargs = dict(unit_kwargs, shortcut=False, act=None)
        super().__init__(num_feat, out_feat=scale * scale * num_feat, **unit_kwargs)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.shuffle(super().forward(x))

    def extra_repr(self) -> str:
        return ""


def bicubic_upsample(x: Tensor, upscale: int) -> Tensor:
    """VDSR's interpolated input: bicubic ×upscale, ``align_corners=False``.

    With an integer ``scale_factor`` the output is exactly ``upscale`` times the input size
    for any (odd) size; ``upscale == 1`` returns the input itself.
    """
    if upscale == 1:
        return x
    return nn.functional.interpolate(x, scale_factor=upscale, mode="bicubic", align_corners=False)


__all__ = ["AdderUpsampleStep", "bicubic_upsample"]
