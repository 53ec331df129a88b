"""``benchmarks/results_io.py``: one results file per run, written whole, never over an earlier one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import results_io  # noqa: E402


def test_publish_new_refuses_an_existing_file_and_keeps_both(tmp_path):
    earlier = tmp_path / "bench.json"
    earlier.write_text('{"earlier": "run"}')
    new = tmp_path / "bench.json.tmp"
    new.write_text('{"new": "run"}')
    assert not results_io.publish_new(new, earlier)
    assert earlier.read_text() == '{"earlier": "run"}' and new.exists()
    fresh = tmp_path / "bench_2.json"
    assert results_io.publish_new(new, fresh)
    assert fresh.read_text() == '{"new": "run"}' and not new.exists()


def test_dated_names_never_collide(tmp_path):
    first = results_io.new_json_path(tmp_path, "bench_adder_conv", "2026-12-03 03:39 UTC")
    assert first.name == "bench_adder_conv_2026-12-03_0339.json"
    first.write_text("{}")
    second = results_io.new_json_path(tmp_path, "bench_adder_conv", "2026-12-03 03:39 UTC")
    assert second.name == "bench_adder_conv_2026-12-03_0339_2.json"


def test_write_new_json_writes_whole_files_and_reports_a_collision(tmp_path, capsys):
    path = tmp_path / "sub" / "r.json"
    assert results_io.write_new_json({"a": 1}, path, "prog") == 0
    assert json.loads(path.read_text()) == {"a": 1} and not (tmp_path / "sub" / "r.json.tmp").exists()
    assert results_io.write_new_json({"a": 2}, path, "prog") == 2
    assert "prog: error:" in capsys.readouterr().err and json.loads(path.read_text()) == {"a": 1}
    assert json.loads((tmp_path / "sub" / "r.json.tmp").read_text()) == {"a": 2}
