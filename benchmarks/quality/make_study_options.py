"""Writes the quality study's option files, ``options/study/*.yml`` (docs/quality.md).

Every run of the study is one BasicSR option file that differs from the study's base recipe
in the few keys its entry below names, so a reader sees exactly what each configuration
changes. Rerun after editing STUDY; the runner (run_study.py) trains what the files say.

    python benchmarks/quality/make_study_options.py
"""

from __future__ import annotations

import copy
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "options", "study")
DATA = "datasets/photos"  # benchmarks/quality/prepare_photos.sh
SCALE = 2
ITERS = 2000
LR = 2e-3

SMALL = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 32, "num_block": 4, "upscale": SCALE}
# the paper's AdderEDSR, every unit spelled out (the arch's defaults follow the study's winner)
PAPER = {"type": "AdderEDSR", **SMALL, "image_skip": False, "dc_free_head": False, "power_act": True,
         "second_shortcut": True}  # every run of this study had both self-shortcuts (before the option existed)
OURS = {**PAPER, "image_skip": True, "dc_free_head": True}

# name -> (group, what it tests, network_g, overrides of the base options)
STUDY = {
    "edsr": ("baseline", "CNN twin: BasicSR's EDSR, same size and schedule", {"type": "EDSR", **SMALL}, {}),
    "adder_paper": ("baseline", "AdderEDSR as in the paper (conv head/upsampler/tail)", PAPER, {}),
    "adder_skip": ("diagnosis", "+ image-level bicubic skip", {**PAPER, "image_skip": True}, {}),
    "adder_skip_dcfree": ("diagnosis", "+ image skip + zero-sum (DC-free) head", OURS, {}),
    "ours_adder_lr10": ("diagnosis", "ours, adder weights at 10x the learning rate (AdderSRModel adder_lr_mult)",
                        OURS, {"model_type": "AdderSRModel", "train": {"optim_g": {"adder_lr_mult": 10}}}),
    "adder_ours_sgd": ("diagnosis", "ours, AdderNet's optimiser: SGD momentum 0.9 + ALR (eta 0.2), lr 0.02",
                       OURS, {"model_type": "AdderSRModel",
                              "train": {"optim_g": {"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 0,
                                                    "betas": None},
                                        "scheduler": {"eta_min": 0.0002}}}),
    # the paper's ablations, on our recipe
    "abl_no_shortcut": ("ablation", "ours without the self-shortcut", {**OURS, "shortcut": False}, {}),
    "abl_no_power": ("ablation", "ours without the power activation", {**OURS, "power_act": False}, {}),
    "abl_no_bn": ("ablation", "ours without BatchNorm (adder layers get a bias)", {**OURS, "norm": None}, {}),
    "abl_sign_input_grad": ("ablation", "ours with the exact (sign) input gradient",
                            {**OURS, "input_grad": "sign"}, {}),
    "abl_adder_upsampler": ("ablation", "ours with adder upsampler layers", {**OURS, "adder_upsampler": True}, {}),
    # beyond the paper
    "ours_ema": ("beyond", "ours + EMA 0.999 of parameters and BN statistics (AdderSRModel)", OURS,
                 {"model_type": "AdderSRModel", "train": {"ema_decay": 0.999}}),
    "ours_distill": ("beyond", "ours + output distillation from the trained EDSR twin (L1, weight 1)", OURS,
                     {"model_type": "AdderSRModel",
                      "network_t": {"type": "EDSR", **SMALL},
                      "path": {"pretrain_network_t": "experiments/study_edsr/models/net_g_latest.pth",
                               "ignore_resume_networks": ["network_t"]},
                      "train": {"distill_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}}}),
    # the best ablation (no power activation) combined with what helped on the full unit
    "ours_nopower_lr10": ("combined", "ours without the power activation, adder weights at 10x the learning rate",
                          {**OURS, "power_act": False},
                          {"model_type": "AdderSRModel", "train": {"optim_g": {"adder_lr_mult": 10}}}),
    "ours_nopower_distill": ("combined", "ours without the power activation, 10x adder learning rate, output "
                             "distillation from the trained EDSR twin",
                             {**OURS, "power_act": False},
                             {"model_type": "AdderSRModel",
                              "network_t": {"type": "EDSR", **SMALL},
                              "path": {"pretrain_network_t": "experiments/study_edsr/models/net_g_latest.pth",
                                       "ignore_resume_networks": ["network_t"]},
                              "train": {"optim_g": {"adder_lr_mult": 10},
                                        "distill_opt": {"type": "L1Loss", "loss_weight": 1.0,
                                                        "reduction": "mean"}}}),
    "ours_nopower_lr20": ("combined", "ours without the power activation, adder weights at 20x the learning rate",
                          {**OURS, "power_act": False},
                          {"model_type": "AdderSRModel", "train": {"optim_g": {"adder_lr_mult": 20}}}),
    "ours_nopower_noshortcut": ("combined", "ours without the power activation and the self-shortcut, 10x adder "
                                "learning rate", {**OURS, "power_act": False, "shortcut": False},
                                {"model_type": "AdderSRModel", "train": {"optim_g": {"adder_lr_mult": 10}}}),
    "ours_nopower_lr20_addup": ("combined", "the new default with adder upsampler layers (integer-friendly: every "
                                "layer between head and tail an adder layer)",
                                {**OURS, "power_act": False, "adder_upsampler": True},
                                {"model_type": "AdderSRModel", "train": {"optim_g": {"adder_lr_mult": 20}}}),
}

# The long schedule: a few configurations at LONG_ITERS iterations (5x the study's), on a lent GPU
# (benchmarks/quality/run_long_gpu.sh), for the gap-vs-iterations question: does the adder-CNN gap
# close with training, or is it the method's? Same data, batch, patch, learning rate and cosine
# schedule as the study, stretched; the loader gets worker processes (a GPU iteration is faster than
# one process decodes 16 PNG sub-images). Two runs also at EDSR-baseline size (64 features, 16
# blocks). name -> (study configuration it stretches, network_g changes, other overrides); every
# long run compares with the EDSR twin of its own size (LONG_TWIN).
LONG_ITERS = 10000
LONG_OUT = os.path.join(OUT, "long")
BASELINE_SIZE = {"num_feat": 64, "num_block": 16}
LONG = {
    "long_edsr": ("edsr", {}, {}),
    "long_adder_paper": ("adder_paper", {}, {}),
    "long_ours_adder_lr10": ("ours_adder_lr10", {}, {}),
    "long_ours_nopower_lr10": ("ours_nopower_lr10", {}, {}),
    "long_ours_nopower_distill": ("ours_nopower_distill", {},
                                  {"path": {"pretrain_network_t": "experiments/study_long_edsr/models/net_g_latest.pth"}}),
    "long64_edsr": ("edsr", BASELINE_SIZE, {}),
    "long64_ours_nopower_lr10": ("ours_nopower_lr10", BASELINE_SIZE, {}),
}
LONG_TWIN = {n: ("long64_edsr" if n.startswith("long64_") else "long_edsr") for n in LONG}
LONG_DEPENDS = {"long_ours_nopower_distill": "long_edsr"}
LONG_LOADER = {"num_worker_per_gpu": 3}

# Held-out images that are not photographs: Ubuntu 20.04's default wallpaper "Fossa" is a rendered
# colour gradient. It stays in the held-out set as a check for grid patterns and colour casts on
# smooth gradients (where adder nets failed before), but it is left out of the photo means: its
# bicubic PSNR of 56 dB would outweigh every real photo.
NOT_PHOTOS = ["lomiri-wallpapers-20_04_Fossa_by_Jasper_Roks"]

# student -> teacher: the runner trains the teacher first (distillation runs)
DEPENDS: dict[str, str] = {"ours_distill": "edsr", "ours_nopower_distill": "edsr"}
# the runs whose outputs the report shows side by side (docs/quality/compare_*.png)
SHOWN = ["adder_paper", "adder_skip_dcfree", "ours_adder_lr10", "ours_nopower_lr20", "edsr"]
# the runs whose adder layers' input and weight magnitudes the report compares
SCALE_RUNS = ["adder_paper", "adder_skip_dcfree", "ours_adder_lr10", "ours_nopower_lr20"]


def base_options(name: str, network_g: dict, iters: int = ITERS) -> dict:
    return {
        "name": f"study_{name}",
        "model_type": "SRModel",
        "scale": SCALE,
        "num_gpu": "auto",
        "manual_seed": 10,
        "datasets": {
            "train": {
                "name": "photos", "type": "PairedImageDataset",
                "dataroot_gt": f"{DATA}/train_HR_sub.lmdb",
                "dataroot_lq": f"{DATA}/train_LR_bicubic_X{SCALE}_sub.lmdb",
                "filename_tmpl": "{}", "io_backend": {"type": "lmdb"},
                "gt_size": 48, "use_hflip": True, "use_rot": True,
                "num_worker_per_gpu": 0, "batch_size_per_gpu": 16,
                # basicsr ends a run at the end of an epoch: long epochs make it reach total_iter
                "dataset_enlarge_ratio": 50, "prefetch_mode": None,
            },
            "val": {
                "name": "heldout", "type": "PairedImageDataset",
                "dataroot_gt": f"{DATA}/heldout/HR", "dataroot_lq": f"{DATA}/heldout/LR_bicubic/X{SCALE}",
                "io_backend": {"type": "disk"},
            },
        },
        "network_g": copy.deepcopy(network_g),
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {
            "ema_decay": 0,
            "optim_g": {"type": "Adam", "lr": LR, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "CosineAnnealingRestartLR", "periods": [iters], "restart_weights": [1],
                          "eta_min": LR / 100},
            "total_iter": iters, "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "val": {
            "val_freq": iters // 4 if iters <= ITERS else iters // 10, "save_img": False,
            "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": SCALE, "test_y_channel": True}},
        },
        "logger": {"print_freq": 100, "save_checkpoint_freq": iters // 4 if iters <= ITERS else iters // 10,
                   "use_tb_logger": False},
    }


def merge(dst: dict, src: dict) -> dict:
    """``dst`` updated by ``src`` recursively; a None in ``src`` deletes that key."""
    for k, v in src.items():
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            dst[k] = merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
    return dst


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    for name, (group, what, net, overrides) in STUDY.items():
        opt = merge(base_options(name, net), overrides)
        path = os.path.join(OUT, f"{name}.yml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"# quality study ({group}): {what}\n"
                    "# generated by benchmarks/quality/make_study_options.py; run by run_study.py\n")
            yaml.safe_dump(opt, f, sort_keys=False)
        print(path)
    os.makedirs(LONG_OUT, exist_ok=True)
    for name, (base, size, overrides) in LONG.items():
        group, what, net, base_overrides = STUDY[base]
        opt = merge(base_options(name, {**net, **size}, LONG_ITERS), base_overrides)
        opt = merge(opt, overrides)
        opt["datasets"]["train"].update(LONG_LOADER)
        path = os.path.join(LONG_OUT, f"{name}.yml")
        sized = f", {size['num_feat']} features, {size['num_block']} blocks" if size else ""
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"# quality study, long schedule ({LONG_ITERS} iterations on a GPU{sized}): {what}\n"
                    "# generated by benchmarks/quality/make_study_options.py; run by run_long_gpu.sh\n")
            yaml.safe_dump(opt, f, sort_keys=False)
        print(path)


if __name__ == "__main__":
    main()
