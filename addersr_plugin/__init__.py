"""addersr-plugin: adder neural networks for super-resolution (AdderSR) in BasicSR.

Importing the package (:func:`load`):

1. applies the basicsr 1.4.2 fixes (``integration``) before anything imports basicsr;
2. loads the ``addersr::adder_conv2d`` operator (compiled kernels, or the reference fallback);
3. registers the layers' architectures ``AdderEDSR``, ``AdderVDSR`` and ``VDSR`` in BasicSR's
   ``ARCH_REGISTRY`` and the mmengine child registry (scope ``addersr``);
4. registers the training model ``AdderSRModel`` in BasicSR's ``MODEL_REGISTRY``.

The console commands (``addersr``, ``basicsr``: ``addersr/cli.py``) import the package with
``_DEFER_LOAD`` set, parse their arguments first and call :func:`load` only when a command runs,
so ``--help`` and usage errors need neither torch nor basicsr (4 s of imports).
"""

from ._version import __version__

_loaded = False


def load() -> None:
    """Everything importing the package does (see above); idempotent."""
    global _loaded
    if _loaded:
        return
    from . import integration

    integration.apply()
    from . import ops, nn, archs, models, registry  # noqa: F401  (loads the op, registers)

    _loaded = True


# Set on the module object by addersr/cli.py before it executes this file (and only there).
if not globals().pop("_DEFER_LOAD", False):
    load()

__all__ = ["ops", "nn", "archs", "models", "registry", "integration", "load", "__version__"]
