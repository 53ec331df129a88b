"""Registering the plugin's architectures in BasicSR's ``ARCH_REGISTRY`` and mmengine's.

BasicSR's ``Registry`` refuses any second registration of a name with a bare
``AssertionError``, and mmengine raises ``KeyError``. We want two different things:

* the same class registered again (a module re-executed: ``importlib.reload``, or a
  second import after it was dropped from ``sys.modules``) replaces the stale entry
  silently, so importing twice never fails;
* a *different* class already holding the name (another plugin's ``VDSR``, say) is a real
  clash: :class:`ArchNameClashError` names both classes and their modules.

"The same class" means the same ``__module__`` and ``__qualname__``.
"""

from __future__ import annotations

from typing import Type, TypeVar

from basicsr.utils.registry import ARCH_REGISTRY

from ..registry import MODELS

T = TypeVar("T", bound=type)


class ArchNameClashError(RuntimeError):
    """An architecture name of this plugin is already taken by another class."""


def _qualified(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _check_free(registry_name: str, existing, cls: type) -> bool:
    """True when ``existing`` is a stale copy of ``cls`` (to replace); raise on a clash."""
    if existing is None:
        return False
    if _qualified(existing) == _qualified(cls):
        return True
    raise ArchNameClashError(
        f"cannot register architecture {cls.__name__!r} ({_qualified(cls)}) in {registry_name}: "
        f"the name is already taken by {_qualified(existing)}. Another package registers an "
        "architecture of the same name; remove one of them or import only one.")


def register_arch(cls: T) -> T:
    """Class decorator: register ``cls`` under ``cls.__name__`` in BasicSR and mmengine."""
    name = cls.__name__
    if _check_free("basicsr's ARCH_REGISTRY", ARCH_REGISTRY._obj_map.get(name), cls):
        del ARCH_REGISTRY._obj_map[name]  # stale copy of this very class
    ARCH_REGISTRY.register(cls)
    stale = _check_free("the mmengine registry (scope 'addersr')", MODELS.module_dict.get(name), cls)
    MODELS.register_module(name=name, module=cls, force=stale)
    return cls


__all__ = ["register_arch", "ArchNameClashError", "ARCH_REGISTRY"]
