"""Which photos ``bench_int8.py`` scores and calibrates on: never the model's training, calibration
or selection photos (docs/benchmarks.md).

* Scored: the photos of ``--score-dir`` (default ``datasets/photos_split/test``, the split built by
  ``benchmarks/quality/prepare_photos_split.sh``: photos never trained on and never looked at to
  choose anything), minus every photo a measured model was trained or validated on. For a model
  given by its option file, those are the photos that the ``manifest.json`` of each of its
  datasets (written by ``addersr data photos``) puts in the ``train`` or ``heldout`` split: the
  first quality study's models (``datasets/photos``) were trained on two of the split's lomiri
  16.04 test photos and on two of its lomiri 20.04 ones, and chose on the other two, so only
  ``matplotlib_grace_hopper`` is left for them. For the quick model, the demo's training photos.
* Calibration: crops of the LR photos of ``--calib-dir`` (default the split's ``heldout/``
  validation photos), which must not share a photo with the scored ones (checked by name).

A dataset whose manifest cannot be found is an error (nothing would say what the model saw),
except the first quality study's (``DATA`` of ``quality/make_study_options.py``), whose split is
on record: ``prepare_photos.sh`` puts every photo of its sources in training or held out, the
held-out ones are listed in ``docs/quality/results.json`` (``bicubic.photos``) and its sources are
the keys of ``bicubic.summary.psnr_by_source`` there.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Mapping, Tuple

import numpy as np
import torch

from addersr_plugin.data.images import read_image, scan_images
from addersr_plugin.quant.images import image_tensor

SCORE_DIR = "datasets/photos_split/test"
CALIB_DIR = "datasets/photos_split/heldout"
SPLIT_SCRIPT = "benchmarks/quality/prepare_photos_split.sh"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY_DATA = "datasets/photos"  # quality/make_study_options.py DATA
STUDY_RECORD = os.path.join(ROOT, "docs", "quality", "results.json")


class PhotoSetError(ValueError):
    """The photo folders or the model's data do not allow an honest held-out score."""


def photo_set(folder: str, scale: int) -> Dict[str, Tuple[str, str]]:
    """{photo name (file stem): (HR path, LR path)} of a ``HR/`` + ``LR_bicubic/X{scale}/`` folder."""
    hr_dir, lr_dir = os.path.join(folder, "HR"), os.path.join(folder, "LR_bicubic", f"X{scale}")
    if not os.path.isdir(hr_dir) or not os.path.isdir(lr_dir):
        raise PhotoSetError(f"{folder} has no HR/ and LR_bicubic/X{scale}/ folders (build the photo split with "
                            f"{SPLIT_SCRIPT})")
    photos = {}
    for name in scan_images(hr_dir):
        lr = os.path.join(lr_dir, name)
        if not os.path.isfile(lr):
            raise PhotoSetError(f"{folder}: {name} has no LR image {lr}")
        photos[os.path.splitext(name)[0]] = (os.path.join(hr_dir, name), lr)
    return photos


def find_manifest(dataroot: str) -> str | None:
    """The ``manifest.json`` of the photo dataset holding ``dataroot`` (the folder itself or up to
    two levels above it: ``<ds>/train_HR_sub.lmdb``, ``<ds>/heldout/HR``)."""
    path = os.path.abspath(dataroot)
    for _ in range(3):
        if os.path.isfile(os.path.join(path, "manifest.json")):
            return os.path.join(path, "manifest.json")
        path = os.path.dirname(path)
    return None


def first_study_seen(names, opt_name: str) -> Dict[str, str]:
    """For the first quality study's models (no manifest here): every photo of its sources (the
    held-out ones chose, the others trained), from the study's record."""
    with open(STUDY_RECORD, encoding="utf-8") as f:
        bicubic = json.load(f)["bicubic"]
    held, sources = set(bicubic["photos"]), list(bicubic["summary"]["psnr_by_source"])
    seen = {}
    for name in names:
        if name in held:
            seen[name] = f"validation (selection) photo of {opt_name}"
        else:
            source = next((src for src in sources if name.startswith(src + "_")), None)
            if source:
                seen[name] = f"training photo of {opt_name}: its dataset trained on every {source} photo not held out"
    return seen


