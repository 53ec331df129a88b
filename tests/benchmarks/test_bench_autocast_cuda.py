"""benchmarks/bench_autocast_cuda.py without a GPU: its ratios and report from given timings, and
its refusal to run without CUDA. (It runs for real in tests/gpu/run_gpu_checks.sh.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_autocast_cuda.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("bench_autocast_cuda", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _times(bench, ms):
    return {mode: {impl: {"median_s": ms[impl] * (2 if mode == "fwdbwd" else 1) / 1e3} for impl in bench.IMPLS}
            for mode in bench.MODES}


def test_ratios_and_report_from_timings():
    bench = _load_module()
    times = _times(bench, {"adder_fp32": 0.32, "adder_amp_fp16": 0.2, "adder_amp_bf16": 0.25, "conv_fp16": 0.05,
                           "conv_fp32": 0.16})
    ratios = {(r["numerator"], r["denominator"], r["mode"]): r["ratio"] for r in bench.ratios(times)}
    assert ratios[("adder_fp32", "adder_amp_fp16", "fwd")] == pytest.approx(1.6)
    assert ratios[("adder_amp_bf16", "conv_fp16", "fwdbwd")] == pytest.approx(5.0)
    assert ratios[("adder_fp32", "conv_fp32", "fwd")] == pytest.approx(2.0)
    report = {"machine": {"gpu": "G", "torch": "t", "cuda": "c", "cudnn": 1, "date": "d"},
              "settings": {"repeat": 3, "inner": 2}, "time": times, "ratios": bench.ratios(times),
              "accuracy": {"adder_amp_fp16": 1e-3, "adder_amp_bf16": 2e-3}}
    text = "\n".join(bench.report_lines(report))
    assert "| adder_amp_fp16 | 0.200 | 0.400 |" in text
    assert "fp16 forward speed-up 1.60× (issue 17 target ≥ 1.6×): met" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_refuses_without_cuda(capsys):
    bench = _load_module()
    with pytest.raises(SystemExit) as exc:
        bench.parse_args([])
    assert exc.value.code == 2
    assert "needs a CUDA device" in capsys.readouterr().err
