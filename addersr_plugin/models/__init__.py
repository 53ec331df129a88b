"""BasicSR models of the plugin, registered in basicsr's ``MODEL_REGISTRY`` on import.

``AdderSRModel`` (``model_type: AdderSRModel``): SRModel plus EMA that keeps BatchNorm
statistics, distillation from a trained teacher, and SGD/AdamW.
"""

from basicsr.utils.registry import MODEL_REGISTRY

from .adder_sr_model import OPTIMIZERS, AdderSRModel, DistillationError, ema_update


def _register(cls) -> None:
    existing = MODEL_REGISTRY._obj_map.get(cls.__name__)
    if existing is not None:
        if (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
            raise RuntimeError(f"cannot register model {cls.__name__!r}: the name is taken by "
                               f"{existing.__module__}.{existing.__qualname__}")
        del MODEL_REGISTRY._obj_map[cls.__name__]  # a re-import of this very class
    MODEL_REGISTRY.register(cls)


_register(AdderSRModel)

__all__ = ["AdderSRModel", "DistillationError", "ema_update", "OPTIMIZERS"]
