"""Named errors of the energy counter; the command prints their message and exits with 2."""

from ..checkpoint_io import LoadError


class EnergyError(ValueError):
    """Bad input to ``addersr energy`` (base class)."""


class UnknownPrecisionError(EnergyError):
    """A precision name that the energy table does not hold."""


class UnknownConventionError(EnergyError):
    """A counting convention the counter does not know."""


class UnknownBNModeError(EnergyError):
    """A batch-norm pricing mode other than folded/unfolded."""


class BadSizeError(EnergyError):
    """A malformed ``--hr-size`` or one the scale does not divide."""


class OptionFileError(EnergyError, LoadError):
    """An option file that cannot be read or lacks what the counter needs."""
