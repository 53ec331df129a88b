"""Registering the plugin's architectures and models in BasicSR's registries (and mmengine's).

BasicSR's ``Registry`` refuses any second registration of a name with a bare
``AssertionError``, and mmengine raises ``KeyError``. We want two different things:

* the same class registered again (a module re-executed: ``importlib.reload``, or a
  second import after it was dropped from ``sys.modules``) replaces the stale entry
  silently, so importing twice never fails;
* a *different* class already holding the name (another plugin's ``VDSR``, say) is a real
  clash: :class:`ArchNameClashError` names both classes and their modules.

"The same class" means the same ``__module__`` and ``__qualname__``. basicsr is imported inside
the functions: the package applies its pre-import fixes before anything imports basicsr.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T", bound=type)


class ArchNameClashError(RuntimeError):
    """A name of this plugin (an architecture or a model) is already taken by another class."""


def _qualified(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _check_free(registry_name: str, existing, cls: type) -> bool:
    """True when ``existing`` is a stale copy of ``cls`` (to replace); raise on a clash."""
    if existing is None:
        return False
    if _qualified(existing) == _qualified(cls):
        return True
    kind = "model" if "MODEL" in registry_name else "architecture"
    raise ArchNameClashError(
        f"cannot register {kind} {cls.__name__!r} ({_qualified(cls)}) in {registry_name}: "
        f"the name is already taken by {_qualified(existing)}. Another package registers an "
        f"{kind} of the same name; remove one of them or import only one.")


def _register_in_basicsr(registry, registry_name: str, cls: type) -> None:
    # basicsr's Registry has no "force": a stale copy of this very class is removed from its map
    if _check_free(registry_name, registry._obj_map.get(cls.__name__), cls):
        del registry._obj_map[cls.__name__]
    registry.register(cls)


def register_arch(cls: T) -> T:
    """Class decorator: register ``cls`` under ``cls.__name__`` in BasicSR and mmengine."""
    from basicsr.utils.registry import ARCH_REGISTRY

    from ..registry import MODELS

    name = cls.__name__
    _register_in_basicsr(ARCH_REGISTRY, "basicsr's ARCH_REGISTRY", cls)
    stale = _check_free("the mmengine registry (scope 'addersr')", MODELS.module_dict.get(name), cls)
    MODELS.register_module(name=name, module=cls, force=stale)
    return cls


def register_model(cls: T) -> T:
    """Class decorator: register a training model (``model_type``) in basicsr's ``MODEL_REGISTRY``."""
    from basicsr.utils.registry import MODEL_REGISTRY

    _register_in_basicsr(MODEL_REGISTRY, "basicsr's MODEL_REGISTRY", cls)
    return cls


__all__ = ["register_arch", "register_model", "ArchNameClashError"]
