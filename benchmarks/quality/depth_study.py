"""The depth-and-scale study: AdderEDSR against its EDSR twin at 4, 8 and 16 blocks, ×2 and ×4.

    bash benchmarks/quality/prepare_photos_split.sh        # once: datasets/photos_split
    python benchmarks/quality/depth_study.py train [--only NAME ...] [--jobs 2]
    python benchmarks/quality/depth_study.py report        # score, write docs/quality_depth.md

The data have three splits (prepare_photos_split.sh): training photos; validation photos
(``heldout/``), which basicsr validates on during training and which every choice may look at;
test photos (``test/``, with two whole collections in it), which are scored once, at the end,
for the report and nothing else. A configuration is the study's recipe at one (scale, width,
depth) with one variant; every run of it is one seed. Option files are generated into
``options/study/depth/`` from :data:`CONFIGS`; runs resume and are archived in
``benchmarks/quality/runs_depth/`` (runner.py).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import runner  # noqa: E402

ROOT = runner.ROOT
DATA = "datasets/photos_split"
OPT_DIR = os.path.join(ROOT, "options", "study", "depth")
ARCHIVE = os.path.join(HERE, "runs_depth")
ITERS = 2000
LR = 2e-3
PATCH = 48          # HR patch side at every scale (LR 24 at ×2, 12 at ×4)
BATCH = 16
VAL_FREQ = 250

# The recipe of the first study (docs/quality.md) as AdderEDSR arguments and AdderSRModel options.
OURS_ARCH = {"type": "AdderEDSR", "image_skip": True, "dc_free_head": True, "power_act": False}
OURS_TRAIN = {"optim_g": {"adder_lr_mult": 20}}

# variant -> (what it is, network_g changes, train changes); "edsr" is the CNN twin. The phase-1
# variants train with AdderSRModel's gradient clipping off (its default is "auto"), as every run of
# the first study did, so that they differ in the architecture only; "_guard" variants keep it on.
NO_CLIP = {"grad_clip": None}


class Replace(dict):
    """A train change that replaces the option's value instead of merging into it (a scheduler of
    another type must not inherit the cosine schedule's keys)."""


