"""Training runs of the quality studies: start, resume, archive, restore (no study knowledge here).

A run is one BasicSR option file trained by the installed ``basicsr train`` command in a
subprocess, exactly as a user runs it, from the repository root. A :class:`Run` names its
option file, its basicsr folder (``experiments/<name>``), a folder for the runner's own files
beside it (basicsr renames an existing run folder to ``*_archived_*`` when a run starts without
a resume state, so nothing of ours may live inside it) and the committed archive:

* resumable: a finished run (``study_done.json``) is skipped; an interrupted one continues with
  ``--auto_resume`` from its last checkpoint, and the training seconds of all sittings add up;
* archived: the final model (when small), every sitting's basicsr log and the cost record are
  copied into the repository, so a later sitting on a fresh clone scores them instead of training
  them again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARCHIVE_MODEL_LIMIT = 2 * 2**20  # bytes; larger models are scored once and not committed
_VAL_ITER = re.compile(r"iter:\s*([\d,]+),")
_VAL_PSNR = re.compile(r"# psnr: ([\d.]+)")
_TRAIN_ITER = re.compile(r"iter:\s*([\d,]+), lr:")


def read_json(path: str, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json(path: str, data) -> None:
    """Write through a temporary name: never a half-written JSON that looks valid."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Run:
    name: str          # basicsr's experiment name (the option file's ``name``)
    option_file: str   # absolute path
    archive: str       # committed folder: train.log, study_done.json, net_g_latest.pth when small

    @property
    def dir(self) -> str:
        return os.path.join(ROOT, "experiments", self.name)

    @property
    def sittings(self) -> str:
        return os.path.join(ROOT, "experiments", "study_sittings", self.name)

    @property
    def model(self) -> str:
        return os.path.join(self.dir, "models", "net_g_latest.pth")

    def done(self) -> dict | None:
        return read_json(os.path.join(self.dir, "study_done.json"))


def archive(run: Run) -> None:
    os.makedirs(run.archive, exist_ok=True)
    if os.path.getsize(run.model) <= ARCHIVE_MODEL_LIMIT:
        shutil.copyfile(run.model, os.path.join(run.archive, "net_g_latest.pth"))
    logs = sorted(f for f in os.listdir(run.dir) if f.startswith("train_") and f.endswith(".log"))
    with open(os.path.join(run.archive, "train.log"), "w", encoding="utf-8") as out:
        for log in logs:  # every sitting's basicsr log, for the validation curve
            with open(os.path.join(run.dir, log), encoding="utf-8", errors="replace") as f:
                out.write(f.read())
    shutil.copyfile(os.path.join(run.dir, "study_done.json"), os.path.join(run.archive, "study_done.json"))


def restore(run: Run) -> bool:
    """Put an archived finished run back under experiments/ (False when it is there already, not
    archived, or archived without its model)."""
    if run.done() or not os.path.isfile(os.path.join(run.archive, "study_done.json")) \
            or not os.path.isfile(os.path.join(run.archive, "net_g_latest.pth")):
        return False
    os.makedirs(os.path.dirname(run.model), exist_ok=True)
    shutil.copyfile(os.path.join(run.archive, "net_g_latest.pth"), run.model)
    shutil.copyfile(os.path.join(run.archive, "train.log"), os.path.join(run.dir, "train_archived.log"))
    shutil.copyfile(os.path.join(run.archive, "study_done.json"), os.path.join(run.dir, "study_done.json"))
    return True


def basicsr_command() -> list[str]:
    import sys

    script = os.path.join(os.path.dirname(sys.executable), "basicsr")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "addersr_plugin.cli"]


