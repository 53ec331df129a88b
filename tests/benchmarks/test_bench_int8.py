"""``benchmarks/bench_int8.py`` scores only photos outside the models' training, calibration and
selection, calibrates on other photos, and names both (``int8_photos.py``). A smoke run of its
``--quick`` mode on tiny synthetic photos; no timing is run or asserted."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import pytest
import yaml

from bench_helpers import load_benchmark as _load
from sr_helpers import textured_image





def _photos(folder: Path, names, hr_size=48, seed=0):
    """A HR/ + LR_bicubic/X2/ photo folder of tiny textured images."""
    for sub in ("HR", "LR_bicubic/X2"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        hr = textured_image(hr_size, hr_size, seed + i)
        cv2.imwrite(str(folder / "HR" / f"{name}.png"), hr)
        cv2.imwrite(str(folder / "LR_bicubic" / "X2" / f"{name}.png"), cv2.resize(hr, (hr_size // 2, hr_size // 2)))
    return folder


def _manifest(root: Path, splits: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps(
        {"version": 1, "photos": [{"file": f"{n}.png", "split": s} for n, s in splits.items()]}))
    return root


def _opt(path: Path, dataroot: Path) -> str:
    path.write_text(yaml.safe_dump({"scale": 2, "network_g": {"type": "AdderEDSR", "num_feat": 4, "num_block": 1},
                                    "datasets": {"train": {"dataroot_gt": str(dataroot / "train_HR_sub.lmdb")},
                                                 "val": {"dataroot_gt": str(dataroot / "heldout" / "HR")}}}))
    return str(path)


def test_quick_run_scores_only_unseen_photos_and_names_them(tmp_path, capsys):
    bench = _load("bench_int8")
    score = _photos(tmp_path / "test", ["matplotlib_a", "other_b", "skimage_astronaut"])  # the last: trained on
    calib = _photos(tmp_path / "heldout", ["cal_x", "cal_y"], hr_size=40, seed=10)
    out = tmp_path / "r.json"
    rc = bench.main(["--quick", "--iters", "2", "--num-feat", "4", "--num-block", "1", "--cache", "",
                     "--score-dir", str(score), "--calib-dir", str(calib), "--calib-size", "16", "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    e2e = json.loads(out.read_text())["e2e"]
    assert e2e["scored_photos"] == ["matplotlib_a", "other_b"]
    assert e2e["left_out_photos"] == {"skimage_astronaut": "training photo of the quick model"}
    assert e2e["calibration_photos"] == ["cal_x", "cal_y"] and e2e["calibration_crops"] == [32, 16]
    assert e2e["quick"] and all("seconds" not in r for r in e2e["rows"].values())  # nothing timed
    assert "layer" not in json.loads(out.read_text())
    assert set(e2e["rows"]) == {"AdderEDSR-int8 (ours)", "AdderEDSR-fp32", "bicubic"}
    assert all(isinstance(r["y_psnr"], float) for r in e2e["rows"].values())
    assert "Scored photos (2, outside the models' training, calibration and selection): matplotlib_a, other_b." \
        in printed
    assert "Left out of scoring: skimage_astronaut (training photo of the quick model)." in printed
    assert "quality only (--quick: nothing timed)" in printed
    env = json.loads(out.read_text())["env"]  # every results file says when and where it was measured
    assert env["date"].endswith(" UTC") and env["cpu"] and env["threads"] >= 1
    assert env["command"].startswith("python benchmarks/bench_int8.py --quick")
    assert f"Measured {env['date']}." in printed


def test_an_existing_results_file_is_never_overwritten(tmp_path, capsys, monkeypatch):
    """One file per run: an existing --json is refused before anything runs, and the default name
    carries the date and time."""
    bench = _load("bench_int8")
    earlier = tmp_path / "r.json"
    earlier.write_text('{"earlier": "run"}')
    with pytest.raises(SystemExit) as exc:
        bench.main(["--quick", "--json", str(earlier)])
    assert exc.value.code == 2
    assert "the file exists; a results file is never overwritten" in capsys.readouterr().err
    assert earlier.read_text() == '{"earlier": "run"}'
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "select_photos", lambda args: (_ for _ in ()).throw(SystemExit(args.json)))
    with pytest.raises(SystemExit) as exc:
        bench.main(["--quick"])
    assert re.fullmatch(r"bench_int8_\d{4}-\d\d-\d\d_\d{6}\.json", str(exc.value.code))


def test_a_model_s_manifest_decides_what_is_scored(tmp_path):
    photos = _load("int8_photos")
    ds = _manifest(tmp_path / "ds", {"p_train": "train", "p_val": "heldout", "p_test": "test"})
    opt = _opt(tmp_path / "m.yml", ds)
    score = _photos(tmp_path / "test", ["p_train", "p_val", "p_test", "p_new"])
    calib = _photos(tmp_path / "cal", ["c"], seed=5)
    scored, left_out, _ = photos.choose(str(score), str(calib), 2, lambda names: photos.seen_by(opt, names))
    assert sorted(scored) == ["p_new", "p_test"]
    assert left_out == {"p_train": "training photo of m.yml", "p_val": "validation (selection) photo of m.yml"}


def test_the_first_study_s_split_comes_from_its_record(tmp_path):
    """datasets/photos is not on every machine: its split is on record (every photo of its sources
    trained on or held out), so of the split's test photos only matplotlib's is new to its models."""
    photos = _load("int8_photos")
    opt = Path(photos.ROOT) / "options" / "study" / "ours_nopower_lr20.yml"
    assert opt.is_file()
    names = ["lomiri-wallpapers-16_04_aitzgorri_by_Aitzol_Berasategi", "lomiri-wallpapers-20_04_Fossa_by_Jasper_Roks",
             "lomiri-wallpapers-20_04_Infinite-Sea_by_Aury88", "matplotlib_grace_hopper"]
    if os.path.isdir(os.path.join(photos.ROOT, photos.STUDY_DATA)):
        pytest.skip("the first study's dataset is here: its manifest decides instead")
    seen = photos.seen_by(str(opt), names)
    assert seen == {
        names[0]: "training photo of ours_nopower_lr20.yml: its dataset trained on every lomiri-wallpapers-16_04 "
                  "photo not held out",
        names[1]: "validation (selection) photo of ours_nopower_lr20.yml",
        names[2]: "training photo of ours_nopower_lr20.yml: its dataset trained on every lomiri-wallpapers-20_04 "
                  "photo not held out"}


def test_errors_are_named(tmp_path):
    photos = _load("int8_photos")
    score = _photos(tmp_path / "test", ["a", "b"])
    with pytest.raises(photos.PhotoSetError, match=r"share photos \['a'\]: calibration must not see a scored photo"):
        photos.choose(str(score), str(_photos(tmp_path / "cal", ["a"])), 2, {})
    with pytest.raises(photos.PhotoSetError, match=r"every photo of .*test was seen by the model\(s\) in training "
                                                   r"or selection: a \(x\), b \(y\)"):
        photos.choose(str(score), str(tmp_path / "cal"), 2, {"a": "x", "b": "y"})
    with pytest.raises(photos.PhotoSetError, match=r"has no HR/ and LR_bicubic/X2/ folders"):
        photos.choose(str(tmp_path / "nope"), str(tmp_path / "cal"), 2, {})
    opt = _opt(tmp_path / "m.yml", tmp_path / "no_manifest")
    with pytest.raises(photos.PhotoSetError, match=r"cannot tell which photos .*m.yml trained or chose on: no "
                                                   r"manifest.json in or above its dataset"):
        photos.seen_by(opt, ["a"])
