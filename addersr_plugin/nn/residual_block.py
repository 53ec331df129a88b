"""``AdderResidualBlock``: EDSR's residual block built from adder units."""

from __future__ import annotations

from torch import Tensor, nn

from .shortcut_block import ShortcutAdderBlock


class AdderResidualBlock(nn.Module):
    """EDSR's residual block with adder units: ``x + res_scale * unit2(unit1(x))``.

    The CNN block is conv-ReLU-conv; each conv becomes a :class:`ShortcutAdderBlock`
    and ReLU stays only where the CNN has it (after the first unit).

    ``second_shortcut=False`` drops the second unit's own self-shortcut: the block's skip
    ``x + ...`` already gives that adder layer an identity path. With it (the paper's literal
    "a shortcut on every adder layer"), the branch carries ``unit1(x) ≈ relu(x + ...)`` on top of
    the block's skip, so a block returns about ``(1 + res_scale) · x``: features double in every
    block at ``res_scale=1`` (×2^16 ≈ 10^6 after 16 blocks at initialisation) until the adder
    weights, which live near N(0, 1), no longer matter. That is why 16-block AdderEDSR trained
    worse than 4 blocks and collapsed (docs/quality.md, the depth study).

    ``zero_init_residual=True`` starts the BatchNorm scale (gamma) of the second unit at zero, so
    the branch outputs zero and every block is the identity at initialisation (torchvision's
    ResNet option of the same name; Goyal et al. 2017). Without it each branch adds a
    unit-variance BN output to the features, and a deep stack starts far from the identity.
    It needs the second unit's BN (``norm="bn"``) and no self-shortcut on it.
    """

    def __init__(self, num_feat: int, res_scale: float, second_shortcut: bool = False,
                 zero_init_residual: bool = False, **unit_kwargs):
        super().__init__()
        self.res_scale = res_scale
        self.unit1 = ShortcutAdderBlock(num_feat, act="relu", **unit_kwargs)
        unit2_kwargs = dict(unit_kwargs, shortcut=unit_kwargs.get("shortcut", True) and second_shortcut)
        self.unit2 = ShortcutAdderBlock(num_feat, act=None, **unit2_kwargs)
        if zero_init_residual:
            # With a self-shortcut or a power activation on unit2 a zero gamma would not zero the
            # branch, and without BN there is no gamma: refuse rather than do something else.
            if self.unit2.norm is None or self.unit2.shortcut or self.unit2.power is not None:
                raise ValueError("AdderResidualBlock: zero_init_residual needs the second unit to end in "
                                 "BatchNorm (norm='bn', second_shortcut=False, no power activation)")
            nn.init.zeros_(self.unit2.norm.weight)

    def forward(self, x: Tensor) -> Tensor:
        # NCHW, as the adder op computes and returns: a channels_last x would make this skip add
        # mix layouts (a strided pass) and every unit copy its input again (docs/benchmarks.md,
        # "Training step"). A no-op for an NCHW x.
        x = x.contiguous()
        branch = self.unit2(self.unit1(x)) * self.res_scale
        # In place: nothing saved for the backward reads unit2's output (BN, the adder op and the
        # power activation keep their inputs), so its buffer can hold the sum; autograd's version
        # counter would raise if that ever changed.
        return branch.add_(x)

    def extra_repr(self) -> str:
        return f"res_scale={self.res_scale}"


__all__ = ["AdderResidualBlock"]
