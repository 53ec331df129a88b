#!/usr/bin/env bash
# The depth-and-scale study's photo set, with a validation/test split (docs/quality_depth.md).
# Needs the Debian packages lomiri-wallpapers-16.04 and lomiri-wallpapers-20.04 (apt-get install,
# as root); scikit-image's and matplotlib's photos ship with their wheels.
#
#   validation (heldout/): the first study's held-out photos of lomiri 16.04 and scikit-image, which
#                          every earlier choice already looked at: choices may look at them again
#   test (test/):          two more lomiri 16.04 photos (stable choice by name hash), the whole
#                          lomiri-wallpapers-20.04 collection and matplotlib's photo: never trained
#                          on, never looked at to choose; they only report
#   training:              the other lomiri 16.04 and scikit-image photos
#
#   bash benchmarks/quality/prepare_photos_split.sh [OUT=datasets/photos_split]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-datasets/photos_split}
PY=${PYTHON:-.venv/bin/python}
SRC=$(mktemp -d)
trap 'rm -rf "$SRC"' EXIT
source benchmarks/quality/lomiri_sources.sh  # the working directory is the repository root
"$PY" -m addersr_plugin.cli data photos "$SRC/lomiri-wallpapers-16.04" skimage \
  --test-source "$SRC/lomiri-wallpapers-20.04" matplotlib \
  --holdout Dragonfly_by_Bolly Picture_0B_by_freespace astronaut motorcycle \
  --test aitzgorri_by_Aitzol_Berasategi picosdeeuropa_by_Aitzol_Berasategi \
  --out "$OUT" --reduce 4 --scales 2 3 4
