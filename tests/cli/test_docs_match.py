"""What docs/training.md and docs/architectures.md say about the commands and option files is what
the code does: synopsis defaults, the optimisers each model takes, the model_type of the files."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TRAINING = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
ARCHITECTURES = (ROOT / "docs" / "architectures.md").read_text(encoding="utf-8")


def _synopsis(command: str) -> str:
    """The indented usage block of ``command`` in training.md, continuation lines joined."""
    lines = TRAINING.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(command + " ") and "[" in line)
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("        ") or not line.strip():
            break
        block.append(line)
    return " ".join(block)


def test_data_synopsis_defaults_are_the_parser_defaults():
    from addersr_plugin.cli.addersr_cmd import build_parser

    for kind in ("div2k",):  # the one data command with an indented synopsis
        shown = re.findall(r"\[(--[\w-]+) ([\d ]+)\]", _synopsis(f"addersr data {kind}"))
        assert shown, kind
        args = build_parser().parse_args(["data", kind, "--hr", "x"])
        for flag, value in shown:
            default = getattr(args, flag[2:].replace("-", "_"))
            as_text = " ".join(map(str, default)) if isinstance(default, list) else str(default)
            assert as_text == value.strip(), f"training.md shows {flag} {value.strip()}, the default is {as_text}"


def test_the_optimiser_checks_name_what_each_model_takes():
    import addersr_plugin  # noqa: F401
    from addersr_plugin.models import OPTIMIZERS

    bullet = TRAINING[TRAINING.index("* `num_gpu` asks for more GPUs"):]
    bullet = bullet[:bullet.index("\n\n")]
    assert "`SRModel`: Adam only" in bullet
    for name in OPTIMIZERS:
        assert name in bullet.split("`AdderSRModel`:")[1], name


def test_architectures_names_the_model_types_the_option_files_use():
    section = ARCHITECTURES[ARCHITECTURES.index("## Option files"):]
    section = section[:section.index("| file | network |")]
    used = {yaml.safe_load(p.read_text())["model_type"] for p in (ROOT / "options").rglob("*.yml")
            if "study" not in p.parts}
    for model_type in used:
        assert f"`{model_type}`" in section or f"`model_type: {model_type}`" in section, model_type