def train(run: Run, threads: int, iters: int) -> dict:
    """Train ``run`` to completion (or resume it); returns its cost record."""
    if restore(run):
        print(f"[{run.name}] restored from {os.path.relpath(run.archive, ROOT)}", flush=True)
    done = run.done()
    if done:
        print(f"[{run.name}] finished earlier ({done['seconds'] / 60:.1f} min); skipped", flush=True)
        return done
    os.makedirs(run.sittings, exist_ok=True)
    cost_path = os.path.join(run.sittings, "study_cost.json")
    cost = read_json(cost_path, {"seconds": 0.0, "sittings": 0})
    cmd = basicsr_command() + ["train", "-opt", run.option_file, "--auto_resume"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    print(f"[{run.name}] {'resuming' if cost['sittings'] else 'starting'}: {' '.join(cmd)}", flush=True)
    log_path = os.path.join(run.sittings, f"sitting{cost['sittings'] + 1}.log")
    start = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    cost = {"seconds": cost["seconds"] + time.time() - start, "sittings": cost["sittings"] + 1}
    write_json(cost_path, cost)
    if proc.returncode != 0:
        raise RuntimeError(f"[{run.name}] basicsr train failed (exit {proc.returncode}); see {log_path}")
    if not os.path.isfile(run.model):
        raise RuntimeError(f"[{run.name}] training ended without {run.model}; see {log_path}")
    done = dict(cost, iters=iters, threads=threads, finished=time.strftime("%Y-%m-%d %H:%M"))
    write_json(os.path.join(run.dir, "study_done.json"), done)
    archive(run)
    print(f"[{run.name}] done in {cost['seconds'] / 60:.1f} min over {cost['sittings']} sitting(s)", flush=True)
    return done


def _logs(run: Run) -> list[str]:
    if not os.path.isdir(run.dir):
        return []
    return [os.path.join(run.dir, f) for f in sorted(os.listdir(run.dir))
            if f.startswith("train_") and f.endswith(".log")]


def val_curve(run: Run) -> list[tuple[int, float]]:
    """(iteration, validation Y-PSNR) from basicsr's validation lines in the run's logs."""
    points = {}
    for log in _logs(run):
        it = None
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = _VAL_ITER.search(line)
                if m:
                    it = int(m.group(1).replace(",", ""))
                m = _VAL_PSNR.search(line)
                if m and it is not None:
                    points[it] = float(m.group(1))
    return sorted(points.items())


def last_iter(run: Run) -> int:
    """The last training iteration a log of the run reported (0 before the first)."""
    last = 0
    for log in _logs(run):
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = _TRAIN_ITER.search(line)
                if m:
                    last = max(last, int(m.group(1).replace(",", "")))
    return last


def score_model(run: Run, pairs: dict, save_dir: str | None = None, cache: str = "study_scores.json") -> dict:
    """Per-photo scores (Y-PSNR/SSIM with ``scale`` border, colour error) of the run's final model on
    ``pairs`` (``{photo: (gt, lq)}``), cached in the run folder under ``cache`` and recomputed when
    the model is newer; with ``save_dir`` the outputs are written there as PNGs."""
    from addersr_plugin.inference import upscale_image
    from addersr_plugin.loading import load_generator
    from addersr_plugin.scoring import score

    cache_path = os.path.join(run.dir, cache)
    cached = read_json(cache_path)
    if cached and cached.get("model_mtime") == os.path.getmtime(run.model) and set(cached["photos"]) == set(pairs) \
            and (save_dir is None or all(os.path.isfile(os.path.join(save_dir, f"{k}.png")) for k in pairs)):
        return cached["photos"]
    net, scale, _ = load_generator(run.option_file, run.model)
    photos = {}
    for key, (gt, lq) in pairs.items():
        sr = upscale_image(net, lq, scale)
        photos[key] = score(sr, gt, scale)
        if save_dir:
            import cv2

            os.makedirs(save_dir, exist_ok=True)
            cv2.imwrite(os.path.join(save_dir, f"{key}.png"), sr)
    write_json(cache_path, {"model_mtime": os.path.getmtime(run.model), "photos": photos})
    return photos
