"""Shared test setup: the tests are in folders by area (ops/, nn/, archs/, models/, quant/, energy/,
data/, cli/, integration/, benchmarks/), like BasicSR's; helpers they share live in
``tests/sr_helpers.py``, importable from every folder because this file puts ``tests/`` on the path.
"""

import os
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
