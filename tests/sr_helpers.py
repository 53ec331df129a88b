"""Shared helpers of the train/CLI/data/upscale tests: tiny LMDBs and option files, subprocess runs."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def textured_image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth-plus-edges uint8 BGR image (bicubic-friendly, not noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fy, fx = rng.uniform(0.05, 0.3, 2)
        img[:, :, c] = 127 + 80 * np.sin(fy * yy + c) * np.cos(fx * xx) + 40 * ((xx + yy * (c + 1)) % 23 > 11)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_pairs(root: str, n: int = 2, gt: int = 48, scale: int = 2, seed: int = 0) -> tuple[str, str]:
    """``root/gt`` and ``root/lq`` folders of ``n`` PNG pairs (LR = MATLAB bicubic of GT)."""
    import cv2

    from addersr_plugin.data.images import bicubic_downscale

    gt_dir, lq_dir = os.path.join(root, "gt"), os.path.join(root, "lq")
    os.makedirs(gt_dir)
    os.makedirs(lq_dir)
    for i in range(n):
        hr = textured_image(gt, gt, seed + i)
        cv2.imwrite(os.path.join(gt_dir, f"img{i:02d}.png"), hr)
        cv2.imwrite(os.path.join(lq_dir, f"img{i:02d}.png"), bicubic_downscale(hr, scale))
    return gt_dir, lq_dir


def make_pair_lmdbs(root: str, n: int = 2, gt: int = 48, scale: int = 2) -> tuple[str, str]:
    """Two BasicSR LMDBs (GT, LQ) of ``n`` images each, built with the plugin's data tools."""
    from addersr_plugin.data.lmdb_build import build_lmdb

    gt_dir, lq_dir = write_pairs(os.path.join(root, "png"), n, gt, scale)
    gt_lmdb, lq_lmdb = os.path.join(root, "gt.lmdb"), os.path.join(root, "lq.lmdb")
    build_lmdb(gt_dir, gt_lmdb)
    build_lmdb(lq_dir, lq_lmdb)
    return gt_lmdb, lq_lmdb


BASE_TRAIN = {
    "name": "tiny",
    "model_type": "SRModel",
    "scale": 2,
    "num_gpu": 0,
    "manual_seed": 0,
    "datasets": {
        "train": {
            "name": "tiny_train", "type": "PairedImageDataset",
            "dataroot_gt": None, "dataroot_lq": None, "io_backend": {"type": "lmdb"},
            "gt_size": 24, "use_hflip": True, "use_rot": True,
            "num_worker_per_gpu": 0, "batch_size_per_gpu": 2, "dataset_enlarge_ratio": 4,
        },
        "val": {
            "name": "tiny_val", "type": "PairedImageDataset",
            "dataroot_gt": None, "dataroot_lq": None, "io_backend": {"type": "lmdb"},
        },
    },
    "network_g": {"type": "AdderEDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_block": 1, "upscale": 2},
    "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
    "train": {
        "optim_g": {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.99]},
        "scheduler": {"type": "MultiStepLR", "milestones": [1000], "gamma": 0.5},
        "total_iter": 4, "warmup_iter": -1,
        "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
    },
    "val": {"val_freq": 4, "save_img": False,
            "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True}}},
    "logger": {"print_freq": 1, "save_checkpoint_freq": 2, "use_tb_logger": True},
}


def train_options(gt_lmdb: str, lq_lmdb: str, **top) -> dict:
    opt = copy.deepcopy(BASE_TRAIN)
    for phase in ("train", "val"):
        opt["datasets"][phase]["dataroot_gt"] = gt_lmdb
        opt["datasets"][phase]["dataroot_lq"] = lq_lmdb
    opt.update(top)
    return opt


def make_test_options(train_opt: dict, weights: str, name: str = "tiny_test") -> dict:
    val = dict(train_opt["datasets"]["val"])
    return {
        "name": name, "model_type": "SRModel", "scale": train_opt["scale"], "num_gpu": 0,
        "datasets": {"test_1": val},
        "network_g": train_opt["network_g"],
        "path": {"pretrain_network_g": weights, "strict_load_g": True},
        "val": {"save_img": True, "suffix": None,
                "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True}}},
    }


def write_yaml(path: str, opt: dict) -> str:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = REPO + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e["PYTHONWARNINGS"] = "ignore"
    e.setdefault("OMP_NUM_THREADS", "1")  # tiny nets: threads only add contention on 2 cores
    return e


def cli(args: list[str], cwd: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m addersr_plugin.cli ARGS`` (what the ``basicsr``/``addersr`` scripts run)."""
    return subprocess.run([sys.executable, "-m", "addersr_plugin.cli", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)
