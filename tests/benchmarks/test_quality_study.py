"""The quality study's runner (benchmarks/quality/run_study.py, with runner.py and study_scoring.py)
on a tiny configuration: an interrupted run is resumed with ``--auto_resume``, a finished run is
skipped, and the validation curve and scores are read back. Subprocesses run the real ``basicsr train``."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from bench_helpers import load_quality_script
from sr_helpers import cli, env, make_pair_lmdbs, train_options, write_yaml

pytestmark = pytest.mark.slow


@pytest.fixture
def study(tmp_path, monkeypatch):
    run_study = load_quality_script("run_study")
    monkeypatch.setattr(run_study.runner, "ROOT", str(tmp_path))  # every path of the study derives from it
    for key, value in env().items():  # the training subprocesses must import this checkout
        monkeypatch.setenv(key, value)
    return run_study


@pytest.fixture
def scoring(study):
    return sys.modules["study_scoring"]  # imported by run_study, from the same folder


def test_interrupted_run_resumes_and_finished_run_is_skipped(tmp_path, study, scoring, monkeypatch):
    gt, lq = make_pair_lmdbs(str(tmp_path / "data"))
    opt = train_options(gt, lq, name="study_tiny")
    opt["network_g"].update(image_skip=True, dc_free_head=True)
    (tmp_path / "options" / "study").mkdir(parents=True)
    opt_file = write_yaml(study.option_path("tiny"), opt)
    run = study.study_run("tiny")

    # An interrupted sitting: basicsr stopped at iteration 2 of 4 (a checkpoint every 2).
    first = cli(["train", "-opt", opt_file, "--force_yml", "train:total_iter=2"], cwd=str(tmp_path))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert not os.path.exists(os.path.join(run.dir, "study_done.json"))

    done = study.train("tiny", threads=1)
    assert done["sittings"] == 1 and done["seconds"] > 0 and done["iters"] == study.study.ITERS
    sitting = open(os.path.join(run.sittings, "sitting1.log"), encoding="utf-8").read()
    assert "Resuming training from epoch: 0, iter: 2." in sitting
    assert "iter:       3" in sitting and "iter:       1," not in sitting
    assert os.path.isfile(os.path.join(run.dir, "models", "net_g_latest.pth"))
    # the runner's files live beside the run folder, so basicsr never renames it to *_archived_*
    assert not [d for d in os.listdir(tmp_path / "experiments") if "_archived_" in d]
    with open(os.path.join(run.dir, "study_done.json"), encoding="utf-8") as f:
        assert json.load(f) == done

    # The finished run is archived (committed with the repo) and restored on a fresh clone.
    archived = os.path.join(tmp_path, "benchmarks", "quality", "runs", "tiny")
    assert sorted(os.listdir(archived)) == ["net_g_latest.pth", "study_done.json", "train.log"]
    import shutil

    shutil.rmtree(run.dir)
    assert study.runner.restore(run) and not study.runner.restore(run)
    assert os.path.isfile(os.path.join(run.dir, "models", "net_g_latest.pth"))

    # A finished run is skipped: no second basicsr process.
    monkeypatch.setattr(study.runner.subprocess, "run", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert study.train("tiny", threads=1) == done

    curve = study.runner.val_curve(run)
    # basicsr validates at the end of every sitting: after the interrupted one (2) and the finish (4)
    assert [it for it, _ in curve] == [2, 4] and all(10 < p < 60 for _, p in curve)

    from addersr_plugin.scoring import read_pairs

    pairs = read_pairs(os.path.join(tmp_path, "data", "png", "gt"), os.path.join(tmp_path, "data", "png", "lq"))
    photos = scoring.score_run("tiny", pairs, str(tmp_path / "out"))
    assert set(photos) == {"img00", "img01"} and all(10 < p["psnr"] < 60 for p in photos.values())
    assert os.path.isfile(tmp_path / "out" / "img00.png")
    assert scoring.score_run("tiny", pairs, str(tmp_path / "out")) == photos  # cached, same numbers


def test_failed_training_is_reported_and_not_marked_done(tmp_path, study):
    (tmp_path / "options" / "study").mkdir(parents=True)
    write_yaml(study.option_path("broken"), {"name": "study_broken", "model_type": "SRModel"})
    with pytest.raises(RuntimeError, match=r"\[study_broken\] basicsr train failed \(exit \d+\); see .*study_sittings.study_broken.sitting1.log"):
        study.train("broken", threads=1)
    assert not os.path.exists(os.path.join(study.study_run("broken").dir, "study_done.json"))
    cost = json.load(open(os.path.join(study.study_run("broken").sittings, "study_cost.json"), encoding="utf-8"))
    assert cost["sittings"] == 1  # the next sitting is numbered on


def test_cost_record_of_a_previous_runner_is_carried_on(tmp_path, study, monkeypatch):
    """A run interrupted under the previous runner (its records in experiments/study_sittings/NAME)
    goes on numbering its sittings and adding up its seconds in runner.py's folder."""
    import subprocess

    old = tmp_path / "experiments" / "study_sittings" / "tiny"
    old.mkdir(parents=True)
    (old / "study_cost.json").write_text(json.dumps({"seconds": 5.0, "sittings": 1}))
    (old / "sitting1.log").write_text("first sitting")
    monkeypatch.setattr(study.runner.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 3))
    with pytest.raises(RuntimeError, match=r"\[study_tiny\] basicsr train failed \(exit 3\); see .*sitting2.log"):
        study.train("tiny", threads=1)
    run = study.study_run("tiny")
    assert not old.exists() and open(os.path.join(run.sittings, "sitting1.log")).read() == "first sitting"
    cost = json.load(open(os.path.join(run.sittings, "study_cost.json"), encoding="utf-8"))
    assert cost["sittings"] == 2 and cost["seconds"] >= 5.0


