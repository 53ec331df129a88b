"""The two fixes basicsr 1.4.2 needs before it can be imported at all on current Python and torchvision.

* ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17; basicsr's
  degradations import it) is aliased to its new private name;
* ``distutils`` (gone in Python 3.12; ``basicsr.archs.arch_util`` imports ``LooseVersion``) is
  taken from setuptools' vendored copy when the import fails.

This module imports nothing but the standard library: the startup hook (``_addersr_plugin_hook``)
loads this one file by path, before basicsr's ``__init__`` runs, without importing the package
(which would import basicsr in the middle of basicsr's own import).
"""

from __future__ import annotations

import importlib
import sys

PATCHED = "__addersr_compat__"  # attribute set on every replacement function of the integration
_FUNCTIONAL_TENSOR = "torchvision.transforms.functional_tensor"
_FUNCTIONAL_TENSOR_NEW = "torchvision.transforms._functional_tensor"


def alias_functional_tensor() -> bool:
    """Alias the module torchvision removed in 0.17 (basicsr's degradations import it).

    Returns True when an alias was installed, False when the real module exists (or was
    already aliased).
    """
    if sys.modules.get(_FUNCTIONAL_TENSOR) is not None:
        return False
    try:
        importlib.import_module(_FUNCTIONAL_TENSOR)
        return False
    except ImportError:
        pass
    sys.modules[_FUNCTIONAL_TENSOR] = importlib.import_module(_FUNCTIONAL_TENSOR_NEW)
    return True


def ensure_distutils() -> bool:
    """Make ``from distutils.version import LooseVersion`` work (Python >= 3.12 lacks it).

    Returns True when setuptools' vendored distutils had to be installed as ``distutils``.
    """
    try:
        importlib.import_module("distutils.version")
        return False
    except ImportError:
        pass
    try:
        vendored = importlib.import_module("setuptools._distutils")
        vendored_version = importlib.import_module("setuptools._distutils.version")
    except ImportError as exc:  # pragma: no cover - setuptools is a declared dependency
        raise ImportError(
            "basicsr 1.4.2 needs 'distutils' (removed in Python 3.12); "
            "install setuptools: pip install setuptools"
        ) from exc
    sys.modules["distutils"] = vendored
    sys.modules["distutils.version"] = vendored_version
    return True


__all__ = ["alias_functional_tensor", "ensure_distutils", "PATCHED"]
