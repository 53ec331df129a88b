"""``python -m addersr_plugin.energy -opt FILE ...`` (same as ``addersr energy``; the command lives in
``addersr_plugin.cli.energy``)."""

import sys

from addersr_plugin.cli.energy import main

sys.exit(main())
