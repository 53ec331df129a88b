"""Deprecated name of :mod:`addersr_plugin.integration` (the basicsr 1.4.2 fixes), kept for one release.

Every fix now lives in a module of its own under ``addersr_plugin/integration/``; names imported
from here still work and warn.
"""

import importlib
import warnings

_OLD_PRIVATE = {"_PATCHED": "PATCHED", "_FUNCTIONAL_TENSOR": "preimport._FUNCTIONAL_TENSOR"}


def __getattr__(name):
    integration = importlib.import_module("addersr_plugin.integration")
    target = _OLD_PRIVATE.get(name, name)
    obj = integration
    for part in target.split("."):
        if not hasattr(obj, part):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        obj = getattr(obj, part)
    warnings.warn(f"addersr_plugin.compat.{name} moved to addersr_plugin.integration; the old name goes in the "
                  "next release", DeprecationWarning, stacklevel=2)
    return obj
