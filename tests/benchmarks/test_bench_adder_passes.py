"""``benchmarks/bench_adder_passes.py``: per-pass ratios of the adder op against the convolution and
their instruction floors. A tiny case runs end to end into a fresh JSON; timings are not asserted
(they depend on the machine), the report's structure, the ratio arithmetic and the errors are."""

from __future__ import annotations

import json

import pytest

from bench_helpers import load_benchmark as _load


@pytest.fixture(scope="module")
def bench():
    return _load("bench_adder_passes")


@pytest.mark.parametrize("argv,message", [
    (["--cases", "train32,nope"], r"unknown case\(s\) \['nope'\]; choose from train32, edsr"),
    (["--cases", ","], r"unknown case\(s\) \(none given\)"),
    (["--repeat", "0"], r"--repeat and --rounds must be at least 1"),
])
def test_bad_arguments_are_named(bench, argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.main(argv)
    import re

    assert re.search(message, capsys.readouterr().err)


def test_ratios_divide_the_adder_by_the_faster_conv(bench):
    ms = {f"{lay}/{impl}/{p}": v for lay, impl, p, v in [
        ("nchw", "conv", "fwd", 2.0), ("channels_last", "conv", "fwd", 1.0), ("nchw", "adder", "fwd", 3.0),
        ("nchw", "conv", "grad_input", 1.0), ("channels_last", "conv", "grad_input", 4.0),
        ("nchw", "adder", "grad_input", 3.0), ("nchw", "conv", "grad_weight", 1.0),
        ("channels_last", "conv", "grad_weight", 1.0), ("nchw", "adder", "grad_weight", 1.0),
        ]}
    r = bench.ratios(ms)
    assert r["fwd"] == {"vs_conv_nchw": 1.5, "vs_best_conv": 3.0, "floor": 2.0}
    assert r["grad_input"]["vs_best_conv"] == 3.0 and r["grad_input"]["floor"] == 3.0
    assert r["fwd+bwd"]["vs_conv_nchw"] == pytest.approx(7 / 4) and r["fwd+bwd"]["floor"] == 2.0
    assert r["fwd+bwd"]["vs_best_conv"] == pytest.approx(7 / 4)  # NCHW total 4 < channels_last 6


def test_a_small_case_runs_into_a_new_json(bench, tmp_path, monkeypatch):
    monkeypatch.setitem(bench.PASS_CASES, "tiny", bench.Case("tiny", 1, 4, 4, 6))
    assert bench.main(["--cases", "tiny", "--repeat", "1", "--rounds", "1", "--json-dir", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("bench_adder_passes_*.json")
    report = json.loads(path.read_text())
    case = report["cases"]["tiny"]
    assert len(case["ms"]) == 9 and all(v > 0 for v in case["ms"].values())
    assert set(case["ratios"]) == {"fwd", "grad_input", "grad_weight", "fwd+bwd"}
    assert bench.main(["--cases", "tiny", "--repeat", "1", "--rounds", "1", "--json-dir", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("bench_adder_passes_*.json"))) == 2  # never overwritten
