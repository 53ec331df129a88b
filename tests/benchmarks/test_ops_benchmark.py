"""The benchmark script runs end to end and reports what docs/benchmarks.md promises.

Timings are never asserted (they depend on the machine and its load); the structure of the
report, the memory measurements being present and positive, and the argument errors are."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from addersr_plugin.ops import extension_available

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_adder_conv.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("bench_adder_conv", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv,message", [
    (["--cases", "edsr,nope"], r"unknown case\(s\) \['nope'\]; choose from edsr, vdsr, stem, paper"),
    (["--cases", ","], r"unknown case\(s\) \(none given\)"),
    (["--repeat", "0"], r"--repeat must be at least 1"),
    (["--dtype", "float16"], r"--dtype float16: the CPU kernels support float32 and float64 only"),
    (["--float-kernels", "avx2,sse"], r"--float-kernels: unknown kernel\(s\) \['sse'\]; choose from avx512, avx2"),
    (["--json", "a.json", "--json-dir", "d"], r"--json and --json-dir: give one"),
])
def test_bad_arguments_are_named(argv, message, capsys):
    bench = _load_module()
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(argv)
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_an_existing_results_file_is_never_overwritten(tmp_path, capsys):
    """One file per run: --json naming an existing file is refused before anything runs (the final
    move's own refusal: tests/benchmarks/test_results_io.py)."""
    bench = _load_module()
    earlier = tmp_path / "bench.json"
    earlier.write_text('{"earlier": "run"}')
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(["--json", str(earlier)])
    assert exc.value.code == 2
    assert "the file exists; a results file is never overwritten" in capsys.readouterr().err


@pytest.mark.slow
def test_small_run_reports_ratios_memory_and_machine(tmp_path):
    out = tmp_path / "bench.json"
    # A fresh interpreter: the script forks per memory measurement, which needs a process that
    # has not run parallel torch code yet (pytest's has).
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--cases", "stem", "--repeat", "1", "--warmup", "0",
         "--reference-budget", "4", "--markdown", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())

    info = report["machine"]
    for key in ("date", "cpu", "cpu_cores", "torch", "device", "kernel", "extension_loaded"):
        assert info[key] not in (None, ""), key
    assert info["extension_loaded"] == extension_available()
    assert info["kernel"] == ("compiled" if extension_available() else "pure-PyTorch reference (fallback)")

    stem = report["cases"]["stem"]
    assert stem["macs"] == 16 * 64 * 3 * 9 * 48 * 48
    for mode in ("fwd", "fwdbwd"):
        assert stem["time"][f"conv_{mode}"]["median_s"] > 0
        assert stem["time"][f"conv_cl_{mode}"]["median_s"] > 0  # oneDNN's channels_last baseline too
        assert stem["memory"][f"conv_{mode}"] > 0
        ref = stem["reference"][mode]
        assert ("seconds" in ref and ref["seconds"] > 0) or ref["skipped"].startswith("est. "), ref
        if extension_available():
            assert stem["time"][f"adder_{mode}"]["median_s"] > 0
            for k in report["settings"]["float_kernels"]:  # each float kernel, NCHW and channels_last input
                assert stem["time"][f"adder_{k}_{mode}"]["median_s"] > 0
                assert stem["time"][f"adder_cl_{k}_{mode}"]["median_s"] > 0
                assert stem["memory"][f"adder_{k}_{mode}"] >= 8
            # at least the output (16·64·48·48 floats = 9 MiB) must show up in the peak
            assert stem["memory"][f"adder_{mode}"] >= 8

    assert "| RGB stem | N=16, 3→64, 48×48, 3×3, pad 1 |" in proc.stdout
    assert "Peak memory above the inputs" in proc.stdout
    assert "fwd ratio vs channels_last conv" in proc.stdout and "(vs channels_last conv " in proc.stdout
    assert f"wrote {out}" in proc.stdout
    if extension_available():
        assert report["settings"]["float_kernels"][-1] == "avx2"
        assert "Float CPU kernels side by side" in proc.stdout
        for inputs in report["float_kernel_accuracy"].values():
            for k in report["settings"]["float_kernels"]:
                assert inputs[k]["max_error_rel_to_max_abs_y"] < 1e-4