# The shipped rule's schedule: its learning rate, halved at 2/3 of the run as the shipped files
# halve it at 200k of 300k iterations.
SHIP_LR, SHIP_ITERS = 1e-4, 6000
SHIP_TRAIN = {"optim_g": {"lr": SHIP_LR},
              "scheduler": Replace(type="MultiStepLR", milestones=[SHIP_ITERS * 2 // 3], gamma=0.5),
              "total_iter": SHIP_ITERS}
VARIANTS = {
    "edsr": ("BasicSR's EDSR, the CNN twin", {"type": "EDSR"}, NO_CLIP),
    "ours_ss": ("the first study's recipe, both units of a residual block with a self-shortcut "
                "(AdderEDSR before second_shortcut existed)", {**OURS_ARCH, "second_shortcut": True}, {**OURS_TRAIN, **NO_CLIP}),
    "ours_ss_guard": ("ours_ss with AdderSRModel's default gradient clipping (grad_clip: auto)",
                      {**OURS_ARCH, "second_shortcut": True}, OURS_TRAIN),
    "ours": ("the recipe with the second unit's self-shortcut dropped (the block's skip is its identity path)",
             {**OURS_ARCH, "second_shortcut": False}, {**OURS_TRAIN, **NO_CLIP}),
    "ours_guard": ("ours with AdderSRModel's default gradient clipping (grad_clip: auto)",
                   {**OURS_ARCH, "second_shortcut": False}, OURS_TRAIN),
    "ours_ss_rs01": ("ours_ss with res_scale 0.1", {**OURS_ARCH, "second_shortcut": True, "res_scale": 0.1},
                     {**OURS_TRAIN, **NO_CLIP}),
    # Phase 3: why depth does not help the adder net (ours 32/16 ≈ ours 32/4 at ×2), one change each.
    "ours_zr": ("ours with zero_init_residual: every residual block starts as the identity (BN gamma 0)",
                {**OURS_ARCH, "second_shortcut": False, "zero_init_residual": True}, {**OURS_TRAIN, **NO_CLIP}),
    "ours_rs01": ("ours with res_scale 0.1", {**OURS_ARCH, "second_shortcut": False, "res_scale": 0.1},
                  {**OURS_TRAIN, **NO_CLIP}),
    # AdderNet's input gradient clamps W − X to [−1, 1] (HardTanh): below 1 in magnitude it is
    # smaller than the true gradient's ±1, and 33 adder layers deep the attenuation compounds.
    "ours_isign": ("ours with the exact input gradient (input_grad sign) instead of AdderNet's HardTanh",
                   {**OURS_ARCH, "second_shortcut": False, "input_grad": "sign"}, {**OURS_TRAIN, **NO_CLIP}),
    # Zero padding: a ×4 LR patch is 12×12 pixels, and a 16-block net's receptive field covers it
    # many times over, so every output pixel of a training patch sees the padded border; |0 − w| is
    # a large response for an adder layer (a convolution's zero padding adds nothing). The same
    # pixels per batch in 4 patches of 96² HR (24² LR) instead of 16 of 48².
    "ours_p96": ("ours trained on 4 patches of 96² HR per batch instead of 16 of 48² (same pixels)",
                 {**OURS_ARCH, "second_shortcut": False}, {**OURS_TRAIN, **NO_CLIP, "DATA": {"gt_size": 96, "batch_size_per_gpu": 4}}),
    "edsr_p96": ("BasicSR's EDSR on 4 patches of 96² HR per batch (the twin of ours_p96)", {"type": "EDSR"},
                 {**NO_CLIP, "DATA": {"gt_size": 96, "batch_size_per_gpu": 4}}),
    # The shipped option files' training rule (options/adder_edsr_x4.yml: Adam lr 1e-4, adder
    # weights x20, AdderSRModel's default gradient clipping, MultiStepLR) at a CPU size and a longer
    # run than the study's: does the rule users get train stably at 16 blocks, and how far is it
    # from EDSR under the same rule? `edsr_ship` is its twin.
    "ship": ("the shipped option files' rule (lr 1e-4, adder_lr_mult 20, default clipping), long run",
             {**OURS_ARCH, "second_shortcut": False},
             {**SHIP_TRAIN, "optim_g": {**SHIP_TRAIN["optim_g"], **OURS_TRAIN["optim_g"]}}),
    "ship_m200": ("the shipped option files' rule with adder_lr_mult 200 instead of 20, long run",
                  {**OURS_ARCH, "second_shortcut": False},
                  {**SHIP_TRAIN, "optim_g": {**SHIP_TRAIN["optim_g"], "adder_lr_mult": 200}}),
    "edsr_ship": ("BasicSR's EDSR under the shipped option files' rule (lr 1e-4), long run", {"type": "EDSR"}, SHIP_TRAIN),
    # AdderVDSR against VDSR (issue item: "depth is its whole design"); <feat>x<block> is then
    # num_feat x num_layer. VDSR works at HR resolution, so the CPU runs use a reduced width.
    "vdsr": ("CNN VDSR (this package's) with the paper's init", {"type": "VDSR"}, NO_CLIP),
    "avdsr": ("AdderVDSR without the power activation", {"type": "AdderVDSR", "power_act": False},
              {**OURS_TRAIN, **NO_CLIP}),
    "avdsr_pow": ("AdderVDSR with the paper's power activation (its default)", {"type": "AdderVDSR", "power_act": True},
                  {**OURS_TRAIN, **NO_CLIP}),
}
# Phase 3's multiplier sweep: `ours` with the adder weights' learning rate at N× instead of 20×.
MULTIPLIERS = (5, 50, 100, 200, 400, 800)
VARIANTS.update({f"ours_m{m}": (f"ours with adder_lr_mult {m} instead of 20", {**OURS_ARCH, "second_shortcut": False},
                                {"optim_g": {"adder_lr_mult": m}, **NO_CLIP}) for m in MULTIPLIERS})
# The recipe as the shipped files run it: 200x with AdderSRModel's default guards (gradient clipping
# "auto", the non-finite guard); the ours_m<N> runs train with clipping off, as the sweep began.
VARIANTS["ours_m200_guard"] = ("ours_m200 with AdderSRModel's default gradient clipping (grad_clip: auto)",
                               {**OURS_ARCH, "second_shortcut": False}, {"optim_g": {"adder_lr_mult": 200}})
# CNN VDSR at lower learning rates: at the study's 2e-3 (Adam, no clipping) the plain 20-layer
# CNN's ReLUs die in the first 250 iterations and it stays at bicubic (+0.19 dB on validation).
# The strongest VDSR twin is chosen among these on validation.
VARIANTS.update({f"vdsr_lr{tag}": (f"CNN VDSR at lr {lr:g} instead of {LR:g}", {"type": "VDSR"},
                                   {"optim_g": {"lr": lr}, "scheduler": {"eta_min": lr / 100}, **NO_CLIP})
                 for tag, lr in (("5e4", 5e-4), ("2e4", 2e-4))})
# ... and at 2e-4 too (stopped at 800 iterations, still at bicubic): the lr is not the cause. With He
# init the last layer's output starts as noise of about half the image's range, and Adam removes it
# by silencing the ReLUs; `zl` variants start the last convolution at zero (VDSR's zero_init_last).
# Measured: vdsr_zl stays at bicubic as well at 2e-3 (its last hidden ReLUs die too).
VARIANTS["vdsr_zl"] = ("CNN VDSR with its last convolution starting at zero (zero_init_last)",
                       {"type": "VDSR", "zero_init_last": True}, NO_CLIP)
# vdsr_optim_probe.py (docs/quality_depth/vdsr_optim_probe.json): with He init the fresh net's L1
# error is about 37x bicubic's, and every optimizer tried (the paper's SGD with clipping, MSE,
# AdderSRModel's clipping, Adam 1e-4) removes it by silencing the last hidden ReLUs. With conv_last
# at zero the net starts as bicubic and, at Adam 1e-4, more of them stay active: these train at
# 1e-4 and 2e-4 (the twin, VDSR_TWIN below) and die at 5e-4.
VARIANTS.update({f"vdsr_zl_lr{tag}": (f"CNN VDSR with zero_init_last at lr {lr:g} instead of {LR:g}",
                                      {"type": "VDSR", "zero_init_last": True},
                                      {"optim_g": {"lr": lr}, "scheduler": {"eta_min": lr / 100}, **NO_CLIP})
                 for tag, lr in (("1e4", 1e-4), ("2e4", 2e-4), ("5e4", 5e-4))})
VARIANTS["avdsr_zl_m200"] = ("AdderVDSR without the power activation, conv_last starting at zero, adder_lr_mult 200",
                             {"type": "AdderVDSR", "power_act": False, "zero_init_last": True},
                             {"optim_g": {"adder_lr_mult": 200}, **NO_CLIP})
# AdderVDSR at the recipe's multiplier (the avdsr variants above keep the first study's 20x).
VARIANTS.update({f"{v}_m200": (f"{VARIANTS[v][0]}, adder_lr_mult 200 instead of 20", VARIANTS[v][1],
                               {"optim_g": {"adder_lr_mult": 200}, **NO_CLIP}) for v in ("avdsr", "avdsr_pow")})
VDSR_TYPES = ("VDSR", "AdderVDSR")
# Each adder variant's CNN twin (same scale, size, seed and training changes): VDSR for the VDSR
# family, EDSR otherwise, except where the variant changes the training itself.
# AdderVDSR under the shipped AdderVDSR files' rule (issue 14 item 5: trained past the 4000
# iterations where a 64/16 run once collapsed), against VDSR zl under the VDSR files' rule.
VARIANTS["avdsr_pow_ship_m200"] = ("AdderVDSR (power activation on) under the shipped option files' rule, "
                                   "adder_lr_mult 200, long run", {"type": "AdderVDSR", "power_act": True},
                                   {**SHIP_TRAIN, "optim_g": {**SHIP_TRAIN["optim_g"], "adder_lr_mult": 200}})
VARIANTS["vdsr_zl_ship"] = ("CNN VDSR with zero_init_last under the shipped option files' rule, long run",
                            {"type": "VDSR", "zero_init_last": True}, SHIP_TRAIN)
# Measured: under that rule AdderVDSR ended far behind its twin (its adder weights train at 2e-2
# there against the study rule's 0.4). So the study's rule itself, run past the 4000 iterations
# where 64/16 once collapsed and with AdderSRModel's default guards on (as the shipped files run):
# it ended ahead of its twin (VDSR at lr 2e-4 run as long) and became the AdderVDSR files' rule
# (addersr_plugin/recipes/adder_vdsr.yml; the numbers are in docs/quality_depth.md).
LONG_ITERS = 4500
VARIANTS["avdsr_pow_long_m200"] = ("AdderVDSR (power activation on) under the study's rule (lr 2e-3, cosine, "
                                   f"adder_lr_mult 200) run {LONG_ITERS} iterations, default guards",
                                   {"type": "AdderVDSR", "power_act": True},
                                   {"optim_g": {"adder_lr_mult": 200}, "scheduler": {"periods": [LONG_ITERS]},
                                    "total_iter": LONG_ITERS})
VARIANTS["vdsr_zl_long_lr2e4"] = (f"CNN VDSR with zero_init_last at lr 2e-4, cosine, run {LONG_ITERS} iterations, "
                                  "default guards", {"type": "VDSR", "zero_init_last": True},
                                  {"optim_g": {"lr": 2e-4}, "scheduler": {"periods": [LONG_ITERS], "eta_min": 2e-6},
                                   "total_iter": LONG_ITERS})
TWIN = {"ship": "edsr_ship", "ship_m200": "edsr_ship", "ours_p96": "edsr_p96", "avdsr_pow_ship_m200": "vdsr_zl_ship",
        "avdsr_pow_long_m200": "vdsr_zl_long_lr2e4"}
# Every variant whose network is a CNN (EDSR, VDSR and their training variants), from its network type.
CNN_VARIANTS = tuple(v for v, (_, net, _) in VARIANTS.items() if net["type"] in ("EDSR", "VDSR"))


# AdderVDSR's CNN twin: the strongest VDSR, chosen on validation among vdsr, vdsr_lr5e4, vdsr_zl
# and vdsr_zl_lr{1e4,2e4,5e4} (every one but the zl ones at 1e-4 and 2e-4 stays at bicubic).
VDSR_TWIN = "vdsr_zl_lr2e4"


def twin_variant(variant: str) -> str:
    return TWIN.get(variant) or (VDSR_TWIN if variant.startswith("avdsr") else "edsr")
SEEDS = (10, 11, 12)


def run_name(scale: int, variant: str, feat: int, block: int, seed: int) -> str:
    return f"depth_x{scale}_{variant}_{feat}x{block}_s{seed}"


def parse(name: str) -> dict:
    """The fields of a run name (inverse of :func:`run_name`)."""
    _, sx, *variant, size, sseed = name.split("_")
    feat, block = size.split("x")
    return {"scale": int(sx[1:]), "variant": "_".join(variant), "feat": int(feat), "block": int(block),
            "seed": int(sseed[1:])}


# Phase 1 (one seed, ×2): does the second self-shortcut explain the depth failure? Phase 2: seeds, ×4.
CONFIGS = [run_name(2, v, 32, b, 10) for b in (16, 4) for v in ("ours", "ours_ss", "edsr")] + \
          [run_name(2, v, 32, 8, 10) for v in ("ours", "edsr")] + \
          [run_name(4, v, 32, b, 10) for b in (16, 4) for v in ("ours", "edsr")]


def options(name: str) -> dict:
    f = parse(name)
    what, net, train_changes = VARIANTS[f["variant"]]
    scale = f["scale"]
    depth_key = "num_layer" if net["type"] in VDSR_TYPES else "num_block"
    network_g = {**net, "num_in_ch": 3, "num_out_ch": 3, "num_feat": f["feat"], depth_key: f["block"],
                 "upscale": scale}
    train = {
        "ema_decay": 0,
        "optim_g": {"type": "Adam", "lr": LR, "weight_decay": 0, "betas": [0.9, 0.99]},
        "scheduler": {"type": "CosineAnnealingRestartLR", "periods": [ITERS], "restart_weights": [1],
                      "eta_min": LR / 100},
        "total_iter": ITERS, "warmup_iter": -1,
        "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
    }
    train_changes = dict(train_changes)
    data_changes = train_changes.pop("DATA", {})
    for k, v in train_changes.items():
        if isinstance(v, Replace):
            train[k] = dict(copy.deepcopy(v))
        else:
            train[k] = {**train[k], **copy.deepcopy(v)} if isinstance(v, dict) else v
    return {
        "name": name,
        "model_type": "AdderSRModel",
        "scale": scale,
        "num_gpu": "auto",
        "manual_seed": f["seed"],
        "datasets": {
            "train": {
                "name": "photos_split", "type": "PairedImageDataset",
                "dataroot_gt": f"{DATA}/train_HR_sub.lmdb",
                "dataroot_lq": f"{DATA}/train_LR_bicubic_X{scale}_sub.lmdb",
                "filename_tmpl": "{}", "io_backend": {"type": "lmdb"},
                "gt_size": PATCH, "use_hflip": True, "use_rot": True,
                "num_worker_per_gpu": 0, "batch_size_per_gpu": BATCH,
                "dataset_enlarge_ratio": 100, "prefetch_mode": None, **data_changes,
            },
            "val": {
                "name": "validation", "type": "PairedImageDataset",
                "dataroot_gt": f"{DATA}/heldout/HR", "dataroot_lq": f"{DATA}/heldout/LR_bicubic/X{scale}",
                "io_backend": {"type": "disk"},
            },
        },
        "network_g": network_g,
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": train,
        "val": {"val_freq": VAL_FREQ, "save_img": False,
                "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": scale, "test_y_channel": True}}},
        "logger": {"print_freq": 50, "save_checkpoint_freq": 500, "use_tb_logger": False},
    }


