"""BasicSR models of the plugin, registered in basicsr's ``MODEL_REGISTRY`` on import.

``AdderSRModel`` (``model_type: AdderSRModel``): SRModel plus EMA that keeps BatchNorm
statistics, distillation from a trained teacher, SGD/AdamW, and training that survives bad
batches and spikes (docs/training.md).
"""

from ..integration.registration import register_model
from .adder_sr_model import OPTIMIZERS, AdderSRModel, DistillationError, ema_update

register_model(AdderSRModel)

__all__ = ["AdderSRModel", "DistillationError", "ema_update", "OPTIMIZERS"]
