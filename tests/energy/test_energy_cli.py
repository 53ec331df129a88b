"""``addersr energy``: every shipped option file, comparison, JSON, and bad input with clear errors."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import addersr_plugin  # noqa: F401
from addersr_plugin.cli.energy import main
from addersr_plugin.energy import BadSizeError, lr_size, parse_hr_size

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = ROOT / "options"
FILES = sorted(OPTIONS.rglob("*.yml"))
TRAIN = OPTIONS / "train"


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_options_are_shipped():
    assert len(FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_runs_on_every_shipped_option_file(path, capsys):
    # 1284x720 is divisible by 2, 3 and 4 (1280 is not divisible by 3).
    assert main(["-opt", str(path), "--hr-size", "1284x720"]) == 0
    out = capsys.readouterr().out
    assert "LR" in out and "-> HR 1284x720" in out and "total" in out and "WARNING" not in out


def test_vs_per_layer_and_json(tmp_path, capsys):
    out_json = tmp_path / "report.json"
    argv = ["-opt", str(TRAIN / "AdderVDSR" / "train_AdderVDSR_x2.yml"), "--vs", str(TRAIN / "VDSR" / "train_VDSR_x2.yml"),
            "--per-layer", "--json", str(out_json), "--precision", "int32"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "energy ratio VDSR / AdderVDSR" in out and "the paper's rule leaves out:" in out
    assert "body.17.adder (AdderConv2d) adder" in out and "conv_first (Conv2d) conv" in out
    assert "energy per op (int32, 45 nm): add 0.1 pJ, multiply 3.1 pJ" in out
    doc = json.loads(out_json.read_text())
    assert doc["precision"] == "int32" and not list(tmp_path.glob("*.tmp"))
    adder, cnn = doc["networks"]
    assert (adder["arch"], cnn["arch"]) == ("AdderVDSR", "VDSR")
    assert adder["categories"]["adder"]["macs"] == 18 * 9 * 64 * 64 * 1280 * 720
    assert sum(layer["energy_pj"] for layer in adder["layers"]) == pytest.approx(adder["total"]["energy_pj"])
    assert doc["comparison"]["ratio_paper_rule"] > doc["comparison"]["ratio_all"] > 1


def test_exact_convention_and_unfolded_bn(capsys):
    path = str(TRAIN / "AdderEDSR" / "train_AdderEDSR_x2.yml")
    assert main(["-opt", path, "--convention", "exact", "--bn", "unfolded", "--hr-size", "64x48"]) == 0
    out = capsys.readouterr().out
    assert "counting convention 'exact'" in out and "batch norm: unfolded" in out


def test_set_overrides_network_g(tmp_path, capsys):
    path = str(TRAIN / "AdderVDSR" / "train_AdderVDSR_x2.yml")
    out_json = tmp_path / "r.json"
    assert main(["-opt", path, "--set", "power_act=false", "--set", "num_in_ch=1", "--set", "num_out_ch=1",
                 "--hr-size", "64x32", "--json", str(out_json)]) == 0
    net = json.loads(out_json.read_text())["networks"][0]
    assert "power" not in net["categories"] and net["input_shape"] == [1, 1, 16, 32]
    assert "[power_act=False, num_in_ch=1, num_out_ch=1]" in net["label"]
    assert main(["-opt", path, "--set", "power_act"]) == 2
    assert "--set expects KEY=VALUE for a network_g key other than type, got 'power_act'" in capsys.readouterr().err
    assert main(["-opt", path, "--vs-set", "num_in_ch=1"]) == 2
    assert "--vs-set needs --vs" in capsys.readouterr().err
    assert main(["-opt", path, "--set", "no_such_arg=1"]) == 2
    assert "cannot build network_g of type 'AdderVDSR'" in capsys.readouterr().err


def test_hr_size_parsing():
    assert parse_hr_size("1280x720") == (1280, 720)
    assert parse_hr_size(" 64X48 ") == (64, 48)
    assert lr_size((1280, 720), 4) == (320, 180)
    for bad in ("1280*720", "1280x", "0x720", "-4x4", "axb", ""):
        with pytest.raises(BadSizeError, match="--hr-size must be WIDTHxHEIGHT with positive integers"):
            parse_hr_size(bad)
    with pytest.raises(BadSizeError, match=r"--hr-size 1280x720 is not divisible by the scale 3 .*"
                                           r"use e\.g\. 1278x720 or 1281x720"):
        lr_size((1280, 720), 3)


@pytest.mark.parametrize("extra,message", [
    (["--precision", "fp64"], "unknown precision 'fp64'; expected one of fp32, fp16, int32, int8"),
    (["--hr-size", "1280by720"], "--hr-size must be WIDTHxHEIGHT with positive integers, e.g. 1280x720; got '1280by720'"),
    (["--hr-size", "1280x720"], "--hr-size 1280x720 is not divisible by the scale 3"),
    (["--convention", "flops"], "unknown counting convention 'flops'"),
    (["--bn", "fused"], "unknown BN mode 'fused'"),
    (["--vs", str(TRAIN / "EDSR" / "train_EDSR_x2.yml"), "--hr-size", "1284x720"], "cannot compare a x3 network"),
])
def test_bad_input_gives_a_clear_error(extra, message, capsys):
    path = str(TRAIN / "AdderEDSR" / "train_AdderEDSR_x3.yml")
    assert main(["-opt", path, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("addersr energy: error: ") and message in err


def test_bad_option_files(tmp_path, capsys):
    missing = tmp_path / "missing.yml"
    assert main(["-opt", str(missing)]) == 2
    assert "cannot read option file" in capsys.readouterr().err
    no_net = tmp_path / "no_net.yml"
    no_net.write_text("name: x\nscale: 2\n")
    assert main(["-opt", str(no_net)]) == 2
    assert "has no network_g with a type" in capsys.readouterr().err
    unknown = tmp_path / "unknown.yml"
    unknown.write_text("scale: 2\nnetwork_g:\n  type: NoSuchNet\n  num_in_ch: 3\n")
    assert main(["-opt", str(unknown)]) == 2
    assert "cannot build network_g: No object named 'NoSuchNet'" in capsys.readouterr().err
    mismatch = tmp_path / "mismatch.yml"
    mismatch.write_text("scale: 4\nnetwork_g:\n  type: VDSR\n  num_in_ch: 3\n  num_out_ch: 3\n  upscale: 2\n")
    assert main(["-opt", str(mismatch)]) == 2
    assert "scale (4) and network_g.upscale (2) disagree" in capsys.readouterr().err


def test_addersr_command_and_python_m(capsys):
    from addersr_plugin.cli.addersr_cmd import addersr_main

    path = str(TRAIN / "VDSR" / "train_VDSR_x4.yml")
    assert addersr_main(["energy", "-opt", path, "--hr-size", "32x32"]) == 0
    assert "VDSR" in capsys.readouterr().out
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "addersr_plugin.energy", "-opt", path, "--precision", "bf16"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 2 and "unknown precision 'bf16'" in proc.stderr


def test_docs_energy_md_matches_the_command(tmp_path, monkeypatch):
    """The first row of docs/energy.md is reproduced by the first command the doc lists."""
    doc = (ROOT / "docs" / "energy.md").read_text()
    assert "Generated by `python benchmarks/make_energy_doc.py`" in doc
    first_command = doc.split("```\n", 1)[1].splitlines()[0]
    row = next(line for line in doc.splitlines() if line.startswith("| VDSR (Y channel) | 2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    monkeypatch.chdir(ROOT)
    argv = shlex.split(first_command)
    assert argv[:2] == ["addersr", "energy"]
    out = tmp_path / "r.json"
    assert main(argv[2:] + ["--json", str(out)]) == 0
    comp = json.loads(out.read_text())["comparison"]
    assert cells[8] == f"{comp['ratio_paper_rule']:.2f}×" and cells[9] == f"{comp['ratio_all']:.2f}×"
