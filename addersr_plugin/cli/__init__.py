"""Console commands: ``basicsr`` (train/test) and ``addersr`` (data, upscale, demo, energy).

``python -m addersr_plugin.cli ARGS`` runs ``basicsr`` when ARGS start with train/test and
``addersr`` otherwise, so both work before the console scripts are installed.
"""

from .addersr_cmd import addersr_main
from .basicsr_cmd import basicsr_main

__all__ = ["addersr_main", "basicsr_main"]
