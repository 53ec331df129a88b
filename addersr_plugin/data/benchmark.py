"""Benchmark test sets (Set5, Set14, B100, Urban100) from a folder of HR images.

    <out>/<name>/HR/<img>.png                  the HR images, unchanged (as PNG)
    <out>/<name>/LR_bicubic/X{s}/<img>.png     MATLAB bicubic of the HR modcropped to ×s

BasicSR's ``PairedImageDataset`` crops each HR to ``LR size × scale`` at test time, so one HR
folder serves every scale and each scale is scored on its own modcrop, as in the papers.
The whole ``<name>`` folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os

from tqdm import tqdm

from .errors import DatasetError
from .images import StagingDir, bicubic_downscale, modcrop, read_image, scan_images, unique_keys, write_png

KNOWN_SETS = ("Set5", "Set14", "B100", "Urban100")


def prepare_benchmark(hr_dir: str, out_root: str, name: str, scales: list[int] = (2, 3, 4)) -> str:
    """Write ``out_root/name/{HR,LR_bicubic/X*}``; returns ``out_root/name``."""
    scales = sorted(set(int(s) for s in scales))
    if not scales or any(s < 2 for s in scales):
        raise DatasetError(f"scales must be integers >= 2, got {scales}")
    if not name or os.sep in name:
        raise DatasetError(f"benchmark name must be a plain folder name, got {name!r}")
    names = scan_images(hr_dir)
    stems = unique_keys(names)
    target = os.path.join(out_root, name)
    os.makedirs(out_root, exist_ok=True)
    with StagingDir(target) as staging:
        os.makedirs(os.path.join(staging, "HR"))
        for s in scales:
            os.makedirs(os.path.join(staging, "LR_bicubic", f"X{s}"))
        for file_name, stem in tqdm(list(zip(names, stems)), unit="image", desc=name):
            hr = read_image(os.path.join(hr_dir, file_name))
            write_png(os.path.join(staging, "HR", f"{stem}.png"), hr)
            for s in scales:
                cropped = modcrop(hr, s)
                if cropped.shape[0] == 0 or cropped.shape[1] == 0:
                    raise DatasetError(f"{file_name} is smaller than the scale {s}")
                lr = bicubic_downscale(cropped, s)
                write_png(os.path.join(staging, "LR_bicubic", f"X{s}", f"{stem}.png"), lr)
    return target
