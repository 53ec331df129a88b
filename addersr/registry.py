"""Re-export of the plugin's mmengine child registry (scope ``addersr``); see ``addersr_plugin.registry``."""

from addersr_plugin.registry import MODELS, SCOPE

__all__ = ["MODELS", "SCOPE"]
