"""Calibration images as network inputs: uint8 photos -> RGB float tensors in [0, 1].

A calibration folder is read past its bad files: an unreadable or damaged image is skipped and
named (:class:`CalibrationImages`), and only a folder with no usable image is an error. OpenCV's
decoders print their complaints straight to the process's stderr (``[ WARN:0@…] global
grfmt_png.cpp …`` lines, ``libpng error: …``, ``Premature end of JPEG file``), past Python;
:func:`read_image_quietly` captures them and turns them into the skip's reason.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch

from ..data.errors import DatasetError
from ..data.images import read_image, scan_images


def image_tensor(img: np.ndarray, crop: int | None = None) -> torch.Tensor:
    """uint8 HWC BGR -> (1, 3, H, W) RGB float in [0, 1], centre-cropped to ``crop``."""
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if crop:
        h, w = img.shape[:2]
        top, left = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
        img = img[top:top + crop, left:left + crop]
    rgb = np.ascontiguousarray(img[:, :, ::-1], dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()


@contextlib.contextmanager
def _captured_stderr() -> Iterator[List[str]]:
    """Everything written to file descriptor 2 inside the block (C libraries write there directly),
    as one string appended to the yielded list when the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    text: List[str] = []
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text.append(tmp.read().decode("utf-8", "replace"))


def read_image_quietly(path: str) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """(image, None) for a cleanly decoded image (uint8 HWC BGR, as ``data.images.read_image``),
    else (None, why): unreadable, or decoded with a complaint from the decoder (a truncated JPEG
    decodes to a partly grey image, which must not calibrate a network). Prints nothing."""
    with _captured_stderr() as said:
        try:
            img, why = read_image(path), None
        except DatasetError as exc:
            img, why = None, str(exc)
    noise = " ".join(line.strip() for line in said[0].splitlines() if line.strip())
    if noise:
        return None, (why or "damaged: the decoder complained") + f" ({noise})"
    return img, why


@dataclass
class CalibrationImages:
    """The calibration batches read from a folder, their file names, and the files skipped."""

    batches: List[torch.Tensor] = field(default_factory=list)
    names: List[str] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (file name, why)


def read_calibration_images(folder: str, count: int, crop: Optional[int]) -> CalibrationImages:
    """The first ``count`` usable images of ``folder`` (sorted by name), each centre-cropped to
    ``crop``; unusable files are skipped and recorded, and reading goes on past them. Raises
    ``DatasetError`` when the folder has no image, or none of them is usable."""
    out = CalibrationImages()
    for name in scan_images(folder):
        if len(out.batches) == count:
            break
        img, why = read_image_quietly(os.path.join(folder, name))
        if img is None:
            out.skipped.append((name, why))
            continue
        out.batches.append(image_tensor(img, crop))
        out.names.append(name)
    if not out.batches:
        raise DatasetError(f"no usable calibration image in {folder}: all {len(out.skipped)} image files are "
                           f"unreadable ({'; '.join(f'{n}: {w}' for n, w in out.skipped[:3])}"
                           f"{'; ...' if len(out.skipped) > 3 else ''})")
    return out


__all__ = ["image_tensor", "read_calibration_images", "read_image_quietly", "CalibrationImages"]
