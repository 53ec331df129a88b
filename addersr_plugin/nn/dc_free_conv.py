"""``DCFreeConv2d``: a convolution blind to absolute colour (every filter sums to zero)."""

from __future__ import annotations

from torch import Tensor, nn


class DCFreeConv2d(nn.Conv2d):
    """A convolution whose every filter sums to zero over its spatial taps (ours, not the paper's).

    The filter used is ``w - mean_{kh,kw}(w)``, per (output, input) channel pair, so a
    region of constant colour - any colour - gives the same output (the bias). Behind such a
    head the adder body sees local structure only, never absolute colour, which an adder
    layer (``-sum|x - w|`` is not shift-invariant) would otherwise respond to in ways it never
    saw in training. The colour itself reaches the output through the image-level skip.
    """

    def zero_mean_weight(self) -> Tensor:
        return self.weight - self.weight.mean(dim=(2, 3), keepdim=True)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.zero_mean_weight(), self.bias)


__all__ = ["DCFreeConv2d"]
