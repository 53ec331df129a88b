"""Operation and energy accounting for super-resolution networks (``addersr energy``).

Counts, per layer, the multiplications, additions, comparisons and exp/log evaluations of a
network by running it on the meta device under a dispatch mode (no real compute), then prices
them with the 45 nm table of Horowitz (ISSCC 2014). See ``docs/energy.md``.
"""

from .counter import BN_MODES, count_operations, total
from .counts import CATEGORIES, PAPER_RULE_CATEGORIES, OpCount, Record
from .errors import (BadSizeError, EnergyError, OptionFileError, UnknownBNModeError, UnknownConventionError,
                     UnknownPrecisionError)
from .network import NetworkCount, count_network, lr_size, parse_hr_size
from .report import comparison
from .rules import CONVENTIONS
from .table import PRECISIONS, EnergyTable, energy_table



def __getattr__(name):
    # deprecated alias, one release: the command moved to addersr_plugin.cli.energy
    if name in ("main", "count_option_file"):
        import importlib
        import warnings

        warnings.warn(f"addersr_plugin.energy.{name} moved to addersr_plugin.cli.energy.{name}; the old name goes "
                      "in the next release", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module("addersr_plugin.cli.energy"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "count_operations", "total", "count_network", "NetworkCount", "comparison",
    "parse_hr_size", "lr_size", "energy_table", "EnergyTable", "OpCount", "Record", "PRECISIONS", "CONVENTIONS",
    "BN_MODES", "CATEGORIES", "PAPER_RULE_CATEGORIES", "EnergyError", "UnknownPrecisionError",
    "UnknownConventionError", "UnknownBNModeError", "BadSizeError", "OptionFileError",
]
