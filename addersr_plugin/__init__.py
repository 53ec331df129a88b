"""addersr-plugin: adder neural networks for super-resolution (AdderSR) in BasicSR.

Importing the package:

1. applies the basicsr 1.4.2 fixes (``integration``) before anything imports basicsr;
2. loads the ``addersr::adder_conv2d`` operator (compiled kernels, or the reference fallback);
3. registers the layers' architectures ``AdderEDSR``, ``AdderVDSR`` and ``VDSR`` in BasicSR's
   ``ARCH_REGISTRY`` and the mmengine child registry (scope ``addersr``);
4. registers the training model ``AdderSRModel`` in BasicSR's ``MODEL_REGISTRY``.
"""

from . import integration

integration.apply()

from . import ops  # noqa: E402
from . import nn  # noqa: E402
from . import archs  # noqa: E402
from . import models  # noqa: E402
from . import registry  # noqa: E402
from ._version import __version__  # noqa: E402

__all__ = ["ops", "nn", "archs", "models", "registry", "integration", "__version__"]
