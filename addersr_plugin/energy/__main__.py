"""``python -m addersr_plugin.energy -opt FILE ...`` (same as ``addersr energy``)."""

import sys

from . import main

sys.exit(main())
