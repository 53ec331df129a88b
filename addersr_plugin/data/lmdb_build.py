"""Build and inspect BasicSR LMDBs.

Building wraps basicsr's own ``make_lmdb_from_imgs`` (same key and ``meta_info.txt`` format
as BasicSR's scripts) but writes to a hidden temporary ``.lmdb`` next to the target and
renames it into place only when every image is in: an interrupted run never leaves an LMDB
that looks complete, and a finished LMDB is never overwritten.
"""

from __future__ import annotations

import os
import shutil

import cv2
import numpy as np

from .errors import DatasetError
from .images import scan_images, unique_keys

META_INFO = "meta_info.txt"


def _map_size(folder: str, names: list[str]) -> int:
    # Upper bound from the raw pixel count (PNG at compression 1 rarely exceeds raw size);
    # LMDB grows its file only as far as it is used, so generous is free.
    from PIL import Image

    raw = 0
    for name in names:
        with Image.open(os.path.join(folder, name)) as im:
            raw += im.width * im.height * len(im.getbands())
    return int(raw * 1.5) + (64 << 20)


def build_lmdb(img_dir: str, lmdb_path: str, *, compress_level: int = 1) -> int:
    """Pack every image of ``img_dir`` into ``lmdb_path``; returns the number of images."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    lmdb_path = os.path.abspath(lmdb_path)
    if not lmdb_path.endswith(".lmdb"):
        raise DatasetError(f"LMDB path must end with '.lmdb': {lmdb_path}")
    if os.path.exists(lmdb_path):
        raise DatasetError(f"refusing to overwrite existing LMDB {lmdb_path}; delete it first")
    names = scan_images(img_dir)
    keys = unique_keys(names)
    parent, base = os.path.split(lmdb_path)
    os.makedirs(parent, exist_ok=True)
    tmp_path = os.path.join(parent, f".{base[:-5]}.partial.lmdb")
    shutil.rmtree(tmp_path, ignore_errors=True)  # left by an earlier interrupted run
    try:
        make_lmdb_from_imgs(
            img_dir, tmp_path, names, keys,
            compress_level=compress_level, map_size=_map_size(img_dir, names),
        )
        _check_written(tmp_path, names, keys)
    except BaseException as exc:
        shutil.rmtree(tmp_path, ignore_errors=True)
        if isinstance(exc, (KeyboardInterrupt, SystemExit, DatasetError)):
            raise
        raise DatasetError(f"building {lmdb_path} failed ({exc}); nothing was written there") from exc
    os.replace(tmp_path, lmdb_path)
    return len(names)


def _check_written(tmp_path: str, names: list[str], keys: list[str]) -> None:
    # Last look before the rename makes the LMDB visible: meta_info.txt must list exactly
    # the images we asked basicsr to write, in order.
    meta = read_meta_info(tmp_path)
    if [k for k, _ in meta] != keys:
        raise DatasetError(f"meta_info.txt of {tmp_path} does not list the {len(names)} images written")


def read_meta_info(lmdb_path: str) -> list[tuple[str, tuple[int, int, int]]]:
    """``[(key, (h, w, c)), ...]`` from an LMDB's ``meta_info.txt``."""
    meta_path = os.path.join(lmdb_path, META_INFO)
    if not os.path.isfile(meta_path):
        raise DatasetError(f"LMDB {lmdb_path} has no {META_INFO} (not built by BasicSR tools?)")
    entries = []
    with open(meta_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                name, shape, _level = line.split()
                h, w, c = (int(v) for v in shape.strip("()").split(","))
            except ValueError as exc:
                raise DatasetError(f"{meta_path}:{lineno}: malformed line {line.strip()!r}") from exc
            entries.append((os.path.splitext(name)[0], (h, w, c)))
    if not entries:
        raise DatasetError(f"{meta_path} lists no images")
    return entries


def check_lmdb(lmdb_path: str) -> list[tuple[str, tuple[int, int, int]]]:
    """Check that ``lmdb_path`` is a readable BasicSR LMDB; returns its meta info.

    Opens the database, compares its entry count with ``meta_info.txt`` and decodes the first
    image, so a truncated or corrupt database fails here with a clear message instead of in a
    dataloader worker.
    """
    import lmdb

    if not lmdb_path.endswith(".lmdb"):
        raise DatasetError(f"LMDB path must end with '.lmdb': {lmdb_path}")
    if not os.path.isdir(lmdb_path):
        raise DatasetError(f"LMDB does not exist: {lmdb_path}")
    meta = read_meta_info(lmdb_path)
    try:
        env = lmdb.open(lmdb_path, readonly=True, lock=False, readahead=False)
        try:
            with env.begin(write=False) as txn:
                count = txn.stat()["entries"]
                first_key, first_shape = meta[0]
                buf = txn.get(first_key.encode("ascii"))
        finally:
            env.close()
    except lmdb.Error as exc:
        raise DatasetError(f"LMDB {lmdb_path} is corrupt or unreadable: {exc}") from exc
    if count != len(meta):
        raise DatasetError(
            f"LMDB {lmdb_path} is incomplete or corrupt: {count} entries, "
            f"meta_info.txt lists {len(meta)}"
        )
    if buf is None:
        raise DatasetError(f"LMDB {lmdb_path} is corrupt: key {first_key!r} of meta_info.txt is missing")
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"LMDB {lmdb_path} is corrupt: image {first_key!r} does not decode")
    if img.shape[:2] != first_shape[:2]:
        raise DatasetError(
            f"LMDB {lmdb_path} is inconsistent: {first_key!r} is {img.shape[:2]}, "
            f"meta_info.txt says {first_shape[:2]}"
        )
    return meta