def seen_by(opt_path: str, names) -> Dict[str, str]:
    """{photo name: why it may not be scored} for the model of ``opt_path``, among ``names``: the
    train and heldout photos of its datasets' manifests (or the first study's record)."""
    from addersr_plugin.loading import read_options

    datasets = read_options(opt_path).get("datasets") or {}
    roots = [ds.get("dataroot_gt") or ds.get("dataroot_lq") for ds in datasets.values() if isinstance(ds, Mapping)]
    if not any(roots):
        raise PhotoSetError(f"{opt_path} names no dataset: nothing says which photos its model was trained on")
    seen: Dict[str, str] = {}
    for root in filter(None, roots):
        root = root if os.path.isabs(root) else os.path.join(ROOT, root)  # BasicSR runs from the checkout
        manifest = find_manifest(root)
        rel = os.path.relpath(root, ROOT)
        if manifest is None and (rel == STUDY_DATA or rel.startswith(STUDY_DATA + os.sep)):
            seen.update(first_study_seen(names, os.path.basename(opt_path)))
            continue
        if manifest is None:
            raise PhotoSetError(f"cannot tell which photos {opt_path} trained or chose on: no manifest.json in or "
                                f"above its dataset {root} (rebuild that dataset with `addersr data photos`)")
        with open(manifest, encoding="utf-8") as f:
            for p in json.load(f).get("photos", []):
                if p.get("split") in ("train", "heldout"):
                    role = "training" if p["split"] == "train" else "validation (selection)"
                    seen.setdefault(os.path.splitext(p["file"])[0], f"{role} photo of {os.path.basename(opt_path)}")
    return seen


def quick_model_photos(train_photos) -> Dict[str, str]:
    """The quick model's training photos (scikit-image, named as ``addersr data photos`` names them)."""
    return {f"skimage_{n}": "training photo of the quick model" for n in train_photos}


def choose(score_dir: str, calib_dir: str, scale: int, seen):
    """(scored {name: (HR, LR)}, left out {name: why}, calibration {name: (HR, LR)}); ``seen``:
    {name: why} of the photos not to score, or a function of the candidate names giving it."""
    candidates = photo_set(score_dir, scale)
    seen = seen(list(candidates)) if callable(seen) else seen
    scored = {k: v for k, v in candidates.items() if k not in seen}
    left_out = {k: seen[k] for k in candidates if k in seen}
    if not scored:
        raise PhotoSetError(f"every photo of {score_dir} was seen by the model(s) in training or selection: "
                            + ", ".join(f"{k} ({v})" for k, v in left_out.items()))
    calib = photo_set(calib_dir, scale)
    shared = sorted(set(calib) & set(scored))
    if shared:
        raise PhotoSetError(f"{calib_dir} and {score_dir} share photos {shared}: calibration must not see a "
                            "scored photo")
    return scored, left_out, calib


def calibration_crops(calib: Mapping[str, Tuple[str, str]], n: int, size: int, seed: int = 1) -> List[torch.Tensor]:
    """``n`` random ``size``² crops of the calibration LR photos, taken from each photo in turn."""
    rng = np.random.default_rng(seed)
    lrs = [read_image(lr) for _, lr in sorted(calib.values())]
    lrs = [im for im in lrs if im.shape[0] >= size and im.shape[1] >= size]
    if not lrs:
        raise PhotoSetError(f"no calibration photo is at least {size}x{size} pixels")
    out = []
    for i in range(n):
        lr = lrs[i % len(lrs)]
        top, left = rng.integers(0, lr.shape[0] - size + 1), rng.integers(0, lr.shape[1] - size + 1)
        out.append(image_tensor(lr[top:top + size, left:left + size], None))
    return out


__all__ = ["SCORE_DIR", "CALIB_DIR", "PhotoSetError", "photo_set", "find_manifest", "seen_by", "quick_model_photos",
           "choose", "calibration_crops"]
