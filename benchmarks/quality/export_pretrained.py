"""Ship archived depth-study runs as the package's pretrained models (addersr_plugin/pretrained/).

    python benchmarks/quality/export_pretrained.py adder-edsr-x4=depth_x4_ours_32x4_s10 [NAME=RUN ...]

For each ``NAME=RUN`` it writes ``addersr_plugin/pretrained/NAME.pth`` (the run's final
``params``/``params_ema`` as a plain state dict) and ``NAME.json`` (its card: ``network_g``, scale,
data, recipe, iterations and the run's validation and test scores from
``docs/quality_depth/results.json``, which ``depth_study.py report`` writes). Which run becomes a
model is chosen on the validation scores; the test scores on the card only report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import depth_study as study  # noqa: E402
import runner  # noqa: E402

OUT = os.path.join(runner.ROOT, "addersr_plugin", "pretrained")
RESULTS = os.path.join(runner.ROOT, "docs", "quality_depth", "results.json")
LIMIT = 1 << 20  # bytes per model: the package stays small


def export(name: str, run_name: str, results: dict) -> dict:
    from addersr_plugin.checkpoint_io import checkpoint_state, read_checkpoint
    from addersr_plugin.loading import read_options

    if run_name not in results["runs"]:
        raise SystemExit(f"{run_name} is not in {RESULTS}: run `depth_study.py report` after it finished")
    run = study.run_of(run_name)
    runner.restore(run)
    model = run.model if os.path.isfile(run.model) else os.path.join(run.archive, "net_g_latest.pth")
    state, key = checkpoint_state(read_checkpoint(model), model)
    opt = read_options(run.option_file)
    entry = results["runs"][run_name]
    card = {
        "name": name,
        "network_g": dict(opt["network_g"]),
        "scale": int(opt["scale"]),
        "data": ("datasets/photos_split (benchmarks/quality/prepare_photos_split.sh): 14 training photos of "
                 "Debian's lomiri-wallpapers-16.04 and scikit-image, JPEGs reduced 4x; LR by MATLAB bicubic"),
        "recipe": {"model_type": opt["model_type"], "optim_g": opt["train"]["optim_g"],
                   "scheduler": opt["train"]["scheduler"], "batch": opt["datasets"]["train"]["batch_size_per_gpu"],
                   "gt_size": opt["datasets"]["train"]["gt_size"], "seed": opt["manual_seed"]},
        "iterations": entry["cost"]["iters"],
        "source_run": run_name,
        "param_key": key,
        "validation_scores": {"mean_y_psnr": entry["val"]["psnr"],
                              "photos": {k: v["psnr"] for k, v in entry["val"]["photos"].items()}},
        "test_scores": {"mean_y_psnr": entry["test"]["psnr"],
                        "bicubic_mean_y_psnr": results["bicubic"][str(opt["scale"])]["test"]["psnr"],
                        "photos": {k: v["psnr"] for k, v in entry["test"]["photos"].items()},
                        "metric": f"Y-channel PSNR, border {opt['scale']}, gradients left out of the mean"},
    }
    os.makedirs(OUT, exist_ok=True)
    weights = os.path.join(OUT, f"{name}.pth")
    torch.save({k: v.detach().clone().contiguous() for k, v in state.items()}, weights + ".tmp")
    if os.path.getsize(weights + ".tmp") > LIMIT:
        os.remove(weights + ".tmp")
        raise SystemExit(f"{name}: {run_name}'s weights exceed {LIMIT} bytes; ship a smaller model")
    os.replace(weights + ".tmp", weights)
    with open(os.path.join(OUT, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(card, f, indent=1)
    print(f"{name}: {run_name} -> {os.path.relpath(weights, runner.ROOT)} ({os.path.getsize(weights)} bytes), "
          f"test {card['test_scores']['mean_y_psnr']:.2f} dB (bicubic {card['test_scores']['bicubic_mean_y_psnr']:.2f})")
    return card


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pairs", nargs="+", metavar="NAME=RUN")
    args = p.parse_args(argv)
    results = runner.read_json(RESULTS)
    if not results:
        p.error(f"{RESULTS} is missing: run `python benchmarks/quality/depth_study.py report` first")
    for pair in args.pairs:
        name, sep, run_name = pair.partition("=")
        if not sep or not name or not run_name:
            p.error(f"expected NAME=RUN, got {pair!r}")
        export(name, run_name, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
