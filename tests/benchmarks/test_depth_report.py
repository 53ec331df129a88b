"""``benchmarks/quality/depth_report.py``'s findings: what the depth study's page says is computed
from the summary, for every adder variant (depth gain against EDSR's, gap to the CNN twin)."""

from __future__ import annotations

import pytest

from bench_helpers import load_quality_script


@pytest.fixture(scope="module")
def report():
    return load_quality_script("depth_report")


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


def _run(variant, seed, curve, iters=2000):
    return {"fields": {"scale": 4, "feat": 32, "block": 16, "variant": variant, "seed": seed},
            "curve": curve, "cost": {"iters": iters}}


def test_mean_curves_average_seeds_where_every_seed_reached(report):
    results = {"a10": _run("ours_m200", 10, [(250, 28.0), (500, 29.0), (750, 29.5)]),
               "a11": _run("ours_m200", 11, [(250, 27.0), (500, 28.0)]),  # stopped at 500
               "e10": _run("edsr", 10, [(250, 28.5), (500, 29.2)])}
    curves = report.mean_curves(results, list(results))
    its, mean, low, high, seeds = curves["ours_m200"]
    assert its == [250, 500] and seeds == 2
    assert list(mean) == [27.5, 28.5] and list(low) == [27.0, 28.0] and list(high) == [28.0, 29.0]
    assert curves["edsr"][4] == 1 and list(curves["edsr"][1]) == [28.5, 29.2]


def test_long_runs_get_their_own_curves(report, tmp_path):
    results = {"a10": _run("ours_m200", 10, [(250, 28.0), (500, 29.0)]),
               "s10": _run("ship_m200", 10, [(500, 28.0), (6000, 29.1)], iters=6000)}
    assert report.plot_curves(results, 16, str(tmp_path / "study.png"))
    assert report.plot_curves(results, 16, str(tmp_path / "long.png"), long_runs=True)
    assert not report.plot_curves(results, 4, str(tmp_path / "none.png"))
    assert (tmp_path / "study.png").stat().st_size > 0 and (tmp_path / "long.png").stat().st_size > 0
    assert not report.plot_curves({"a10": results["a10"]}, 16, str(tmp_path / "x.png"), long_runs=True)


def test_vdsr_probe_numbers_come_from_the_probe_json(report, tmp_path):
    import json

    def cand(active, **net):
        return {"net": net, "first_batch": {"l1_fresh_net": 0.9 if not net else 0.0123, "l1_bicubic": 0.0123},
                "trace": [{"iter": 25, "last_relu_active": 0.5}, {"iter": 300, "last_relu_active": active}]}

    path = tmp_path / "probe.json"
    path.write_text(json.dumps({"iters": 300, "candidates": {
        "adam_2e-3": cand(0.0), "sgd_paper": cand(0.1), "adam_1e-4_zl": cand(0.437, zero_init_last=True)}}))
    blocks = report.vdsr_probe_blocks(str(path))
    assert blocks["VDSR_FRESH"] == "per-pixel L1 error 0.900 on the first training batch, against 0.0123 for bicubic"
    assert blocks["VDSR_ZL_ACTIVE"] == "44% of its last hidden units active after 300 iterations, against 0%–10% for the others"
    assert report.vdsr_probe_blocks(str(tmp_path / "absent.json")) == {}


def test_vdsr_rules_pair_each_rule_with_its_twin(report):
    summ = {"2/16/20/avdsr_pow_m200": _row(33.39, -0.26), "2/16/20/vdsr_zl_lr2e4": _row(33.84),
            "2/16/20/avdsr_pow_ship_m200": _row(33.00, -1.10, 1), "2/16/20/vdsr_zl_ship": _row(34.19, n=1)}
    text = report.vdsr_rules(summ)
    lines = text.splitlines()
    study_rule = next(line for line in lines if line.startswith("| `avdsr_pow_m200`"))
    assert "| 33.39 ± 0.01 (3) |" in study_rule and "`vdsr_zl_lr2e4`" in study_rule and "-0.26 ± 0.05 (3)" in study_rule
    ship = next(line for line in lines if line.startswith("| `avdsr_pow_ship_m200`"))
    assert "`vdsr_zl_ship`" in ship and "| 34.19 ± 0.01 (1) |" in ship and "-1.10 ± 0.05 (1)" in ship
    assert "avdsr_pow_long_m200" not in text  # not run: no row
    assert report.vdsr_rules({"2/16/20/avdsr_pow_m200": _row(33.39, -0.26)}) == "(not run yet)"  # no twin
