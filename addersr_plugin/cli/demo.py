"""``python -m addersr_plugin.demo`` (``make demo``, ``addersr demo``): AdderSR end to end on CPU.

1. Builds the real-photo demo set from scikit-image's photographs (``addersr data demo``),
   holding out two of them and matplotlib's ``grace_hopper``, a photo of another collection.
2. Writes two option files that differ only in ``network_g``: a small AdderEDSR (×2, or ``--scale``
   3 or 4) with the recipe of ``addersr_plugin/recipes/adder_edsr.yml`` (docs/quality.md: image-level
   bicubic skip, DC-free head, AdderSRModel with a learning-rate multiplier for adder weights) and
   its CNN twin, BasicSR's EDSR, and trains each through the ``basicsr train`` command (a
   subprocess, as a user would run it), showing its progress and validation lines.
3. Scores AdderEDSR, EDSR and plain bicubic on the held-out photos (Y-channel PSNR/SSIM,
   border = scale, BasicSR's metrics, and the mean colour error) and writes
   ``comparison_<photo>.png`` (bicubic | AdderEDSR | EDSR | HR), ``results.md`` (this run's report,
   with its date and machine) and ``results_<UTC date_time>.json`` (every score, timing, argument,
   date and machine: one file per run, never an earlier run's overwritten).

Exit status 1 if AdderEDSR does not beat bicubic: the demo must show the method working. It
also says, photo by photo, whether AdderEDSR is >= 1 dB above bicubic (at ×2; at ×3/×4 it shows
EDSR's gain beside it) and within 1 dB of EDSR.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import yaml

from .. import recipes
from ..scoring import bicubic_upscale, colour_error, detail_centre, side_by_side, y_psnr_ssim

_ITER = re.compile(r"iter:\s*([\d,]+),")
# What the training log lines we pass through start with (basicsr's logger format).
_PROGRESS_MARKERS = ("iter:", "Validation", "# psnr", "# ssim", "Saving", "End of training",
                     "Training statistics", "Number of train images", "Total epochs", "Network: ",
                     "Error", "error:", "Traceback")


# The AdderEDSR recipes live in addersr_plugin/recipes/ (one source for the demo, the studies and
# the shipped option files): "ours" is adder_edsr.yml, "paper" adder_edsr_paper.yml.
RECIPES = {"ours": "adder_edsr", "paper": "adder_edsr_paper"}


def model_options(name: str, arch: dict, data: dict, iters: int, batch: int, gt_size: int, lr: float,
                  recipe: str | None = None, scale: int = 2) -> dict:
    """A BasicSR training option dict for the demo (CPU, LMDB, cosine schedule, Y-PSNR validation),
    with ``recipe`` (a name of addersr_plugin/recipes) merged in for adder networks."""
    optim = {"type": "Adam", "lr": lr, "weight_decay": 0, "betas": [0.9, 0.99]}
    checkpoint_every = max(iters // 3, 1)
    print_freq = max(iters // 20, 1)
    while iters % print_freq:  # log the last iteration too: main() checks the run reached it
        print_freq -= 1
    opt = {
        "name": name,
        "model_type": "AdderSRModel",  # SRModel + EMA with BN statistics + stability (docs/training.md)
        "scale": scale,
        "num_gpu": "auto",
        "manual_seed": 10,
        "datasets": {
            "train": {
                "name": "skimage_photos", "type": "PairedImageDataset",
                "dataroot_gt": data["train_gt"], "dataroot_lq": data["train_lq"],
                "io_backend": {"type": "lmdb"},
                "gt_size": gt_size, "use_hflip": True, "use_rot": True,
                # basicsr counts epochs with ceil() but drops the last partial batch: with a small
                # set and ratio 1 the run ends ~4 % short of total_iter. Long epochs avoid that.
                "num_worker_per_gpu": 0, "batch_size_per_gpu": batch, "dataset_enlarge_ratio": 10,
            },
            "val": {
                "name": "skimage_val", "type": "PairedImageDataset",
                "dataroot_gt": data["val_gt"], "dataroot_lq": data["val_lq"],
                "io_backend": {"type": "lmdb"},
            },
        },
        "network_g": {"num_in_ch": 3, "num_out_ch": 3, "upscale": scale, **arch},
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {
            "optim_g": optim,
            "scheduler": {"type": "CosineAnnealingRestartLR", "periods": [iters],
                          "restart_weights": [1], "eta_min": lr / 100},
            "total_iter": iters, "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "val": {
            "val_freq": checkpoint_every, "save_img": False,
            "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": scale, "test_y_channel": True}},
        },
        "logger": {"print_freq": print_freq, "save_checkpoint_freq": checkpoint_every,
                   "use_tb_logger": True},
    }
    return recipes.apply(opt, recipe) if recipe else opt


def basicsr_command() -> list[str]:
    """The installed ``basicsr`` console script next to this Python, else the module form."""
    script = os.path.join(os.path.dirname(sys.executable), "basicsr")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "addersr_plugin.cli"]


def run_training(opt_path: str, workdir: str, label: str) -> tuple[float, int]:
    """``basicsr train -opt opt_path`` in ``workdir``, echoing progress lines.

    Returns (seconds, last iteration the training log reported).
    """
    cmd = basicsr_command() + ["train", "-opt", opt_path]
    print(f"\n=== Training {label}: {' '.join(cmd)}", flush=True)
    start = time.time()
    tail: list[str] = []
    last_iter = 0
    with subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        for line in proc.stdout:
            tail = (tail + [line])[-60:]
            found = _ITER.search(line)
            if found:
                last_iter = int(found.group(1).replace(",", ""))  # basicsr prints 1,500
            if any(m in line for m in _PROGRESS_MARKERS):
                print(f"  [{label}] {line.rstrip()}", flush=True)
    if proc.returncode != 0:
        sys.stdout.write("".join(tail))
        raise RuntimeError(f"training {label} failed (exit {proc.returncode}); last lines above")
    return time.time() - start, last_iter


def read_lmdb_images(lmdb_path: str) -> dict[str, np.ndarray]:
    """All images of a (small) BasicSR LMDB as uint8 BGR arrays, by key."""
    import cv2
    import lmdb

    from ..data.lmdb_build import check_lmdb

    keys = [k for k, _ in check_lmdb(lmdb_path)]
    env = lmdb.open(lmdb_path, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return {k: cv2.imdecode(np.frombuffer(txn.get(k.encode()), np.uint8), cv2.IMREAD_COLOR) for k in keys}
    finally:
        env.close()




def evaluate(workdir: str, data: dict, models: dict[str, tuple[str, str]], scale: int) -> tuple[dict, dict]:
    """``({method: {photo: (psnr, ssim)}}, {method: {photo: colour error (B, G, R)}})`` for bicubic
    and each ``{label: (opt, checkpoint)}``."""
    from ..data.images import write_png
    from ..inference import upscale_image
    from ..loading import load_generator

    gts, lqs = read_lmdb_images(data["val_gt"]), read_lmdb_images(data["val_lq"])
    outputs = {"bicubic": {k: bicubic_upscale(v, scale) for k, v in lqs.items()}}
    for label, (opt_path, ckpt) in models.items():
        net, net_scale, _key = load_generator(opt_path, ckpt)
        outputs[label] = {k: upscale_image(net, v, net_scale) for k, v in lqs.items()}
    scores = {m: {k: y_psnr_ssim(img, gts[k], scale) for k, img in imgs.items()} for m, imgs in outputs.items()}
    casts = {m: {k: colour_error(img, gts[k], scale) for k, img in imgs.items()} for m, imgs in outputs.items()}
    for key, gt in gts.items():  # bicubic | every model | HR, on the photo's most detailed window
        panels = [(m, outputs[m][key]) for m in outputs] + [("HR", gt)]
        png = side_by_side(panels, centre=detail_centre(gt))
        write_png(os.path.join(workdir, f"comparison_{key}.png"), png)
    return scores, casts


def results_table(scores: dict[str, dict[str, tuple]]) -> str:
    photos = sorted(next(iter(scores.values())))
    head = "| method | " + " | ".join(f"{p} PSNR / SSIM" for p in photos) + " | mean PSNR / SSIM |"
    lines = [head, "|" + "---|" * (len(photos) + 2)]
    for method, per_photo in scores.items():
        cells = [f"{per_photo[p][0]:.2f} / {per_photo[p][1]:.4f}" for p in photos]
        mean = np.mean([per_photo[p] for p in photos], axis=0)
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {mean[0]:.2f} / {mean[1]:.4f} |")
    return "\n".join(lines)


# The per-photo gain target was set for the ×2 demo; at ×3/×4 even EDSR gains less than 1 dB on some
# of these photos in 1500 iterations (×4: +0.64 dB on chelsea), so there the gain is shown beside EDSR's.
GAIN_TARGET_DB = {2: 1.0}


def photo_verdicts(scores: dict[str, dict[str, tuple]], scale: int = 2) -> dict[str, str]:
    """Per photo: AdderEDSR's gain over bicubic (against the 1 dB target at ×2, beside EDSR's gain
    at other scales) and its gap to EDSR (target: within 1 dB)."""
    out = {}
    target = GAIN_TARGET_DB.get(scale)
    for photo, (adder, _) in scores.get("AdderEDSR", {}).items():
        bic = scores["bicubic"][photo][0]
        gain = adder - bic
        if target is not None:
            note = "ok" if gain >= target else f"below the {target:g} dB target"
        elif "EDSR" in scores:
            note = f"EDSR {scores['EDSR'][photo][0] - bic:+.2f} dB; the 1 dB target is the ×2 demo's"
        else:
            note = "the 1 dB target is the ×2 demo's"
        text = f"AdderEDSR {gain:+.2f} dB over bicubic ({note})"
        if "EDSR" in scores:
            gap = adder - scores["EDSR"][photo][0]
            text += f", {gap:+.2f} dB vs EDSR ({'ok' if gap >= -1 else 'more than 1 dB behind'})"
        out[photo] = text
    return out


def mean_psnr(scores: dict[str, dict[str, tuple]], method: str) -> float:
    return float(np.mean([v[0] for v in scores[method].values()]))


def ensure_demo_set(out_dir: str, scale: int = 2) -> dict[str, str]:
    """Build the demo LMDBs once; later runs reuse them after checking they are intact."""
    from ..data.demo_set import demo_paths, prepare_demo_set
    from ..data.lmdb_build import check_lmdb

    paths = demo_paths(out_dir, scale)
    if all(os.path.exists(p) for p in paths.values()):
        for p in paths.values():
            check_lmdb(p)
        print(f"Reusing the demo set in {out_dir}")
        return paths
    for p in paths.values():  # a partial set (some LMDBs only) is rebuilt as a whole
        shutil.rmtree(p, ignore_errors=True)
    return prepare_demo_set(out_dir, scale)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="addersr demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo_output", help="working folder (default demo_output)")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=2,
                   help="upscaling factor: LR photos are made by MATLAB bicubic downscaling (default 2)")
    # 1500 iterations keep the demo to minutes on a 2-core CPU; what a run reached is in its
    # results_<date>.json (no run's numbers are kept here: the recipe has changed since they were taken).
    p.add_argument("--iters", type=int, default=1500, help="training iterations per model (default 1500)")
    p.add_argument("--num-feat", type=int, default=32)
    p.add_argument("--num-block", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--gt-size", type=int, default=48, help="HR training patch size (default 48)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, cosine-annealed (default 2e-3)")
    p.add_argument("--no-cnn", action="store_true", help="skip the EDSR twin (faster)")
    p.add_argument("--recipe", choices=("ours", "paper"), default="ours",
                   help="AdderEDSR as the quality study recommends (default; image skip, DC-free head, "
                        "adder_lr_mult) or exactly as the paper describes it (docs/quality.md)")
    return p


def machine() -> dict:
    """Where a run happened: CPU model, cores, torch threads, torch and Python versions, kernels."""
    import platform

    import torch

    from .. import ops

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "adder_kernels": "compiled" if ops.extension_available() else "pure-PyTorch reference (fallback)"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.time()
    started = time.gmtime(start)
    workdir = os.path.abspath(args.out)
    os.makedirs(os.path.join(workdir, "options"), exist_ok=True)
    from .. import ops

    if not ops.extension_available():
        print("WARNING: the compiled adder kernels are not loaded; the pure-PyTorch fallback is "
              "much slower (run `make install` to build them).", flush=True)
    scale = args.scale
    # one folder per scale: the HR LMDBs are modcropped to the scale they were built for
    data = ensure_demo_set(os.path.join(workdir, "datasets", f"x{scale}"), scale)
    body = {"num_feat": args.num_feat, "num_block": args.num_block}
    runs = {"AdderEDSR": (f"demo_adder_edsr_x{scale}", {"type": "AdderEDSR", **body})}
    if not args.no_cnn:
        runs["EDSR"] = (f"demo_edsr_x{scale}", {"type": "EDSR", **body})
    models, timings = {}, {}
    for label, (name, arch) in runs.items():
        opt = model_options(name, arch, data, args.iters, args.batch, args.gt_size, args.lr,
                            RECIPES[args.recipe] if arch["type"] == "AdderEDSR" else None, scale)
        opt_path = os.path.join(workdir, "options", f"{name}.yml")
        with open(opt_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(opt, f, sort_keys=False)
        timings[label] = run_training(opt_path, workdir, label)
        if timings[label][1] != args.iters:
            raise RuntimeError(f"{label} stopped at iteration {timings[label][1]}, not {args.iters}")
        models[label] = (opt_path, os.path.join(workdir, "experiments", name, "models", "net_g_latest.pth"))
    print("\n=== Evaluating on the held-out photos", flush=True)
    scores, colour_errors = evaluate(workdir, data, models, scale)
    table = results_table(scores)
    elapsed = time.time() - start
    from ..data.demo_set import OTHER_COLLECTION

    verdicts = photo_verdicts(scores, args.scale)
    casts = colour_errors.get("AdderEDSR", {})
    where = machine()
    date = time.strftime("%Y-%m-%d %H:%M UTC", started)
    report = (f"# AdderSR demo (x{scale}, Y-channel PSNR/SSIM, border {scale})\n\n"
              f"Run {date} on {where['cpu']} ({where['cpu_cores']} cores, {where['torch_threads']} torch threads), "
              f"torch {where['torch']}, adder kernels {where['adder_kernels']}; "
              f"`addersr demo {' '.join(sys.argv[1:] if argv is None else argv)}`.\n\n{table}\n\n"
              + "".join(f"- {k}: {it} iterations, trained in {sec / 60:.1f} min\n"
                        for k, (sec, it) in timings.items())
              + f"- whole demo: {elapsed / 60:.1f} min\n"
              + "".join(f"- {p} is from another collection ({c}) than the training photos (scikit-image)\n"
                        for p, c in OTHER_COLLECTION.items() if p in verdicts)
              + "".join(f"- {p}: {v}" + (f"; AdderEDSR mean colour error (B, G, R) "
                                         f"{', '.join(f'{c:+.2f}' for c in casts[p])} grey levels" if p in casts else "")
                        + "\n" for p, v in verdicts.items()))
    with open(os.path.join(workdir, "results.md"), "w", encoding="utf-8") as f:
        f.write(report)
    record = {"date": date, "machine": where, "arguments": vars(args),
              "scores": {m: {k: {"y_psnr": v[0], "y_ssim": v[1]} for k, v in per.items()} for m, per in scores.items()},
              "colour_error_bgr": {m: {k: [float(c) for c in v] for k, v in per.items()}
                                   for m, per in colour_errors.items()},
              "training": {k: {"iterations": it, "seconds": sec} for k, (sec, it) in timings.items()},
              "seconds_total": elapsed}
    json_path = os.path.join(workdir, time.strftime("results_%Y-%m-%d_%H%M%S.json", started))
    with open(json_path, "x", encoding="utf-8") as f:  # "x": one file per run, never overwritten
        json.dump(record, f, indent=1)
    print("\n" + report)
    print(f"Side-by-side images: {os.path.join(workdir, 'comparison_*.png')}; this run's record: {json_path}")
    gain = mean_psnr(scores, "AdderEDSR") - mean_psnr(scores, "bicubic")
    if gain <= 0:
        print(f"FAILED: AdderEDSR is {-gain:.2f} dB below bicubic", file=sys.stderr)
        return 1
    print(f"AdderEDSR beats bicubic by {gain:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
