"""``benchmarks/profile_train_step.py``: a one-iteration smoke run on tiny networks writes a JSON with
the fields docs/benchmarks.md reads, every profiled millisecond lands in a category, and an existing
results file is never overwritten. No timing is asserted."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from bench_helpers import load_benchmark as _load

TINY = ["--num-feat", "4", "--num-block", "1", "--batch", "2", "--lr-size", "8", "--rounds", "1", "--iters", "1",
        "--warmup", "0", "--profile-iters", "1"]




@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_smoke_run_writes_the_report(tmp_path, capsys, one_thread):
    script = _load("profile_train_step")
    out = tmp_path / "p.json"
    assert script.main([*TINY, "--json", str(out), "--label", "smoke"]) == 0
    report = json.loads(out.read_text())
    for key in ("date", "cpu", "torch", "torch_threads", "load_average_1min_at_start", "load_average_1min_at_end"):
        assert key in report["machine"], f"machine info lacks {key}: {report['machine']}"
    assert report["label"] == "smoke"
    assert "--json" in report["command"], f"the command line is not recorded: {report['command']!r}"
    keys = {f"{a}/{lay}" for a in ("AdderEDSR", "EDSR") for lay in ("nchw", "channels_last")}
    assert set(report["timing"]) == keys, f"timed: {sorted(report['timing'])}"
    assert set(report["profile"]) == keys, f"profiled: {sorted(report['profile'])}"
    for lay in ("nchw", "channels_last"):
        expect = report["timing"][f"AdderEDSR/{lay}"]["median_s"] / report["timing"][f"EDSR/{lay}"]["median_s"]
        assert report["ratios"][lay] == pytest.approx(expect), f"ratio of {lay} is not the medians' ratio"
    measure = sys.modules["train_step_measure"]
    for key, prof in report["profile"].items():
        cats = prof["categories_ms_per_iter"]
        assert list(cats) == list(measure.CATEGORIES), f"{key}: categories {list(cats)}"
        assert sum(cats.values()) == pytest.approx(prof["total_self_ms_per_iter"]), f"{key}: categories do not add up"
    adder, edsr = report["profile"]["AdderEDSR/nchw"]["categories_ms_per_iter"], \
        report["profile"]["EDSR/nchw"]["categories_ms_per_iter"]
    assert adder["adder op forward"] > 0 and adder["adder op backward"] > 0, f"adder op not found: {adder}"
    assert adder["BN"] > 0 and adder["adaptive-LR hook"] > 0, f"BN/ALR not found: {adder}"
    assert edsr["adder op forward"] == 0 and edsr["BN"] == 0, f"EDSR has no adder op and no BN: {edsr}"
    assert edsr["conv backward"] > 0 and edsr["optimizer step"] > 0, f"EDSR conv/optimizer not found: {edsr}"
    printed = capsys.readouterr().out
    assert "| nchw |" in printed and "AdderEDSR / EDSR" in printed, "the markdown table is not printed"


def test_refuses_to_overwrite(tmp_path, capsys):
    script = _load("profile_train_step")
    out = tmp_path / "p.json"
    out.write_text("{}")
    with pytest.raises(SystemExit):
        script.main([*TINY, "--json", str(out)])
    assert "never overwritten" in capsys.readouterr().err
    assert out.read_text() == "{}", "the existing file was changed"
