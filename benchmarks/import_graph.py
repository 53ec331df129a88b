"""The package's import graph, read from the source: its floors, the arrows between rooms, and what breaks the rules.

    python benchmarks/import_graph.py            # check, print the rooms and arrows
    python benchmarks/import_graph.py --write    # also rewrite the diagram in docs/architecture.md

A *room* is a subpackage (``ops``, ``nn``, ...) or a top-level module (``loading``); every room
sits on one *floor* (:data:`FLOORS`) and may import rooms on its own floor or below, never above,
and the rooms must not import each other in a circle. Imports inside a module's ``__getattr__``
(a deprecated alias that forwards to a name's new home) and under ``if __name__ == "__main__"``
are the entry shims' forwarding and are listed apart. ``tests/integration/test_import_graph.py``
runs :func:`violations` on every test run.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "addersr_plugin"
DOC = os.path.join(ROOT, "docs", "architecture.md")
BEGIN, END = "<!-- import graph: begin (benchmarks/import_graph.py --write) -->", "<!-- import graph: end -->"

# room -> floor. Floor 0 needs nothing of the package; each floor may use the ones below it.
FLOORS = {
    "ops": 0, "checkpoint_io": 0, "pretrained": 0, "integration": 0, "registry": 0, "_version": 0,
    "nn": 1,
    "archs": 2, "models": 2, "quant": 2, "energy": 2, "data": 2, "scoring": 2, "inference": 2, "recipes": 2,
    "onnx_export": 2,
    "__init__": 2,  # the package root: applies the integration, loads ops and registers archs/models
    "loading": 3,
    "cli": 4,
    # entry shims: `python -m addersr_plugin.demo` / `.train`, deprecated module names
    "demo": 5, "train": 5, "upscale": 5, "compat": 5,
}
FLOOR_NAMES = {0: "ground: ops, checkpoint reading, BasicSR integration", 1: "layers", 2: "libraries",
               3: "the one loader", 4: "commands", 5: "entry shims"}


def modules() -> dict[str, str]:
    """``{dotted module name: file path}`` of every module of the package."""
    found = {}
    base = os.path.join(ROOT, PACKAGE)
    for dirpath, _dirs, files in os.walk(base):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(dirpath, f)
    return found


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    if parts[1] == "energy" and parts[-1] == "__main__":
        return "energy.__main__"  # `python -m addersr_plugin.energy`: an entry shim inside a library
    return parts[1]


def _resolve(module: str, is_package: bool, node: ast.ImportFrom, known: set[str]) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    # `from . import ops` imports the submodule ops; `from .ops import x` imports a name of ops
    return sorted({f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names})


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: set[str]):
        self.module, self.is_package, self.known = module, is_package, known
        self.edges: list[tuple[str, bool]] = []  # (imported module, through a shim path)
        self._shim = 0

    def visit_FunctionDef(self, node):
        self._shim += node.name == "__getattr__"
        self.generic_visit(node)
        self._shim -= node.name == "__getattr__"

    def visit_If(self, node):
        main = (isinstance(node.test, ast.Compare) and isinstance(node.test.left, ast.Name)
                and node.test.left.id == "__name__")
        self._shim += main
        self.generic_visit(node)
        self._shim -= main

    def _add(self, names: list[str]) -> None:
        for name in names:
            if name in self.known:
                self.edges.append((name, self._shim > 0))

    def visit_Import(self, node):
        self._add([a.name for a in node.names])

    def visit_ImportFrom(self, node):
        self._add(_resolve(self.module, self.is_package, node, self.known))

    def visit_Call(self, node):  # importlib.import_module("addersr_plugin.x") with a literal name
        if (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            self._add([node.args[0].value])
        self.generic_visit(node)


def graph() -> tuple[dict, dict]:
    """(module edges, shim edges): ``{module: {imported modules}}``."""
    mods = modules()
    known = set(mods)
    edges, shims = defaultdict(set), defaultdict(set)
    for mod, path in mods.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        visitor = _Imports(mod, path.endswith("__init__.py"), known)
        visitor.visit(tree)
        for target, shim in visitor.edges:
            if target != mod:
                (shims if shim else edges)[mod].add(target)
    return edges, shims


def _floor(r: str) -> int:
    return 5 if r == "energy.__main__" else FLOORS[r]


def _cycles(edges: dict) -> list[list[str]]:
    """Every elementary circle found by a depth-first search (one representative per back edge)."""
    found, state, stack = [], {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)
    return found


def violations() -> list[str]:
    """Every import that runs up a floor, every room without a floor, every circle (modules and rooms)."""
    edges, _shims = graph()
    problems = []
    for mod in modules():
        if room(mod) not in FLOORS and room(mod) != "energy.__main__":
            problems.append(f"{mod}: room {room(mod)!r} has no floor in benchmarks/import_graph.py FLOORS")
    if problems:
        return problems
    for mod, targets in sorted(edges.items()):
        for t in sorted(targets):
            if _floor(room(t)) > _floor(room(mod)):
                problems.append(f"{mod} (floor {_floor(room(mod))}) imports {t} (floor {_floor(room(t))}): "
                                "an import that runs up")
    problems += [f"import circle: {' -> '.join(c)}" for c in _cycles(edges)]
    rooms = defaultdict(set)
    for mod, targets in edges.items():
        for t in targets:
            if room(t) != room(mod) and room(mod) != "__init__":
                rooms[room(mod)].add(room(t))
    problems += [f"circle between rooms: {' -> '.join(c)}" for c in _cycles(rooms)]
    return problems


def room_edges() -> tuple[dict, dict]:
    edges, shims = graph()
    out, shim_out = defaultdict(set), defaultdict(set)
    for src, table in ((edges, out), (shims, shim_out)):
        for mod, targets in src.items():
            for t in targets:
                if room(t) != room(mod):
                    table[room(mod)].add(room(t))
    return out, shim_out


def mermaid() -> str:
    edges, shims = room_edges()
    present = {room(m) for m in modules()}
    lines = ["```mermaid", "flowchart BT"]
    for floor in sorted(set(FLOOR_NAMES)):
        members = sorted(r for r in present if _floor(r) == floor)
        if not members:
            continue
        lines.append(f'  subgraph F{floor}["floor {floor}: {FLOOR_NAMES[floor]}"]')
        lines += [f'    {r.replace(".", "_")}["{r}"]' for r in members]
        lines.append("  end")
    for r in sorted(edges):
        lines += [f"  {r.replace('.', '_')} --> {t.replace('.', '_')}" for t in sorted(edges[r])]
    for r in sorted(shims):
        lines += [f"  {r.replace('.', '_')} -.-> {t.replace('.', '_')}" for t in sorted(shims[r] - edges.get(r, set()))]
    lines.append("```")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="rewrite the diagram in docs/architecture.md")
    args = p.parse_args(argv)
    edges, shims = room_edges()
    for r in sorted(edges, key=lambda r: (_floor(r), r)):
        print(f"[{_floor(r)}] {r} -> {', '.join(sorted(edges[r]))}")
    problems = violations()
    for line in problems:
        print("VIOLATION", line, file=sys.stderr)
    if args.write:
        with open(DOC, encoding="utf-8") as f:
            text = f.read()
        if BEGIN not in text or END not in text:
            print(f"{DOC} lacks the markers {BEGIN} ... {END}", file=sys.stderr)
            return 2
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(DOC, "w", encoding="utf-8") as f:
            f.write(head + BEGIN + "\n" + mermaid() + "\n" + END + tail)
        print(f"wrote the diagram into {DOC}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
