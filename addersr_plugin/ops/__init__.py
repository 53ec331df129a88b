"""The adder convolution operator: ``torch.ops.addersr.adder_conv2d`` and its wrappers."""

from ._extension import AdderExtensionWarning, extension_available, extension_status
from .adder_conv2d import adder_conv2d, adder_conv2d_reference, check_args, to_pair

__all__ = [
    "adder_conv2d",
    "adder_conv2d_reference",
    "check_args",
    "to_pair",
    "extension_available",
    "extension_status",
    "AdderExtensionWarning",
]
