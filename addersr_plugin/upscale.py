"""Deprecated location of ``addersr upscale`` and its helpers (kept for one release).

The command moved to :mod:`addersr_plugin.cli.upscale`, the tiling and image helpers to
:mod:`addersr_plugin.inference` and the generator loader to :mod:`addersr_plugin.loading`.
Importing a name from here still works and warns once per name.
"""

import importlib
import sys
import warnings

_MOVED = {
    "UpscaleError": "addersr_plugin.inference", "TileSeamWarning": "addersr_plugin.inference",
    "receptive_radius": "addersr_plugin.inference", "resolve_tile_pad": "addersr_plugin.inference",
    "upscale_tensor": "addersr_plugin.inference", "upscale_image": "addersr_plugin.inference",
    "load_generator": "addersr_plugin.loading", "option_scale": "addersr_plugin.loading",
    "build_parser": "addersr_plugin.cli.upscale", "main": "addersr_plugin.cli.upscale",
}


def __getattr__(name):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"addersr_plugin.upscale.{name} moved to {_MOVED[name]}.{name}; the old name goes in the next "
                  "release", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(_MOVED[name]), name)


if __name__ == "__main__":
    from addersr_plugin.cli.upscale import main

    sys.exit(main())
