"""Check the datasets of a parsed BasicSR option dict before a run starts.

BasicSR only notices a missing folder, a broken LMDB or LR data of the wrong scale deep in
a dataloader worker (or never: a wrong scale just trains badly). These checks fail fast with
a message that names the dataset, the path and the fix.
"""

from __future__ import annotations

import os

from .errors import DatasetError
from .images import scan_images
from .lmdb_build import check_lmdb

_ROOT_KEYS = ("dataroot_gt", "dataroot_lq")
_HINT = "build it with `addersr data ...` (see docs/training.md)"


def _image_size(path: str) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


def lq_name(gt_name: str, filename_tmpl: str, label: str) -> str:
    """The LQ file name BasicSR pairs with ``gt_name``: ``filename_tmpl.format(stem) + ext``
    (``paired_paths_from_folder``), e.g. ``0001.png`` -> ``0001x4.png`` with ``'{}x4'``."""
    stem, ext = os.path.splitext(gt_name)
    try:
        return f"{filename_tmpl.format(stem)}{ext}"
    except (AttributeError, IndexError, KeyError, ValueError) as exc:
        raise DatasetError(f"{label}: filename_tmpl {filename_tmpl!r} is not a template with one '{{}}' "
                           f"for the GT file name ({type(exc).__name__}: {exc})") from None


def _first_pair_sizes(gt: str, lq: str, lmdb: bool, label: str, filename_tmpl: str = "{}"):
    """(key, gt (h, w), lq (h, w)) of the first image pair, without reading pixel data.

    On disk the LQ partner of GT ``NAME.EXT`` is ``filename_tmpl.format(NAME).EXT``, as BasicSR
    pairs them (LMDB pairs by key and ignores the template, as BasicSR does).
    """
    if lmdb:
        gt_meta, lq_meta = check_lmdb(gt), check_lmdb(lq)
        if [k for k, _ in gt_meta] != [k for k, _ in lq_meta]:
            raise DatasetError(f"{label}: the GT and LQ LMDBs hold different image keys: {gt} vs {lq}")
        key = gt_meta[0][0]
        return key, gt_meta[0][1][:2], lq_meta[0][1][:2]
    gt_names, lq_names = scan_images(gt), set(scan_images(lq))
    partners = {name: lq_name(name, filename_tmpl, label) for name in gt_names}
    missing = [name for name in gt_names if partners[name] not in lq_names]
    if missing:
        tmpl = "" if filename_tmpl == "{}" else f" (filename_tmpl {filename_tmpl!r})"
        raise DatasetError(f"{label}: {len(missing)} GT image(s) have no LQ partner in {lq}{tmpl}, e.g. "
                           f"{missing[0]} needs {partners[missing[0]]}")
    name = gt_names[0]
    return name, _image_size(os.path.join(gt, name)), _image_size(os.path.join(lq, partners[name]))


def check_scale(label: str, key: str, gt_hw, lq_hw, scale: int) -> None:
    """GT must be LQ × scale, up to the modcrop remainder (< scale) of benchmark HR images."""
    for axis, g, q in (("height", gt_hw[0], lq_hw[0]), ("width", gt_hw[1], lq_hw[1])):
        if not q * scale <= g < (q + 1) * scale:
            ratio = g / q if q else float("inf")
            raise DatasetError(
                f"{label}: scale {scale} does not fit the data: {key} GT {gt_hw[1]}x{gt_hw[0]} vs "
                f"LQ {lq_hw[1]}x{lq_hw[0]} ({axis} ratio {ratio:.2f}); use the LR data for x{scale} "
                f"or set scale: {round(ratio)}"
            )


def check_datasets(opt: dict) -> None:
    """Check every dataset of an option dict (as parsed from YAML, before basicsr edits it)."""
    datasets = opt.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise DatasetError("the option file has no 'datasets' section")
    scale = opt.get("scale")
    for phase, ds in datasets.items():
        label = f"dataset '{phase}' ({ds.get('name', '?')})"
        if ds.get("type") != "PairedImageDataset":
            continue  # other dataset types have other layouts; basicsr checks them itself
        roots = {}
        for key in _ROOT_KEYS:
            root = ds.get(key)
            if not root:
                raise DatasetError(f"{label}: {key} is not set")
            root = os.path.expanduser(str(root))
            if not os.path.exists(root):
                raise DatasetError(f"{label}: {key} does not exist: {root}; {_HINT}")
            roots[key] = root
        backend = (ds.get("io_backend") or {}).get("type", "disk")
        if backend not in ("disk", "lmdb"):
            continue
        key, gt_hw, lq_hw = _first_pair_sizes(roots["dataroot_gt"], roots["dataroot_lq"], backend == "lmdb", label,
                                              ds.get("filename_tmpl", "{}"))
        if scale is not None:
            check_scale(label, key, gt_hw, lq_hw, int(scale))
        gt_size = ds.get("gt_size")
        if phase.split("_")[0] == "train" and gt_size and gt_size > min(gt_hw):
            raise DatasetError(f"{label}: gt_size {gt_size} is larger than the GT image {key} ({gt_hw[1]}x{gt_hw[0]})")
