"""Calibration images as network inputs: uint8 photos -> RGB float tensors in [0, 1]."""

from __future__ import annotations

import os
from typing import List

import numpy as np
import torch

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


def calibration_batches(folder: str, count: int, crop: int | None) -> List[torch.Tensor]:
    names = scan_images(folder)[:count]
    return [image_tensor(read_image(os.path.join(folder, n)), crop) for n in names]


__all__ = ["image_tensor", "calibration_batches"]
