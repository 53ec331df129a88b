"""AdderSR architectures, registered in BasicSR's ``ARCH_REGISTRY`` and mmengine's (scope ``addersr``).

One ``*_arch.py`` per architecture, BasicSR style. Importing basicsr needs
``addersr_plugin.compat`` applied first; ``addersr_plugin/__init__.py`` does that before
importing this package (and mmengine's lazy ``locations`` import goes through it too).
"""

from ..integration.registration import ArchNameClashError, register_arch
from .adder_edsr_arch import AdderEDSR, AdderResidualBlock, AdderUpsampleStep
from .adder_vdsr_arch import AdderVDSR
from .vdsr_arch import VDSR

ARCH_NAMES = ("AdderEDSR", "AdderVDSR", "VDSR")

__all__ = ["AdderEDSR", "AdderVDSR", "VDSR", "AdderResidualBlock", "AdderUpsampleStep", "ARCH_NAMES",
           "ArchNameClashError", "register_arch"]
