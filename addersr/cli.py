"""The console commands ``addersr`` and ``basicsr`` (``[project.scripts]`` in pyproject.toml).

They live outside ``addersr_plugin`` because importing that package applies the basicsr fixes,
loads the adder op and registers the architectures: 4 s of torch and basicsr imports, which
``--help``, ``--version`` and a mistyped option should not wait for. Here the package is
executed with ``_DEFER_LOAD`` set (nothing heavy is imported), the command parses its arguments,
and ``addersr_plugin.load()`` runs when a command actually starts (``addersr_plugin/cli``).
In a process that imported ``addersr_plugin`` already, this changes nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def _plugin_cli():
    if "addersr_plugin" not in sys.modules:
        spec = importlib.util.find_spec("addersr_plugin")
        if spec is None:
            raise SystemExit("addersr: the addersr_plugin package is not installed")
        module = importlib.util.module_from_spec(spec)
        module._DEFER_LOAD = True
        sys.modules["addersr_plugin"] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules["addersr_plugin"]
            raise
    return importlib.import_module("addersr_plugin.cli")


def addersr_main(argv: list[str] | None = None) -> int:
    """``addersr data|upscale|demo|energy|quantize ...``."""
    return _plugin_cli().addersr_main(argv)


def basicsr_main(argv: list[str] | None = None) -> int:
    """``basicsr train|test -opt FILE ...``."""
    return _plugin_cli().basicsr_main(argv)


__all__ = ["addersr_main", "basicsr_main"]
