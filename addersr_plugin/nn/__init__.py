"""Every layer of the plugin: the adder convolution, the adder unit and the blocks and helpers the
architectures assemble (``archs`` only assembles these).

This layer never imports basicsr (that needs the BasicSR integration applied first).
"""

from .adder_conv import INIT_MODES, AdderConv2d, adaptive_lr_scale
from .dc_free_conv import DCFreeConv2d
from .mean_shift import MeanShift
from .power_activation import PowerActivation
from .residual_block import AdderResidualBlock
from .shortcut_block import ACTS, NORMS, ShortcutAdderBlock
from .upsample import AdderUpsampleStep, bicubic_upsample

__all__ = ["AdderConv2d", "adaptive_lr_scale", "PowerActivation", "ShortcutAdderBlock", "AdderResidualBlock",
           "AdderUpsampleStep", "DCFreeConv2d", "MeanShift", "bicubic_upsample", "INIT_MODES", "NORMS", "ACTS"]
