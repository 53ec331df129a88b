"""``benchmarks/autocast_output_precision.py`` and ``benchmarks/onnx_export_accuracy.py``: the
measurements behind docs/adder_op.md ("Why the output stays float32") and docs/export.md ("Accuracy")."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bench_helpers import load_benchmark


def test_half_precision_adder_outputs_cost_accuracy_and_overflow_float16():
    aop = load_benchmark("autocast_output_precision")
    from addersr_plugin.archs.adder_edsr_arch import AdderEDSR
    r = aop.measure(lambda: AdderEDSR(3, 3, num_feat=8, num_block=2, upscale=2, second_shortcut=True,
                                      image_skip=False, dc_free_head=False), seed=0, size=12)
    assert set(r["max_error"]) == {"bfloat16", "float16"}
    bf16 = r["max_error"]["bfloat16"]
    assert set(bf16) == set(aop.MODES)
    assert bf16["half_output"] > bf16["as_shipped"] >= 0
    if r["max_abs_adder_output_float32"] > 65504:
        assert math.isnan(r["max_error"]["float16"]["half_output"])


def test_writes_a_dated_json_and_never_overwrites(tmp_path, monkeypatch):
    aop = load_benchmark("autocast_output_precision")
    monkeypatch.setattr(aop, "NETS", {"tiny": lambda: aop.AdderVDSR(3, 3, num_feat=4, num_layer=3, upscale=2)})
    assert aop.main(["--json-dir", str(tmp_path)]) == 0
    assert aop.main(["--json-dir", str(tmp_path)]) == 0
    files = sorted(tmp_path.glob("autocast_output_precision_*.json"))
    assert len(files) == 2
    report = json.loads(files[0].read_text())
    assert {"date", "cpu", "torch"} <= set(report["machine"]) and report["command"].startswith("python benchmarks/")
    assert set(report["results"]["tiny"]["max_error"]["float16"]) == set(aop.MODES)


def test_onnx_export_accuracy_of_the_adder_layer_case(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    oea = load_benchmark("onnx_export_accuracy")
    make, kw, shapes = oea.CASES["adder layers: stride, dilation, groups, bias"]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        r = oea.max_diff(make, kw, shapes, tmp_path)
    finally:
        torch.set_num_threads(before)
    assert set(r) == {"1x4x13x11", "2x4x8x21"}
    assert all(0 <= v["max_abs_diff"] < 1e-4 and v["max_abs_output"] > 1 for v in r.values())
