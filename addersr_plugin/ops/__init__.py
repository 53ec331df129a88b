"""The adder convolution operator: ``torch.ops.addersr.adder_conv2d`` and its wrappers."""

from ._extension import extension_available, extension_status
from .adder_conv2d import adder_conv2d, adder_conv2d_reference, check_args
from .errors import AdderExtensionWarning
from .geometry import to_pair
from .adder_conv2d_u8 import (adder_conv2d_u8, adder_conv2d_u8_affine, adder_conv2d_u8_affine_reference,
                              adder_conv2d_u8_reference)

__all__ = [
    "adder_conv2d",
    "adder_conv2d_reference",
    "check_args",
    "to_pair",
    "adder_conv2d_u8",
    "adder_conv2d_u8_reference",
    "adder_conv2d_u8_affine",
    "adder_conv2d_u8_affine_reference",
    "extension_available",
    "extension_status",
    "AdderExtensionWarning",
]
