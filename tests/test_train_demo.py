"""The demo's whole path (data set -> two ``basicsr train`` runs -> scores, PNGs, report), made tiny.

Two photos and two iterations of 4-feature nets: far too little to beat bicubic, so this also
checks that the demo then fails loudly (exit 1) after writing its report.
"""

from __future__ import annotations

import os

import cv2
import pytest

import addersr_plugin  # noqa: F401
from addersr_plugin import demo
from addersr_plugin.data import demo_set
from sr_helpers import env

pytestmark = pytest.mark.slow


def test_demo_end_to_end_tiny(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo_set, "TRAIN_PHOTOS", ("astronaut",))
    monkeypatch.setattr(demo_set, "VAL_PHOTOS", ("chelsea",))
    for key, value in env().items():  # the training subprocesses must find this checkout
        monkeypatch.setenv(key, value)
    out = tmp_path / "demo"
    code = demo.main(["--out", str(out), "--iters", "2", "--num-feat", "4", "--num-block", "1",
                      "--batch", "2", "--gt-size", "32"])
    printed = capsys.readouterr()
    assert code == 1
    assert "FAILED: AdderEDSR is" in printed.err and "below bicubic" in printed.err
    assert "[AdderEDSR]" in printed.out and "[EDSR]" in printed.out and "# psnr:" in printed.out
    report = (out / "results.md").read_text()
    rows = [line.split("|")[1].strip() for line in report.splitlines() if line.startswith("| ")]
    assert rows == ["method", "bicubic", "AdderEDSR", "EDSR"]
    bicubic = float(report.split("| bicubic | ")[1].split(" / ")[0])
    assert 30 < bicubic < 40  # x2 MATLAB bicubic on the cat photo, Y channel
    assert "- AdderEDSR: 2 iterations, trained in" in report and "- EDSR: 2 iterations" in report
    png = cv2.imread(str(out / "comparison_chelsea.png"))
    assert png.shape == (256, 3 * 256 + 2 * 4, 3)  # three labelled 256² crops side by side
    for name in ("demo_adder_edsr_x2", "demo_edsr_x2"):
        assert os.path.isfile(out / "experiments" / name / "models" / "net_g_latest.pth")
        assert os.path.isfile(out / "options" / f"{name}.yml")


def test_results_table_and_mean():
    scores = {"bicubic": {"a": (30.0, 0.9), "b": (32.0, 0.8)}, "AdderEDSR": {"a": (31.0, 0.91), "b": (33.5, 0.85)}}
    table = demo.results_table(scores)
    assert "| bicubic | 30.00 / 0.9000 | 32.00 / 0.8000 | 31.00 / 0.8500 |" in table
    assert demo.mean_psnr(scores, "AdderEDSR") == pytest.approx(32.25)
