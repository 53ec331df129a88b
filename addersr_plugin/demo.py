"""``python -m addersr_plugin.demo`` (``make demo``): the demo command, which lives in
``addersr_plugin.cli.demo`` (this module is its entry point and a deprecated alias for one release)."""

import importlib
import sys
import warnings


def __getattr__(name):
    module = importlib.import_module("addersr_plugin.cli.demo")
    if not hasattr(module, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"addersr_plugin.demo.{name} moved to addersr_plugin.cli.demo.{name}; the old name goes in the "
                  "next release", DeprecationWarning, stacklevel=2)
    return getattr(module, name)


if __name__ == "__main__":
    from addersr_plugin.cli.demo import main

    sys.exit(main())
