"""Operation and energy accounting for super-resolution networks (``addersr energy``).

Counts, per layer, the multiplications, additions, comparisons and exp/log evaluations of a
network by running it on the meta device under a dispatch mode (no real compute), then prices
them with the 45 nm table of Horowitz (ISSCC 2014). See ``docs/energy.md``.
"""

from .counter import BN_MODES, count_operations, total
from .counts import CATEGORIES, PAPER_RULE_CATEGORIES, OpCount, Record
from .errors import (BadSizeError, EnergyError, OptionFileError, UnknownBNModeError, UnknownConventionError,
                     UnknownPrecisionError)
from .network import NetworkCount, count_network, count_option_file, lr_size, parse_hr_size
from .report import comparison
from .rules import CONVENTIONS
from .table import PRECISIONS, EnergyTable, energy_table



def __getattr__(name):
    # deprecated alias, one release: the command moved to addersr_plugin.cli.energy
    if name == "main":
        import importlib
        import warnings

        warnings.warn("addersr_plugin.energy.main moved to addersr_plugin.cli.energy.main; the old name goes in the "
                      "next release", DeprecationWarning, stacklevel=2)
        return importlib.import_module("addersr_plugin.cli.energy").main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "count_operations", "total", "count_network", "count_option_file", "NetworkCount", "comparison",
    "parse_hr_size", "lr_size", "energy_table", "EnergyTable", "OpCount", "Record", "PRECISIONS", "CONVENTIONS",
    "BN_MODES", "CATEGORIES", "PAPER_RULE_CATEGORIES", "EnergyError", "UnknownPrecisionError",
    "UnknownConventionError", "UnknownBNModeError", "BadSizeError", "OptionFileError",
]
