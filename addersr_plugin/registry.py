"""The mmengine child registry of the plugin: scope ``addersr`` under mmengine's ``MODELS``.

``mmengine.registry.MODELS.build(dict(type='addersr.AdderEDSR', ...))`` works without
importing the plugin first: for an unknown scope mmengine's ``Registry.get`` runs
``import_module('addersr.registry')`` (the tiny top-level package ``addersr`` re-exports
this registry, which attaches it to ``MODELS`` as child ``addersr``), then the child's
``get`` imports its ``locations`` (``addersr_plugin.archs``), whose classes register here.

This module imports only mmengine, so ``addersr_plugin.archs`` may import it.
"""

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

SCOPE = "addersr"

MODELS = Registry("model", parent=MMENGINE_MODELS, scope=SCOPE, locations=["addersr_plugin.archs"])

__all__ = ["MODELS", "SCOPE"]
