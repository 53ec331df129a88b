"""The train -> test -> upscale commands of README.md (and docs/training.md's quick start) chain:
the test option file loads the model where the train option file writes it, and upscale reads
the same file. Checked on the option files, then run for real on tiny data (``--force_yml`` shrinks
the network and the run; each command is a subprocess, as a user types it).
"""

from __future__ import annotations

import os
import re
import shlex

import cv2
import pytest
import yaml

from sr_helpers import REPO, cli, make_pair_lmdbs, textured_image, write_pairs

DOCS = {"README.md": os.path.join(REPO, "README.md"),
        "docs/training.md": os.path.join(REPO, "docs", "training.md")}


def _commands(path: str) -> list[list[str]]:
    """Every ``basicsr``/``addersr`` command line in the file's code blocks and indented examples,
    continuation lines joined, comments dropped."""
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"\\\n\s*", " ", f.read())
    found = []
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if re.match(r"^(basicsr|addersr) ", line):
            found.append(shlex.split(line))
    return found


def _opt_of(argv: list[str]) -> str:
    flag = next(a for a in argv if a in ("-opt", "--opt"))
    return argv[argv.index(flag) + 1]


def _chain(doc: str) -> tuple[list[str], list[str], list[str]]:
    """The first train, test and upscale commands of a document."""
    cmds = _commands(DOCS[doc])
    train = next(c for c in cmds if c[:2] == ["basicsr", "train"])
    test = next(c for c in cmds if c[:2] == ["basicsr", "test"])
    upscale = next(c for c in cmds if c[:2] == ["addersr", "upscale"] and "--model" in c
                   and ("-opt" in c or "--opt" in c))
    return train, test, upscale


def _yaml(rel: str) -> dict:
    with open(os.path.join(REPO, rel), encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_the_documented_commands_use_one_model_file(doc):
    train, test, upscale = _chain(doc)
    train_opt, test_opt = _yaml(_opt_of(train)), _yaml(_opt_of(test))
    written = f"experiments/{train_opt['name']}/models/net_g_latest.pth"  # basicsr's layout
    assert test_opt["path"]["pretrain_network_g"] == written, (
        f"{doc}: {_opt_of(test)} tests {test_opt['path']['pretrain_network_g']}, but {_opt_of(train)} "
        f"writes {written}")
    assert upscale[upscale.index("--model") + 1] == written
    upscale_opt = _yaml(_opt_of(upscale))
    assert upscale_opt["network_g"] == train_opt["network_g"] == test_opt["network_g"]
    assert upscale_opt["scale"] == train_opt["scale"] == test_opt["scale"]


# Shrinks the README's networks and runs to a few seconds; the paths stay the README's.
TINY_NET = ["network_g:num_feat=4", "network_g:num_block=1"]


@pytest.mark.slow
def test_the_readme_chain_runs(tmp_path):
    train, test, upscale = _chain("README.md")
    scale = _yaml(_opt_of(train))["scale"]
    gt_lmdb, lq_lmdb = make_pair_lmdbs(str(tmp_path / "lmdb"), n=2, gt=48, scale=scale)
    gt_dir, lq_dir = write_pairs(str(tmp_path / "val"), n=1, gt=48, scale=scale)
    work = tmp_path / "work"
    work.mkdir()

    def run(argv: list[str], *extra: str) -> str:
        argv = [os.path.join(REPO, a) if a.startswith("options/") else a for a in argv]
        proc = cli(argv[1:] + list(extra), cwd=str(work))
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        return proc.stdout + proc.stderr

    run(train, "--force_yml", *TINY_NET, f"datasets:train:dataroot_gt={gt_lmdb}",
        f"datasets:train:dataroot_lq={lq_lmdb}", "datasets:train:gt_size=24",
        "datasets:train:num_worker_per_gpu=0", "datasets:train:batch_size_per_gpu=2",
        "datasets:train:dataset_enlarge_ratio=1", f"datasets:val:dataroot_gt={gt_dir}",
        f"datasets:val:dataroot_lq={lq_dir}", "train:total_iter=2", "val:val_freq=2",
        "logger:print_freq=1", "logger:save_checkpoint_freq=2", "logger:use_tb_logger=false")
    model = upscale[upscale.index("--model") + 1]
    assert (work / model).is_file()

    test_sets = [f"datasets:test_{i}:dataroot_{k}={d}" for i in range(1, 5) for k, d in (("gt", gt_dir), ("lq", lq_dir))]
    out = run(test, "--force_yml", *TINY_NET, *test_sets)
    assert "# psnr:" in out

    photos = work / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), textured_image(20, 30, 3))
    argv = [a for a in upscale]
    argv[argv.index("--input") + 1] = str(photos)
    argv[argv.index("--output") + 1] = str(work / "upscaled")
    run(argv, "--device", "cpu", "--force_yml", *TINY_NET)
    assert cv2.imread(str(work / "upscaled" / f"a_x{scale}.png")).shape == (20 * scale, 30 * scale, 3)


def test_the_readme_energy_numbers_are_what_its_command_prints():
    import io

    from addersr_plugin.cli import energy

    cmd = next(c for c in _commands(DOCS["README.md"]) if c[:2] == ["addersr", "energy"] and "--vs" in c)
    with open(DOCS["README.md"], encoding="utf-8") as f:
        text = " ".join(f.read().split())
    claim = re.search(r"counts ([\d.]+) G multiply-adds .*? uses ([\d.]+)× less energy by the paper's counting rule, "
                      r"([\d.]+)× when", text)
    assert claim, "the README's energy sentence changed: update this test"
    out = io.StringIO()
    args = energy.build_parser().parse_args([os.path.join(REPO, a) if a.startswith("options/") else a
                                             for a in cmd[2:]])
    energy.run(args, out)
    printed = out.getvalue()
    macs, paper, everything = claim.groups()
    assert re.search(rf"^VDSR\s+x2\s+{re.escape(macs)} G", printed, re.M), printed
    ratio = re.search(r"energy ratio VDSR / AdderVDSR: ([\d.]+)x with everything counted, ([\d.]+)x by the paper's "
                      r"rule", printed)
    assert (f"{float(ratio.group(2)):.2f}", f"{float(ratio.group(1)):.2f}") == (paper, everything)
    with open(os.path.join(REPO, "docs", "energy.md"), encoding="utf-8") as f:
        row = next(line for line in f if line.startswith("| VDSR (Y channel) | 2 | 1280x720 | power act |"))
    assert f"| {macs} G / {macs} G |" in row and f"| {paper}× | {everything}× |" in row  # the committed table
