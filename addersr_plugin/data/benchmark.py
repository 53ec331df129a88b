"""Benchmark test sets (Set5, Set14, B100, Urban100) from a folder of HR images.

    <out>/<name>/HR/<img>.png                  the HR images, unchanged (as PNG)
    <out>/<name>/LR_bicubic/X{s}/<img>.png     MATLAB bicubic of the HR modcropped to ×s

BasicSR's ``PairedImageDataset`` crops each HR to ``LR size × scale`` at test time, so one HR
folder serves every scale and each scale is scored on its own modcrop, as in the papers.
The whole ``<name>`` folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

from .errors import DatasetError
from .images import (OutputFolder, StagingDir, bicubic_downscale, min_side, modcrop, read_image_alpha, scan_images,
                     unique_keys, write_png)

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
    smallest = min_side(scales[-1])
    dropped_alpha = []
    with OutputFolder(out_root), StagingDir(target) as staging:
        os.makedirs(os.path.join(staging, "HR"))
        for s in scales:
            os.makedirs(os.path.join(staging, "LR_bicubic", f"X{s}"))
        # disable=None: a bar on a terminal, nothing in logs and pipes
        for file_name, stem in tqdm(list(zip(names, stems)), unit="image", desc=name, disable=None):
            hr, alpha = read_image_alpha(os.path.join(hr_dir, file_name))
            if alpha is not None:
                dropped_alpha.append(file_name)
            if min(hr.shape[:2]) < smallest:
                raise DatasetError(f"{os.path.join(hr_dir, file_name)} is {hr.shape[1]}x{hr.shape[0]}: too small for "
                                   f"x{scales[-1]}; a benchmark image needs at least {smallest} pixels on each side "
                                   f"(an LR image of 2 pixels)")
            write_png(os.path.join(staging, "HR", f"{stem}.png"), hr)
            for s in scales:
                lr = bicubic_downscale(modcrop(hr, s), s)
                write_png(os.path.join(staging, "LR_bicubic", f"X{s}", f"{stem}.png"), lr)
    if dropped_alpha:  # SR is scored on colour: the transparency is not part of a benchmark image
        print(f"note: {len(dropped_alpha)} image(s) had an alpha channel, which the benchmark set leaves out "
              f"(HR and LR are RGB): {', '.join(dropped_alpha)}", file=sys.stderr)
    return target
