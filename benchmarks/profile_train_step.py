#!/usr/bin/env python
"""One BasicSR training iteration of AdderEDSR against EDSR: timed and profiled in one process.

    python benchmarks/profile_train_step.py [--num-feat 32] [--num-block 4] [--scale 2] [--batch 16]
                                            [--lr-size 24] [--layouts nchw,channels_last]
                                            [--rounds 7] [--iters 3] [--warmup 3] [--profile-iters 3]
                                            [--json PATH | --json-dir DIR]

Both models are built by BasicSR's ``build_model`` as ``basicsr train`` builds them: AdderEDSR
with the shipped recipe (``addersr_plugin/recipes/adder_edsr.yml``, ``AdderSRModel``) and BasicSR's
EDSR with ``SRModel``, Adam, L1, a batch of ``--batch`` LR ``--lr-size``² / HR patches. Whole
iterations of every (network, layout) are timed interleaved (``--rounds`` rounds of ``--iters``
iterations each, medians), then each runs ``--profile-iters`` iterations under ``torch.profiler``,
whose self CPU time is grouped by what it serves (``train_step_measure.CATEGORIES``). The report
gives ratios (AdderEDSR / EDSR per layout) and per-iteration milliseconds for context only:
timings on a shared machine are noisy. The JSON (date, machine, command, load average) is never
written over an existing file; by default it goes to ``docs/cpu/profile_train_step_<date>_<time>.json``.
Method and results: docs/benchmarks.md, "Training step (issue 17 item 2)".
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules, also when loaded by path
from bench_adder_conv import machine_info  # noqa: E402
from results_io import new_json_path, write_new_json  # noqa: E402
from train_step_measure import (ARCHS, CATEGORIES, LAYOUTS, build_trainers, profile_all,  # noqa: E402
                                time_interleaved)

DEFAULT_DIR = ROOT / "docs" / "cpu"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-feat", type=int, default=32)
    p.add_argument("--num-block", type=int, default=4)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--batch", type=int, default=16, help="patches per batch (default 16)")
    p.add_argument("--lr-size", type=int, default=24, help="LR patch side; HR is scale times it (default 24)")
    p.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma-separated subset of {','.join(LAYOUTS)}")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    p.add_argument("--iters", type=int, default=3, help="timed iterations per trainer and round (default 3)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations per trainer first (default 3)")
    p.add_argument("--profile-iters", type=int, default=3, help="profiled iterations per trainer (default 3; "
                                                                 "0: no profile)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default: torch's default, all cores, as a user would run it)")
    p.add_argument("--label", default="", help="a free-text note stored in the JSON (e.g. 'before')")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the JSON to PATH, which must not exist yet")
    p.add_argument("--json-dir", type=Path, metavar="DIR", default=None,
                   help=f"write the JSON to a new DIR/profile_train_step_<date>_<time>.json (default {DEFAULT_DIR})")
    args = p.parse_args(argv)
    args.layouts = [s.strip() for s in args.layouts.split(",") if s.strip()]
    unknown = [s for s in args.layouts if s not in LAYOUTS]
    if unknown or not args.layouts:
        p.error(f"--layouts: unknown layout(s) {unknown or '(none given)'}; choose from {', '.join(LAYOUTS)}")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    for name in ("num_feat", "num_block", "scale", "batch", "lr_size", "rounds", "iters"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.profile_iters < 0:
        p.error("--warmup and --profile-iters must be non-negative")
    if args.json is not None and args.json_dir is not None:
        p.error("--json and --json-dir: give one")
    if args.json is not None and args.json.exists():
        p.error(f"--json {args.json}: the file exists; a results file is never overwritten (one file per run): "
                "give a new name")
    if args.json is None and args.json_dir is None:
        args.json_dir = DEFAULT_DIR
    return args



def ratio_table(report: dict) -> str:
    t = report["timing"]
    lines = ["| layout | AdderEDSR ms/iter | EDSR ms/iter | AdderEDSR / EDSR |", "|---|---:|---:|---:|"]
    for lay in report["config"]["layouts"]:
        a, e = t[f"AdderEDSR/{lay}"]["median_s"], t[f"EDSR/{lay}"]["median_s"]
        lines.append(f"| {lay} | {a * 1e3:.1f} | {e * 1e3:.1f} | **{a / e:.2f}×** |")
    return "\n".join(lines)


def profile_table(report: dict) -> str:
    """Self CPU ms per iteration and category, one column per (network, layout)."""
    prof = report["profile"]
    keys = list(prof)
    head = "| category | " + " | ".join(keys) + " |"
    lines = [head, "|---|" + "---:|" * len(keys)]
    for c in CATEGORIES:
        cells = [prof[k]["categories_ms_per_iter"][c] for k in keys]
        if any(v >= 0.05 for v in cells):
            lines.append(f"| {c} | " + " | ".join(f"{v:.1f}" for v in cells) + " |")
    lines.append("| **total (profiled)** | " + " | ".join(f"**{prof[k]['total_self_ms_per_iter']:.1f}**"
                                                       for k in keys) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("basicsr").setLevel(logging.WARNING)  # build_model logs the whole network otherwise
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    info = machine_info(torch.device("cpu"))
    report = {
        "machine": info,
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT) if sys.argv[0] else "profile_train_step.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "label": args.label,
        "config": {"num_feat": args.num_feat, "num_block": args.num_block, "scale": args.scale,
                   "batch": args.batch, "lr_size": args.lr_size, "hr_size": args.lr_size * args.scale,
                   "layouts": args.layouts, "rounds": args.rounds, "iters": args.iters, "warmup": args.warmup,
                   "profile_iters": args.profile_iters, "optimizer": "Adam", "recipe": "adder_edsr"},
    }
    print(f"# training-step profile, {info['date']}, {info['cpu']}, torch {info['torch']}, "
          f"{info['torch_threads']} threads, load {info['load_average_1min_at_start']}")
    trainers = build_trainers(ARCHS, args.layouts, args.num_feat, args.num_block, args.scale, args.batch,
                              args.lr_size)
    report["timing"] = time_interleaved(trainers, args.rounds, args.iters, args.warmup)
    report["ratios"] = {lay: report["timing"][f"AdderEDSR/{lay}"]["median_s"] / report["timing"][f"EDSR/{lay}"]["median_s"]
                        for lay in args.layouts}
    if args.profile_iters:
        report["profile"] = profile_all(trainers, args.profile_iters)
    if hasattr(os, "getloadavg"):
        info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    print("\n" + ratio_table(report))
    if args.profile_iters:
        print("\nself CPU ms per iteration (torch.profiler):\n\n" + profile_table(report))
    path = args.json
    if args.json_dir is not None:
        path = new_json_path(args.json_dir, "profile_train_step", info["date"])
    return write_new_json(report, path, "profile_train_step")  # whole or nothing, never overwriting


if __name__ == "__main__":
    sys.exit(main())
