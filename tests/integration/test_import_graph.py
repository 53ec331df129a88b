"""The house's rule, checked on the source: no import runs up a floor, no circle (docs/architecture.md)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "import_graph.py"


@pytest.fixture(scope="module")
def house():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_runs_up_and_no_circle(house):
    assert house.violations() == []


def test_the_check_sees_an_upward_import_and_a_circle(house, monkeypatch):
    """Positive controls: an nn module importing cli, and ops importing nn back."""
    edges, shims = house.graph()
    edges = {k: set(v) for k, v in edges.items()}
    edges.setdefault("addersr_plugin.nn.adder_conv", set()).add("addersr_plugin.cli.upscale")
    edges.setdefault("addersr_plugin.ops.geometry", set()).add("addersr_plugin.nn.adder_conv")
    monkeypatch.setattr(house, "graph", lambda: (edges, shims))
    found = house.violations()
    assert any("addersr_plugin.nn.adder_conv (floor 1) imports addersr_plugin.cli.upscale (floor 4)" in v
               for v in found)
    assert any("addersr_plugin.ops.geometry (floor 0) imports addersr_plugin.nn.adder_conv" in v for v in found)
    assert any(v.startswith("import circle:") or v.startswith("circle between rooms:") for v in found)


def test_libraries_never_import_commands(house):
    edges, _ = house.graph()
    for mod, targets in edges.items():
        if house.room(mod) not in ("cli", "energy.__main__") and house.FLOORS.get(house.room(mod), 5) < 4:
            assert not any(house.room(t) == "cli" for t in targets), mod


def test_the_diagram_in_the_docs_is_current(house):
    text = (SCRIPT.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert house.mermaid() in text, "run: python benchmarks/import_graph.py --write"