def iters_of(name: str) -> int:
    """The run's length (the study's ITERS unless its variant trains longer)."""
    return options(name)["train"]["total_iter"]


def write_options(names: list[str]) -> None:
    os.makedirs(OPT_DIR, exist_ok=True)
    for name in names:
        what = VARIANTS[parse(name)["variant"]][0]
        with open(os.path.join(OPT_DIR, f"{name}.yml"), "w", encoding="utf-8") as f:
            f.write(f"# depth-and-scale study: {what}\n"
                    "# generated by benchmarks/quality/depth_study.py; trained and scored by it\n")
            yaml.safe_dump(options(name), f, sort_keys=False)


def run_of(name: str) -> runner.Run:
    return runner.Run(name, os.path.join(OPT_DIR, f"{name}.yml"), os.path.join(ARCHIVE, name))


def train_all(names: list[str], jobs: int, threads: int) -> int:
    write_options(names)
    failures = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {n: pool.submit(runner.train, run_of(n), threads, iters_of(n)) for n in names}
        for n, fut in futures.items():
            try:
                fut.result()
            except Exception as exc:  # one failed run must not lose the others
                failures.append(f"{n}: {exc}")
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["options", "train", "report"])
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="these runs only (default: CONFIGS)")
    p.add_argument("--jobs", type=int, default=2, help="trainings at once (default 2)")
    p.add_argument("--threads", type=int, default=None, help="threads per training (default: cores / jobs)")
    args = p.parse_args(argv)
    names = args.only or (CONFIGS if args.action != "report" else archived_and_configs())
    bad = [n for n in names if not _valid(n)]
    if bad:
        p.error(f"not a run name of this study: {', '.join(bad)} (depth_x<scale>_<variant>_<feat>x<block>_s<seed>, "
                f"variants {', '.join(VARIANTS)})")
    if args.action == "options":
        write_options(names)
        return 0
    if args.action == "train":
        threads = args.threads or max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
        return train_all(names, max(args.jobs, 1), threads)
    from depth_report import report

    return report(names)


def archived_and_configs() -> list[str]:
    """What ``report`` covers by default: the queue and every run archived so far."""
    archived = sorted(os.listdir(ARCHIVE)) if os.path.isdir(ARCHIVE) else []
    return list(dict.fromkeys(CONFIGS + [n for n in archived if _valid(n)]))


def _valid(name: str) -> bool:
    try:
        return parse(name)["variant"] in VARIANTS and run_name(**parse(name)) == name
    except (ValueError, KeyError):
        return False


if __name__ == "__main__":
    sys.exit(main())
