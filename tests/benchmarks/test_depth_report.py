"""``benchmarks/quality/depth_report.py``'s findings: what the depth study's page says is computed
from the summary, for every adder variant (depth gain against EDSR's, gap to the CNN twin)."""

from __future__ import annotations

import importlib
import os
import sys

import pytest

from sr_helpers import REPO


@pytest.fixture(scope="module")
def report():
    sys.path.insert(0, os.path.join(REPO, "benchmarks", "quality"))
    try:
        return importlib.import_module("depth_report")
    finally:
        sys.path.pop(0)


def _row(psnr, gap=None, n=3):
    split = {"psnr": (psnr, 0.01, n), "vs_bicubic": (psnr - 30, 0.01, n), "vs_edsr": (gap, 0.05, n) if gap is not None
             else (None, None, 0), "worst_photo_vs_bicubic": 0.2}
    return {"runs": [], "val": split, "test": split, "collapse_db": 0.0}


def test_findings_cover_every_adder_variant(report):
    summ = {"4/32/4/edsr": _row(33.55), "4/32/16/edsr": _row(33.85), "4/32/4/ours_m200": _row(33.91, 0.36, 1),
            "4/32/16/ours_m200": _row(33.98, 0.13), "4/32/16/ours": _row(33.55, -0.30)}
    text = report.findings(summ)
    assert "- ×4, test: `ours_m200` at 16 blocks +0.07 dB over 4 blocks (3 / 1 seed(s)); `edsr` +0.30 dB" in text
    assert "- ×4, test, 16 blocks: `ours_m200` +0.13 dB vs its EDSR twin (3 seed(s))" in text
    assert "- ×4, test, 4 blocks: `ours_m200` +0.36 dB vs its EDSR twin (1 seed(s))" in text
    assert "- ×4, test, 32/16: `ours_m200` +0.43 dB vs `ours` (3 seed(s))" in text
    assert "`edsr` at 16 blocks" not in text and "`ours` at 16 blocks" not in text  # no 4-block `ours` here


def test_findings_without_runs(report):
    assert report.findings({}) == "(not run yet)"
