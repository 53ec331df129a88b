"""Load a script of ``benchmarks/`` as a module (the benchmarks are scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as module ``name``; its folder goes on ``sys.path`` first, since
    the scripts import their sibling modules."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load_quality_script(name: str):
    """``benchmarks/quality/<name>.py`` as module ``name``: the quality scripts import their siblings
    (``runner``, ``depth_study``) by name, so their folder is on ``sys.path`` while it imports."""
    import importlib

    sys.path.insert(0, str(BENCH / "quality"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)
