#!/usr/bin/env bash
# The study's photo set ("mini-DIV2K"), docs/quality.md. Needs the Debian packages
# lomiri-wallpapers-16.04 and lomiri-wallpapers-20.04 (apt-get install, as root): their
# photos share /usr/share/backgrounds, so each package becomes its own source folder of
# links (one source per collection, so held-out photos come from every collection).
#
#   bash benchmarks/quality/prepare_photos.sh [OUT=datasets/photos]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-datasets/photos}
PY=${PYTHON:-.venv/bin/python}
SRC=$(mktemp -d)
trap 'rm -rf "$SRC"' EXIT
source benchmarks/quality/lomiri_sources.sh  # the working directory is the repository root
"$PY" -m addersr_plugin.cli data photos "$SRC/lomiri-wallpapers-16.04" "$SRC/lomiri-wallpapers-20.04" skimage \
  --out "$OUT" --reduce 4 --holdout-per-source 2 --scales 2 3 4
