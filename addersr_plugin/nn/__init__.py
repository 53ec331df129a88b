"""AdderSR layers: the adder convolution layer, the power activation and the adder unit.

This layer never imports basicsr (that needs ``addersr_plugin.compat`` applied first).
"""

from .adder_conv import INIT_MODES, AdderConv2d, adaptive_lr_scale
from .power_activation import PowerActivation
from .shortcut_block import ACTS, NORMS, ShortcutAdderBlock

__all__ = ["AdderConv2d", "adaptive_lr_scale", "PowerActivation", "ShortcutAdderBlock",
           "INIT_MODES", "NORMS", "ACTS"]
