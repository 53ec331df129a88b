"""DIV2K → BasicSR training LMDBs (the names the option files under ``options/`` expect).

``DIV2K_train_HR/0001.png`` (+ optionally ``DIV2K_train_LR_bicubic/X{s}/0001x{s}.png``) becomes

    <out>/DIV2K_train_HR_sub.lmdb                   480² crops every 240 px, keys 0001_s001 ...
    <out>/DIV2K_train_LR_bicubic_X{s}_sub.lmdb      the matching (480/s)² LR crops, same keys

as BasicSR's ``extract_subimages.py`` + ``create_lmdb.py`` do, except that the last crop of a
row/column is aligned to a multiple of 12 so every LR crop matches its HR crop exactly for
×2, ×3 and ×4. Without an LR folder, LR images are made with MATLAB bicubic from the HR.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from functools import partial
from multiprocessing import Pool

from tqdm import tqdm

from .errors import DatasetError
from .images import OutputFolder, bicubic_downscale, crop_positions, modcrop, read_image, scan_images, write_png
from .lmdb_build import build_lmdb, check_lmdb

HR_LMDB = "DIV2K_train_HR_sub.lmdb"
LR_LMDB = "DIV2K_train_LR_bicubic_X{scale}_sub.lmdb"
BASE_ALIGN = 12  # lcm(2, 3, 4): crop offsets valid for every standard scale at once


def _align(scales: list[int]) -> int:
    return math.lcm(BASE_ALIGN, *scales)


def _lr_source(lr_root: str | None, stem: str, scale: int) -> str | None:
    if lr_root is None:
        return None
    path = os.path.join(lr_root, f"X{scale}", f"{stem}x{scale}.png")
    if not os.path.isfile(path):
        raise DatasetError(f"LR image missing for scale {scale}: {path}")
    return path


def check_crop_step(crop: int, step: int, scales: list[int]) -> None:
    """``--crop`` and ``--step``: positive, multiples of every scale."""
    for flag, value in (("--crop", crop), ("--step", step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DatasetError(f"{flag} must be a positive integer, got {value!r}")
    for s in scales:
        if crop % s or step % s:
            raise DatasetError(f"crop {crop} and step {step} must be multiples of scale {s}")


def _extract_one(name: str, *, hr_dir, lr_root, staging, scales, crop, step, write_hr) -> tuple:
    """Write the sub-images of one HR image; returns (their count, the image's WxH)."""
    stem = os.path.splitext(name)[0]
    hr = read_image(os.path.join(hr_dir, name))
    h, w = hr.shape[:2]
    align = _align(scales)
    tops = crop_positions(h, crop, step, align)
    lefts = crop_positions(w, crop, step, align)
    if not tops or not lefts:  # smaller than one crop: reported by the caller
        return 0, (w, h)
    lrs = {}
    for s in scales:
        src = _lr_source(lr_root, stem, s)
        if src is None:
            lrs[s] = bicubic_downscale(modcrop(hr, s), s)
        else:
            lrs[s] = read_image(src)
            if lrs[s].shape[:2] != (h // s, w // s):
                raise DatasetError(
                    f"{src} is {lrs[s].shape[1]}x{lrs[s].shape[0]} but HR {name} is {w}x{h}: "
                    f"not a ×{s} pair"
                )
    index = 0
    for top in tops:
        for left in lefts:
            index += 1
            key = f"{stem}_s{index:03d}.png"
            if write_hr:
                write_png(os.path.join(staging, "HR", key), hr[top:top + crop, left:left + crop])
            for s in scales:
                t, l, c = top // s, left // s, crop // s
                write_png(os.path.join(staging, f"X{s}", key), lrs[s][t:t + c, l:l + c])
    return index, (w, h)


def prepare_div2k(
    hr_dir: str,
    out_dir: str,
    *,
    scales: list[int] = (2, 3, 4),
    lr_root: str | None = None,
    crop: int = 480,
    step: int = 240,
    workers: int = 1,
) -> dict[str, str]:
    """Build the HR and per-scale LR sub-image LMDBs; returns ``{label: lmdb_path}``.

    An HR LMDB that already exists is checked and reused (its crops do not depend on the
    scales); an existing LR LMDB is never overwritten.
    """
    scales = sorted(set(int(s) for s in scales))
    if not scales or any(s < 2 for s in scales):
        raise DatasetError(f"scales must be integers >= 2, got {scales}")
    check_crop_step(crop, step, scales)
    if workers < 1:
        raise DatasetError(f"--workers must be a positive integer, got {workers}")
    names = scan_images(hr_dir)
    hr_lmdb = os.path.join(out_dir, HR_LMDB)
    lr_lmdbs = {s: os.path.join(out_dir, LR_LMDB.format(scale=s)) for s in scales}
    existing = [p for p in lr_lmdbs.values() if os.path.exists(p)]
    if existing:
        raise DatasetError(f"refusing to overwrite existing LMDB(s): {', '.join(existing)}; delete them first")
    write_hr = not os.path.exists(hr_lmdb)
    if not write_hr:
        check_lmdb(hr_lmdb)
        print(f"Keeping existing {hr_lmdb}")

    staging_root = os.path.join(out_dir, ".div2k_sub.partial")
    with OutputFolder(out_dir):
        shutil.rmtree(staging_root, ignore_errors=True)
        for sub in (["HR"] if write_hr else []) + [f"X{s}" for s in scales]:
            os.makedirs(os.path.join(staging_root, sub))
        try:
            _extract_and_pack(names, hr_dir, lr_root, staging_root, scales, crop, step, write_hr, workers,
                              hr_lmdb, lr_lmdbs)
        finally:
            shutil.rmtree(staging_root, ignore_errors=True)
    result = {"HR": hr_lmdb}
    result.update({f"X{s}": p for s, p in lr_lmdbs.items()})
    return result


def _extract_and_pack(names, hr_dir, lr_root, staging_root, scales, crop, step, write_hr, workers, hr_lmdb,
                      lr_lmdbs) -> None:
    job = partial(
        _extract_one, hr_dir=hr_dir, lr_root=lr_root, staging=staging_root,
        scales=scales, crop=crop, step=step, write_hr=write_hr,
    )
    total, skipped = 0, []
    # disable=None: a bar on a terminal, nothing in logs and pipes
    with tqdm(total=len(names), unit="image", desc="Extract sub-images", disable=None) as bar:
        if workers > 1:
            with Pool(workers) as pool:
                done = pool.imap(job, names)  # in order, so skipped images are listed by name
                for name, (n, size) in zip(names, done):
                    total += n
                    skipped += [(name, size)] if n == 0 else []
                    bar.update(1)
        else:
            for name in names:
                n, size = job(name)
                total += n
                skipped += [(name, size)] if n == 0 else []
                bar.update(1)
    if total == 0:
        raise DatasetError(f"no {crop}x{crop} crop fits in any image of {hr_dir} (use a smaller --crop)")
    if skipped:
        print(f"warning: {len(skipped)} image(s) smaller than --crop {crop} gave no sub-image and were left out: "
              + ", ".join(f"{n} ({w}x{h})" for n, (w, h) in skipped), file=sys.stderr, flush=True)
    if write_hr:
        build_lmdb(os.path.join(staging_root, "HR"), hr_lmdb)
    else:
        _same_keys(hr_lmdb, os.path.join(staging_root, f"X{scales[0]}"))
    for s in scales:
        build_lmdb(os.path.join(staging_root, f"X{s}"), lr_lmdbs[s])


def _same_keys(hr_lmdb: str, lr_dir: str) -> None:
    hr_keys = [k for k, _ in check_lmdb(hr_lmdb)]
    lr_keys = [os.path.splitext(n)[0] for n in scan_images(lr_dir)]
    if hr_keys != lr_keys:
        raise DatasetError(
            f"existing {hr_lmdb} was built from other images or crop settings "
            f"({len(hr_keys)} vs {len(lr_keys)} crops); delete it to rebuild"
        )


__all__ = ["prepare_div2k", "check_crop_step", "HR_LMDB", "LR_LMDB"]
