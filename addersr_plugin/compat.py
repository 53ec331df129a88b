"""Fixes that make basicsr 1.4.2 (PyPI) work on current torch/torchvision.

``addersr_plugin/__init__.py`` calls :func:`apply` before anything imports basicsr.
This module therefore never imports basicsr at import time; the patches that replace
basicsr functions import it lazily, after the torchvision alias is in place.
Every fix is idempotent and a no-op where basicsr already behaves (see ADDERSR.md §4).
"""

from __future__ import annotations

import importlib
import sys

_FUNCTIONAL_TENSOR = "torchvision.transforms.functional_tensor"
_FUNCTIONAL_TENSOR_NEW = "torchvision.transforms._functional_tensor"


def alias_functional_tensor() -> bool:
    """Alias the module torchvision removed in 0.17 (basicsr's degradations import it).

    Returns True when an alias was installed, False when the real module exists (or was
    already aliased).
    """
    if _FUNCTIONAL_TENSOR in sys.modules:
        return False
    try:
        importlib.import_module(_FUNCTIONAL_TENSOR)
        return False
    except ImportError:
        pass
    sys.modules[_FUNCTIONAL_TENSOR] = importlib.import_module(_FUNCTIONAL_TENSOR_NEW)
    return True


def apply() -> None:
    """Apply every compatibility fix; safe to call any number of times."""
    alias_functional_tensor()
