"""A small real-photo SR dataset from the RGB photographs that ship inside scikit-image.

No download: these files are part of the scikit-image wheel (a basicsr dependency). One
held-out photo comes from another collection on purpose: ``grace_hopper``, the portrait that
ships with matplotlib (a dependency of mmengine, so always installed; a US Navy photograph in the
public domain), JPEG-compressed, so it is reduced 2× with MATLAB bicubic first like every JPEG
photo of the quality study. A model that only fits scikit-image's photos shows it there.
Training photos are cut into HR crops (flat crops, e.g. of black background, are dropped),
validation photos are kept whole (modcropped); LR images are MATLAB bicubic.
Everything goes into BasicSR LMDBs:

    <out>/demo_train_HR_sub.lmdb   <out>/demo_train_LR_bicubic_X{s}_sub.lmdb
    <out>/demo_val_HR.lmdb         <out>/demo_val_LR_bicubic_X{s}.lmdb
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from .errors import DatasetError
from .images import bicubic_downscale, crop_positions, modcrop, write_png
from .lmdb_build import build_lmdb

# RGB photographs shipped in the scikit-image wheel (``skimage.data``). The Hubble deep field and
# the retina fundus photo are left out on purpose: their crops are mostly black sky or smooth
# orange and would outnumber the everyday scenes the held-out photos show (a cat, a coffee cup).
TRAIN_PHOTOS = ("astronaut", "rocket", "immunohistochemistry", "motorcycle")
VAL_PHOTOS = ("coffee", "chelsea", "grace_hopper")
# Held-out photos that come from another collection than the training photos.
OTHER_COLLECTION = {"grace_hopper": "matplotlib"}
MIN_CROP_STD = 4.0  # grey levels; crops flatter than this teach nothing about detail


def load_photo(name: str) -> np.ndarray:
    """An RGB uint8 photo from ``skimage.data`` as BGR (OpenCV order, like BasicSR)."""
    import skimage.data

    if name == "grace_hopper":
        return _matplotlib_photo(name)
    if name == "motorcycle":
        rgb = skimage.data.stereo_motorcycle()[0]
    elif name in TRAIN_PHOTOS + VAL_PHOTOS:
        rgb = getattr(skimage.data, name)()
    else:
        raise DatasetError(f"unknown demo photo {name!r}; known: {', '.join(TRAIN_PHOTOS + VAL_PHOTOS)}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise DatasetError(f"skimage.data.{name} is not an RGB uint8 photo")
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _matplotlib_photo(name: str) -> np.ndarray:
    """matplotlib's sample photo ``<name>.jpg`` as BGR, reduced 2× (MATLAB bicubic) to drop JPEG artefacts."""
    import matplotlib

    from .images import read_image

    path = os.path.join(matplotlib.get_data_path(), "sample_data", f"{name}.jpg")
    if not os.path.isfile(path):
        raise DatasetError(f"matplotlib's sample photo is missing: {path}")
    return bicubic_downscale(modcrop(read_image(path), 2), 2)


def demo_paths(out_dir: str, scale: int) -> dict[str, str]:
    return {
        "train_gt": os.path.join(out_dir, "demo_train_HR_sub.lmdb"),
        "train_lq": os.path.join(out_dir, f"demo_train_LR_bicubic_X{scale}_sub.lmdb"),
        "val_gt": os.path.join(out_dir, "demo_val_HR.lmdb"),
        "val_lq": os.path.join(out_dir, f"demo_val_LR_bicubic_X{scale}.lmdb"),
    }


def _write_train(staging: str, scale: int, crop: int, step: int) -> int:
    count = 0
    for name in TRAIN_PHOTOS:
        hr = modcrop(load_photo(name), scale)
        lr = bicubic_downscale(hr, scale)
        index = 0
        for top in crop_positions(hr.shape[0], crop, step, scale):
            for left in crop_positions(hr.shape[1], crop, step, scale):
                patch = hr[top:top + crop, left:left + crop]
                index += 1
                if patch.std() < MIN_CROP_STD:
                    continue
                key = f"{name}_s{index:03d}.png"
                write_png(os.path.join(staging, "gt", key), patch)
                t, l, c = top // scale, left // scale, crop // scale
                write_png(os.path.join(staging, "lq", key), lr[t:t + c, l:l + c])
                count += 1
    return count


def _write_val(staging: str, scale: int) -> None:
    for name in VAL_PHOTOS:
        hr = modcrop(load_photo(name), scale)
        write_png(os.path.join(staging, "val_gt", f"{name}.png"), hr)
        write_png(os.path.join(staging, "val_lq", f"{name}.png"), bicubic_downscale(hr, scale))


def prepare_demo_set(out_dir: str, scale: int = 2, crop: int = 120, step: int = 60) -> dict[str, str]:
    """Build the four demo LMDBs (skipping none: existing ones are an error); returns their paths."""
    if scale < 2 or crop % scale or step % scale:
        raise DatasetError(f"scale must be >= 2 and divide crop ({crop}) and step ({step}); got {scale}")
    paths = demo_paths(out_dir, scale)
    existing = [p for p in paths.values() if os.path.exists(p)]
    if existing:
        raise DatasetError(f"refusing to overwrite existing LMDB(s): {', '.join(existing)}; delete them first")
    os.makedirs(out_dir, exist_ok=True)
    staging = os.path.join(out_dir, ".demo_set.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for sub in ("gt", "lq", "val_gt", "val_lq"):
        os.makedirs(os.path.join(staging, sub))
    built = []
    try:
        count = _write_train(staging, scale, crop, step)
        print(f"Demo set: {count} training crops of {crop}x{crop} from {len(TRAIN_PHOTOS)} photos, "
              f"validation photos: {', '.join(VAL_PHOTOS)}")
        _write_val(staging, scale)
        for key, sub in (("train_gt", "gt"), ("train_lq", "lq"), ("val_gt", "val_gt"), ("val_lq", "val_lq")):
            build_lmdb(os.path.join(staging, sub), paths[key])
            built.append(paths[key])
    except BaseException:
        # The four LMDBs are one dataset: never leave part of it behind.
        for path in built:
            shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths
