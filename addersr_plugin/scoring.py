"""Scoring SR results on held-out photos: the numbers ``make demo`` and the quality study report.

Everything is measured as SR papers do (Y-channel PSNR/SSIM with ``scale`` border pixels cropped,
BasicSR's own metric functions, MATLAB bicubic as the baseline), plus two checks a PSNR hides:

* **colour error**: the mean signed error per channel, in grey levels. A colour cast (an output
  whose greens are systematically too dark, say) shows up here and nowhere in Y-PSNR's
  luminance-only average;
* **side-by-side crops** to look at: grid patterns and ringing are seen, not computed.
"""

from __future__ import annotations

import os

import numpy as np


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB bicubic ×scale of a uint8 HWC image (the baseline every SR paper reports)."""
    from basicsr.utils.matlab_functions import imresize

    up = imresize(lr.astype(np.float32) / 255.0, scale)
    return np.clip(np.rint(up * 255.0), 0, 255).astype(np.uint8)


def y_psnr_ssim(img: np.ndarray, gt: np.ndarray, scale: int) -> tuple[float, float]:
    """BasicSR's Y-channel PSNR and SSIM with ``scale`` border pixels cropped."""
    from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim

    return (float(calculate_psnr(img, gt, crop_border=scale, test_y_channel=True)),
            float(calculate_ssim(img, gt, crop_border=scale, test_y_channel=True)))


def colour_error(img: np.ndarray, gt: np.ndarray, scale: int) -> list[float]:
    """Mean signed error ``img - gt`` per channel (B, G, R order, grey levels), border cropped."""
    b = scale
    diff = img[b:-b, b:-b].astype(np.float64) - gt[b:-b, b:-b].astype(np.float64)
    return [float(v) for v in diff.reshape(-1, diff.shape[-1]).mean(axis=0)]


def score(img: np.ndarray, gt: np.ndarray, scale: int) -> dict:
    psnr, ssim = y_psnr_ssim(img, gt, scale)
    return {"psnr": psnr, "ssim": ssim, "colour_error_bgr": colour_error(img, gt, scale)}


def read_pairs(gt_dir: str, lq_dir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{stem: (gt, lq)}`` of two folders with the same file names (uint8 BGR)."""
    from .data.errors import DatasetError
    from .data.images import read_image, scan_images

    names = scan_images(gt_dir)
    missing = [n for n in names if not os.path.isfile(os.path.join(lq_dir, n))]
    if missing:
        raise DatasetError(f"{lq_dir} lacks the LR image of {', '.join(missing)}")
    return {os.path.splitext(n)[0]: (read_image(os.path.join(gt_dir, n)), read_image(os.path.join(lq_dir, n)))
            for n in names}


def side_by_side(panels: list[tuple[str, np.ndarray]], box: int = 256, centre: tuple[int, int] | None = None
                 ) -> np.ndarray:
    """Crops of equal-size images (around ``centre`` (y, x), default the middle), labelled, left to right."""
    import cv2

    h, w = panels[0][1].shape[:2]
    size = min(box, h, w)
    cy, cx = centre if centre is not None else (h // 2, w // 2)
    top = int(np.clip(cy - size // 2, 0, h - size))
    left = int(np.clip(cx - size // 2, 0, w - size))
    tiles = []
    for label, img in panels:
        tile = np.ascontiguousarray(img[top:top + size, left:left + size])
        # shrink a long label to fit the tile (a clipped label would be unreadable)
        (tw, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
        scale = 0.6 * min(1.0, (size - 12) / max(tw, 1))
        cv2.putText(tile, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(tile, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
        tiles.append(np.full((size, 4, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def detail_centre(gt: np.ndarray, box: int = 256) -> tuple[int, int]:
    """The centre (y, x) of the ``box``-sized window with the most high-frequency detail.

    Crops shown for inspection should hold edges and texture, where SR differs from bicubic,
    not a patch of sky.
    """
    import cv2

    grey = cv2.cvtColor(gt, cv2.COLOR_BGR2GRAY).astype(np.float32)
    energy = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    h, w = grey.shape
    size = min(box, h, w)
    summed = cv2.boxFilter(energy, -1, (size, size), normalize=True, borderType=cv2.BORDER_CONSTANT)
    half = size // 2
    valid = summed[half:h - (size - half) + 1, half:w - (size - half) + 1]
    y, x = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(y + half), int(x + half)


__all__ = ["bicubic_upscale", "y_psnr_ssim", "colour_error", "score", "read_pairs", "side_by_side",
           "detail_centre"]
