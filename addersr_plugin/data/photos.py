"""A CPU-scale real-photo SR dataset ("mini-DIV2K") from folders of photographs.

``addersr data photos SRC [SRC ...] --out DIR`` treats each source folder as one photo
collection (the Debian ``lomiri-wallpapers-*`` photos, a camera folder, ...), or ``skimage``
for the photographs that ship inside scikit-image. For every photo it

1. reduces JPEG photos by an integer factor (``--reduce``, default 4) with MATLAB bicubic:
   a 4× reduction averages away JPEG block artefacts and sensor noise, so the HR images are
   clean the way DIV2K's are; lossless photos (PNG, TIFF) are kept at their size. Every photo
   must then be at least ``--crop`` pixels on its shorter side (a smaller training photo would
   give no sub-image); the error says which ``--reduce`` would fit;
2. assigns the **whole photo** to train, held-out (validation) or test: ``--holdout-per-source N``
   photos of every source (a deterministic choice, stable across runs) or the photos named with
   ``--holdout NAME`` are held out for validation (what choices may look at); the photos named
   with ``--test NAME`` and every photo of a ``--test-source`` collection form the test split,
   which only reports. Neither a held-out nor a test photo is ever cropped into training;
3. writes BasicSR's layout:

       DIR/train_HR/<source>_<photo>.png                  the reduced training photos
       DIR/train_HR_sub.lmdb                              sub-images (``--crop``/``--step``)
       DIR/train_LR_bicubic_X{s}_sub.lmdb                 matching LR sub-images per scale
       DIR/heldout/HR/<source>_<photo>.png                held-out photos, modcropped to lcm(scales)
       DIR/heldout/LR_bicubic/X{s}/<source>_<photo>.png   their MATLAB-bicubic LR images
       DIR/test/HR/..., DIR/test/LR_bicubic/X{s}/...      the test split, same layout (when asked for)
       DIR/manifest.json                                  sources, split, sizes, factors

Everything is written under a staging name and renamed into place only when complete, so an
interrupted run leaves nothing that looks like a finished dataset.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil

import numpy as np

from .div2k import check_crop_step, prepare_div2k
from .errors import DatasetError
from .images import IMAGE_EXTENSIONS, bicubic_downscale, modcrop, read_image, scan_images, write_png

SKIMAGE_SOURCE = "skimage"
MATPLOTLIB_SOURCE = "matplotlib"
# matplotlib's one sample photograph (a US Navy portrait in the public domain, 512x600 JPEG): too
# small for --reduce 4, so it is reduced 2x, as the demo does.
MATPLOTLIB_PHOTOS = {"grace_hopper": 2}
PACKAGED_SOURCES = (SKIMAGE_SOURCE, MATPLOTLIB_SOURCE)
# scikit-image's everyday RGB photographs (the Hubble field, retina, microscopy and synthetic
# images are left out: they are not the kind of photo an SR user upscales).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".webp")
MANIFEST = "manifest.json"


# BasicSR's LMDB datasets cut a key at its first '.' (``meta_info.txt`` parsing), so keys
# keep letters, digits, '_' and '-' only: "lomiri-wallpapers-16.04" becomes "lomiri-wallpapers-16_04".
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _source_name(src: str) -> str:
    if src in PACKAGED_SOURCES:
        return src
    return _KEY_UNSAFE.sub("_", os.path.basename(os.path.normpath(src))) or "photos"


def _photo_key(name: str) -> str:
    return _KEY_UNSAFE.sub("_", os.path.splitext(name)[0])


def _load_skimage(name: str) -> np.ndarray:
    import skimage.data

    rgb = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    return np.ascontiguousarray(rgb[:, :, ::-1])  # BGR, like cv2 and BasicSR


def _load_matplotlib(name: str) -> np.ndarray:
    import matplotlib

    path = os.path.join(matplotlib.get_data_path(), "sample_data", f"{name}.jpg")
    if not os.path.isfile(path):
        raise DatasetError(f"matplotlib's sample photo is missing: {path}")
    return read_image(path)


def _load(source: str, path: str) -> np.ndarray:
    if source == SKIMAGE_SOURCE:
        return _load_skimage(path)
    if source == MATPLOTLIB_SOURCE:
        return _load_matplotlib(path)
    return read_image(path)


def list_photos(src: str) -> list[tuple[str, str, bool]]:
    """``(key, path_or_packaged_name, lossy)`` for every photo of one source, sorted."""
    if src == SKIMAGE_SOURCE:
        return [(name, name, False) for name in SKIMAGE_PHOTOS]
    if src == MATPLOTLIB_SOURCE:
        return [(name, name, True) for name in MATPLOTLIB_PHOTOS]
    names = scan_images(src)
    photos = [(_photo_key(n), os.path.join(src, n), n.lower().endswith(LOSSY_EXTENSIONS)) for n in names]
    first = {}
    for name, (key, _, _) in zip(names, photos):
        if key in first:
            raise DatasetError(f"two photos in {src} share the key {key!r}: {first[key]} and {name}; rename one")
        first[key] = name
    return photos


def _too_small(path: str, original: tuple, factor: int, reduce: int, crop: int, source: str) -> str:
    """Why a photo that is smaller than ``crop`` after reduction is refused, and what would fit."""
    h, w = original
    shown = f"{w}x{h}" if factor == 1 else f"{w // factor}x{h // factor} after reduction x{factor}"
    text = f"{path}: {shown} is smaller than --crop {crop} (every photo must hold one --crop sub-image)"
    fits = [f for f in range(factor - 1, 0, -1) if min(h, w) // f >= crop]
    if factor > 1 and fits and source not in PACKAGED_SOURCES and factor == reduce:
        return f"{text}; use --reduce {fits[0]} or a smaller --crop"
    return f"{text}; use a smaller --crop (at most {min(h, w) // factor}) or leave the photo out"


def choose_holdout(keys: list[str], count: int) -> list[str]:
    """``count`` keys chosen by a hash of the key: stable, independent of file order."""
    if count >= len(keys):
        raise DatasetError(f"cannot hold out {count} of {len(keys)} photos: nothing would be left to train on")
    ranked = sorted(keys, key=lambda k: hashlib.sha1(k.encode()).hexdigest())
    return sorted(ranked[:count])


def reduce_photo(img: np.ndarray, factor: int) -> np.ndarray:
    """MATLAB-bicubic reduction by an integer factor (after a modcrop to the factor)."""
    if factor == 1:
        return img
    return bicubic_downscale(modcrop(img, factor), factor)


def prepare_photos(
    sources: list[str],
    out_dir: str,
    *,
    scales: list[int] = (2, 3, 4),
    reduce: int = 4,
    holdout_per_source: int = 2,
    holdout: list[str] | None = None,
    test: list[str] | None = None,
    test_sources: list[str] | None = None,
    crop: int = 192,
    step: int = 96,
) -> dict:
    """Build the dataset described in the module docstring; returns the manifest dict."""
    scales = sorted(set(int(s) for s in scales))
    if not scales or any(s < 2 for s in scales):
        raise DatasetError(f"scales must be integers >= 2, got {scales}")
    if reduce < 1:
        raise DatasetError(f"--reduce must be a positive integer, got {reduce}")
    if holdout_per_source < 0:
        raise DatasetError(f"--holdout-per-source must be >= 0, got {holdout_per_source}")
    check_crop_step(crop, step, scales)
    test_sources = list(test_sources or [])
    if not sources:
        raise DatasetError("give at least one photo folder (or 'skimage')")
    twice = sorted(set(sources) & set(test_sources))
    if twice:
        raise DatasetError(f"{', '.join(twice)}: a source is either for training or a --test-source, not both")
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(os.path.join(out_dir, MANIFEST)):
        raise DatasetError(f"{out_dir} already holds a finished photo dataset; delete it to rebuild")
    align = math.lcm(*scales)

    plan = []  # (source, key, path, lossy, split)
    named, named_test = set(holdout or []), set(test or [])
    both = named & named_test
    if both:
        raise DatasetError(f"{', '.join(sorted(both))}: named in both --holdout and --test")
    for src in list(sources) + test_sources:
        if src not in PACKAGED_SOURCES and not os.path.isdir(src):
            raise DatasetError(f"photo source is not a folder: {src} (or use one of {', '.join(PACKAGED_SOURCES)})")
        source = _source_name(src)
        if any(p[0] == source for p in plan):
            raise DatasetError(f"two sources share the name {source!r}")
        photos = list_photos(src)
        if src in test_sources:  # a whole collection that only reports: never trained on, never chosen on
            plan += [(source, k, p, lossy, "test") for k, p, lossy in photos]
            continue
        keys = [k for k, _, _ in photos]
        tested = {k for k in keys if k in named_test or f"{source}_{k}" in named_test}
        chosen = {k for k in keys if k in named or f"{source}_{k}" in named}
        if not chosen and holdout_per_source:
            chosen = set(choose_holdout([k for k in keys if k not in tested], holdout_per_source))
        if len(chosen | tested) == len(keys):
            raise DatasetError(f"every photo of {source} is held out or tested: nothing left to train on")
        plan += [(source, k, p, lossy, "test" if k in tested else "heldout" if k in chosen else "train")
                 for k, p, lossy in photos]
    every = {k for _, k, *_ in plan} | {f"{s}_{k}" for s, k, *_ in plan}
    for flag, names in (("--holdout", named), ("--test", named_test)):
        if names - every:
            raise DatasetError(f"{flag} names no photo of the sources: {', '.join(sorted(names - every))}")

    os.makedirs(os.path.dirname(out_dir) or ".", exist_ok=True)
    staging = out_dir + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.join(staging, "train_HR"))
    whole_splits = ["heldout"] + (["test"] if any(p[4] == "test" for p in plan) else [])
    for split in whole_splits:
        os.makedirs(os.path.join(staging, split, "HR"))
        for s in scales:
            os.makedirs(os.path.join(staging, split, "LR_bicubic", f"X{s}"))
    manifest = {"version": 1, "test_sources": [_source_name(t) for t in test_sources], "scales": scales, "reduce": reduce, "crop": crop, "step": step,
                "sources": sorted({p[0] for p in plan}), "photos": []}
    try:
        for i, (source, key, path, lossy, split) in enumerate(plan, 1):
            img = _load(source, path)
            if img.shape[2] != 3:
                raise DatasetError(f"{path}: only RGB photos are supported (got {img.shape[2]} channels)")
            factor = MATPLOTLIB_PHOTOS[key] if source == MATPLOTLIB_SOURCE else reduce if lossy else 1
            if min(img.shape[:2]) // factor < crop:
                raise DatasetError(_too_small(path, img.shape[:2], factor, reduce, crop, source))
            small = reduce_photo(img, factor)
            name = f"{source}_{key}.png"
            print(f"[{i}/{len(plan)}] {source}/{key}: {img.shape[1]}x{img.shape[0]} /{factor} -> "
                  f"{small.shape[1]}x{small.shape[0]} ({split})", flush=True)
            if split != "train":
                hr = modcrop(small, align)
                write_png(os.path.join(staging, split, "HR", name), hr)
                for s in scales:
                    write_png(os.path.join(staging, split, "LR_bicubic", f"X{s}", name), bicubic_downscale(hr, s))
            else:
                write_png(os.path.join(staging, "train_HR", name), small)
            manifest["photos"].append({"source": source, "photo": key, "file": name, "split": split,
                                       "original": [int(img.shape[1]), int(img.shape[0])], "reduce": factor,
                                       "size": [int(small.shape[1]), int(small.shape[0])]})
        lmdbs = prepare_div2k(os.path.join(staging, "train_HR"), staging, scales=scales, crop=crop, step=step)
        for label, p in lmdbs.items():  # DIV2K_* names -> train_* names (the dataset is not DIV2K)
            target = os.path.join(staging, os.path.basename(p).replace("DIV2K_", ""))
            os.replace(p, target)
        manifest["train_sub_images"] = sum(1 for _ in open(os.path.join(staging, "train_HR_sub.lmdb",
                                                                         "meta_info.txt")))
        with open(os.path.join(staging, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
        if os.path.exists(out_dir):
            if os.listdir(out_dir):
                raise DatasetError(f"{out_dir} exists and is not empty; delete it to rebuild")
            os.rmdir(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def photo_paths(out_dir: str, scale: int) -> dict[str, str]:
    """The paths an option file needs for one scale of a dataset built by :func:`prepare_photos`."""
    return {
        "train_gt": os.path.join(out_dir, "train_HR_sub.lmdb"),
        "train_lq": os.path.join(out_dir, f"train_LR_bicubic_X{scale}_sub.lmdb"),
        "val_gt": os.path.join(out_dir, "heldout", "HR"),
        "val_lq": os.path.join(out_dir, "heldout", "LR_bicubic", f"X{scale}"),
        "test_gt": os.path.join(out_dir, "test", "HR"),
        "test_lq": os.path.join(out_dir, "test", "LR_bicubic", f"X{scale}"),
    }


def load_manifest(out_dir: str) -> dict:
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.isfile(path):
        raise DatasetError(f"{out_dir} is not a finished photo dataset (no {MANIFEST}); "
                           "build it with `addersr data photos`")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


__all__ = ["prepare_photos", "photo_paths", "load_manifest", "choose_holdout", "SKIMAGE_SOURCE", "MATPLOTLIB_SOURCE",
           "IMAGE_EXTENSIONS"]