def test_summary_leaves_graphics_out_of_photo_means(scoring):
    manifest = {"photos": [{"file": "a_x.png", "source": "a"}, {"file": "b_y.png", "source": "b"},
                           {"file": "lomiri-wallpapers-20_04_Fossa_by_Jasper_Roks.png", "source": "b"}]}
    per = {"a_x": {"psnr": 30.0, "ssim": 0.9, "colour_error_bgr": [0.1, -0.2, 0.0]},
           "b_y": {"psnr": 34.0, "ssim": 0.8, "colour_error_bgr": [0.0, 0.0, 0.5]},
           "lomiri-wallpapers-20_04_Fossa_by_Jasper_Roks": {"psnr": 56.0, "ssim": 1.0,
                                                           "colour_error_bgr": [-3.0, 0.0, 0.0]}}
    s = scoring.summarise(per, manifest)
    assert s["psnr"] == pytest.approx(32.0) and s["ssim"] == pytest.approx(0.85)
    assert s["psnr_by_source"] == {"a": 30.0, "b": 34.0}
    assert s["worst_colour_error"] == pytest.approx(3.0)  # the graphic still counts for colour casts
    assert s["not_photos"] == {"lomiri-wallpapers-20_04_Fossa_by_Jasper_Roks": 56.0}
    assert np.isfinite(s["psnr"])


def test_long_runs_trained_elsewhere_are_imported(tmp_path, study, scoring, monkeypatch):
    """run_long_gpu.sh's results (basicsr logs + the newest model) become finished runs: seconds from
    the log's timestamps, the iterations a stopped run reached, the validation curve; a model over
    the archive's size limit is scored but not committed."""
    monkeypatch.setattr(study.study, "LONG", {"long_a": ("edsr", {}, {}), "long_b": ("edsr", {}, {}),
                                              "long_missing": ("edsr", {}, {})})
    monkeypatch.setattr(study.study, "LONG_ITERS", 4)
    src = tmp_path / "device"
    log = ("2026-11-28 05:24:44,100 INFO: Start training from epoch: 0, iter: 0\n"
           "2026-11-28 05:25:00,000 INFO: [study..][epoch:  0, iter:       2, lr:(1.0e-03,)] l_pix: 1e-2\n"
           "2026-11-28 05:25:01,000 INFO: Validation heldout\n\t # psnr: 35.5000\tBest: 35.5000 @ 2 iter\n")
    for name, model, size in (("long_a", "net_g_latest.pth", 10), ("long_b", "net_g_2.pth", 64)):
        (src / f"study_{name}" / "models").mkdir(parents=True)
        (src / f"study_{name}" / f"train_study_{name}_1.log").write_text(log)
        (src / f"study_{name}" / "models" / model).write_bytes(b"x" * size)
    monkeypatch.setattr(study.runner, "ARCHIVE_MODEL_LIMIT", 32)
    assert study.import_long(str(src), "NVIDIA H200") == ["long_a", "long_b"]
    a = json.load(open(os.path.join(study.study_run("long_a").dir, "study_done.json"), encoding="utf-8"))
    b = json.load(open(os.path.join(study.study_run("long_b").dir, "study_done.json"), encoding="utf-8"))
    assert a["iters"] == 4 and b["iters"] == 2 and a["planned_iters"] == b["planned_iters"] == 4
    assert a["seconds"] == 17 and a["device"] == "NVIDIA H200"  # whole seconds of the timestamps
    assert study.runner.val_curve(study.study_run("long_b")) == [(2, 35.5)]
    assert os.path.getsize(os.path.join(study.study_run("long_b").dir, "models", "net_g_latest.pth")) == 64
    # committed: the small model with its log; the large one's log and record only
    assert sorted(os.listdir(scoring.archive_dir("long_a"))) == ["net_g_latest.pth", "study_done.json", "train.log"]
    assert sorted(os.listdir(scoring.archive_dir("long_b"))) == ["study_done.json", "train.log"]
    import shutil

    shutil.rmtree(study.study_run("long_b").dir)  # a fresh clone: nothing to restore without the model
    assert not study.runner.restore(study.study_run("long_b")) and not os.path.exists(study.study_run("long_b").dir)
    assert scoring.option_path("long_a").endswith(os.path.join("options", "study", "long", "long_a.yml"))
