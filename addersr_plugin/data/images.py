"""Image helpers shared by the dataset builders.

Images are handled as BasicSR does: uint8 HWC arrays in BGR order (OpenCV), written as PNG.
Downscaling uses basicsr's MATLAB-compatible bicubic ``imresize`` so LR images match those
of the published benchmarks.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

import cv2
import numpy as np

from .errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def scan_images(folder: str) -> list[str]:
    """Sorted image file names (not paths) directly inside ``folder``."""
    if not os.path.isdir(folder):
        raise DatasetError(f"image folder does not exist: {folder}")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise DatasetError(
            f"no images found in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return names


def _decode(path: str) -> np.ndarray | None:
    """``cv2.imdecode`` of the file's bytes with OpenCV's own logging off: a corrupt file is reported
    once, by the caller, not also as OpenCV's raw ``[ WARN:0@1.9] global grfmt_png.cpp ...`` lines."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    finally:
        cv2.utils.logging.setLogLevel(level)


def read_image_alpha(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(uint8 HWC BGR image, its H×W alpha channel or None); grey images get one channel; a clear
    error if the file is missing, corrupt or not 8-bit."""
    if not os.path.isfile(path):
        raise DatasetError(f"cannot read image (missing): {path}")
    img = _decode(path)
    if img is None:
        raise DatasetError(f"cannot read image (corrupt or not an image): {path}")
    if img.dtype != np.uint8:
        raise DatasetError(f"only 8-bit images are supported, got {img.dtype}: {path}")
    if img.ndim == 2:
        img = img[:, :, None]
    alpha = None
    if img.shape[2] == 4:  # SR models here are RGB: the alpha is handled (or dropped) by the caller
        img, alpha = img[:, :, :3], np.ascontiguousarray(img[:, :, 3])
    elif img.shape[2] == 2:  # grey + alpha
        img, alpha = img[:, :, :1], np.ascontiguousarray(img[:, :, 1])
    return np.ascontiguousarray(img), alpha


def read_image(path: str) -> np.ndarray:
    """Read an image as uint8 HWC BGR (grey images get one channel, alpha is dropped: use
    :func:`read_image_alpha` to keep it); clear error if unreadable."""
    return read_image_alpha(path)[0]


def write_png(path: str, img: np.ndarray) -> None:
    if not cv2.imwrite(path, img):
        raise DatasetError(f"cannot write image: {path}")


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right border so height and width are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def min_side(scale: int) -> int:
    """The smallest HR side MATLAB bicubic can reduce by ``scale``: an LR image of 2 pixels
    (basicsr's ``imresize`` fails on a 1-pixel one)."""
    return 2 * scale


def bicubic_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(img, 1/scale, 'bicubic')`` (antialiased) of a modcropped uint8 image."""
    from basicsr.utils.matlab_functions import imresize

    h, w = img.shape[:2]
    if h % scale or w % scale:
        raise DatasetError(f"image {h}x{w} is not a multiple of scale {scale}; modcrop it first")
    if min(h, w) < min_side(scale):
        raise DatasetError(f"image {w}x{h} is too small for x{scale}: MATLAB bicubic needs at least "
                           f"{min_side(scale)} pixels on each side")
    lr = imresize(img.astype(np.float32) / 255.0, 1.0 / scale)
    lr = np.clip(np.rint(lr * 255.0), 0, 255).astype(np.uint8)
    if lr.ndim == 2:
        lr = lr[:, :, None]
    return lr


def crop_positions(length: int, crop: int, step: int, align: int = 1) -> list[int]:
    """Top-left offsets of crops of size ``crop`` every ``step`` pixels along one axis.

    Like BasicSR's ``extract_subimages`` (threshold 0): a last crop flush with the border is
    added when the regular grid leaves pixels uncovered. That last offset is rounded down to a
    multiple of ``align`` so LR crops (offset / scale) line up exactly with the HR crop for
    every scale in use.
    """
    if length < crop:
        return []
    positions = list(range(0, length - crop + 1, step))
    if positions[-1] + crop < length:
        last = (length - crop) // align * align
        if last > positions[-1]:
            positions.append(last)
    return positions


class StagingDir:
    """Write a folder under a temporary name and rename it into place only when complete.

    A run that stops half-way therefore never leaves a complete-looking folder behind; the
    leftover ``.<name>.partial`` folder is removed by the next run.
    """

    def __init__(self, final_path: str):
        self.final_path = os.path.abspath(final_path)
        parent, name = os.path.split(self.final_path)
        self.path = os.path.join(parent, f".{name}.partial")

    def __enter__(self) -> str:
        if os.path.exists(self.final_path):
            raise DatasetError(f"refusing to overwrite existing {self.final_path}; delete it first")
        shutil.rmtree(self.path, ignore_errors=True)
        os.makedirs(self.path)
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.path, self.final_path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


def unique_keys(names: Iterable[str]) -> list[str]:
    """LMDB keys (file stems) for ``names``; they must be ASCII and unique."""
    names = list(names)
    keys = [os.path.splitext(n)[0] for n in names]
    for key in keys:
        if not key.isascii() or " " in key:
            raise DatasetError(f"image names must be ASCII without spaces for LMDB keys: {key!r}")
    first = {}
    for name, key in zip(names, keys):
        if key in first:
            raise DatasetError(f"two images share the name stem {key!r}: {first[key]} and {name}; rename one")
        first[key] = name
    return keys


class OutputFolder:
    """``os.makedirs(path)`` that is undone when the block fails: the folders this run created are
    removed again if they are still empty, so a failed run leaves no empty ``--out`` behind."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.created: list[str] = []

    def __enter__(self) -> str:
        missing, p = [], self.path
        while not os.path.exists(p):
            missing.append(p)
            p = os.path.dirname(p)
        os.makedirs(self.path, exist_ok=True)
        self.created = missing  # deepest first
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            return
        for p in self.created:
            try:
                os.rmdir(p)  # only if empty
            except OSError:
                break
