#!/usr/bin/env python
"""What each cut of issue 17 item 2 gave: AdderEDSR training iterations with one cut undone at a time.

    python benchmarks/train_step_cuts.py [--rounds 7] [--iters 3] [--json PATH | --json-dir DIR]

Runs become comparable only within one process (the same machine state), so every variant is a
trainer of its own in one process, timed interleaved with BasicSR's EDSR (as profile_train_step.py
times them): the package's current AdderEDSR ("all cuts"), the same network with the committed
(HEAD 54da4ee) forwards of ``ShortcutAdderBlock``/``AdderResidualBlock`` and gradient clipper
("none", the finite check excepted), and one variant per cut with only that cut undone. The undone
forwards are set on each module instance, so the package itself is never changed. Reported: ms per
iteration and ratios to EDSR in the same layout. JSON like profile_train_step.py's (never overwrites).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_adder_conv import machine_info  # noqa: E402
from results_io import new_json_path, write_new_json  # noqa: E402
from train_step_measure import LAYOUTS, Trainer, make_batch, model_options, time_interleaved  # noqa: E402
from addersr_plugin.nn import AdderResidualBlock, ShortcutAdderBlock  # noqa: E402

# variant -> (units/blocks make x contiguous, in-place adds, skip the multiply at res_scale 1, clip skips x1)
VARIANTS = {
    "all cuts": None,  # the package's code as it is
    "none (HEAD)": (False, False, False, False),
    "without NCHW units": (False, True, True, True),
    "without in-place adds": (True, False, True, True),
    "without res_scale skip": (True, True, False, True),
}


def unit_forward(self, x, contiguous, inplace):
    """ShortcutAdderBlock.forward with the cuts switchable (all False: HEAD's forward)."""
    if contiguous:
        x = x.contiguous()
    y = self.adder(x)
    if self.norm is not None:
        y = self.norm(y)
    if self.shortcut:
        y = y.add_(x) if inplace else x + y
    if self.act is not None:
        y = self.act(y)
    if self.power is not None:
        y = self.power(y)
    return y


def block_forward(self, x, contiguous, inplace, skip_mul):
    """AdderResidualBlock.forward with the cuts switchable (all False: HEAD's forward)."""
    if contiguous:
        x = x.contiguous()
    branch = self.unit2(self.unit1(x))
    if not (skip_mul and self.res_scale == 1):
        branch = self.res_scale * branch
    return branch.add_(x) if inplace else x + branch


def head_clip(self, params):
    """GradClipper.clip as committed: clip_grad_norm_ even when the limit is infinite."""
    limit = self.threshold()
    norm = float(torch.nn.utils.clip_grad_norm_(params, limit))
    if math.isfinite(norm):
        self.clipped += norm > limit
        if self.mode == "auto":
            self.count += 1
            m = min(0.98, 1 - 1 / self.count)
            self.mean = m * self.mean + (1 - m) * min(norm, limit)
    return norm


def undo(trainer: Trainer, flags) -> None:
    contiguous, inplace, skip_mul, clip = flags
    for m in trainer.model.net_g.modules():
        if isinstance(m, AdderResidualBlock):
            m.forward = types.MethodType(lambda s, x: block_forward(s, x, contiguous, inplace, skip_mul), m)
        elif isinstance(m, ShortcutAdderBlock):  # also AdderUpsampleStep: its forward calls super().forward
            if type(m) is ShortcutAdderBlock:
                m.forward = types.MethodType(lambda s, x: unit_forward(s, x, contiguous, inplace), m)
    if not clip:
        trainer.model.grad_clipper.clip = types.MethodType(head_clip, trainer.model.grad_clipper)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--num-feat", type=int, default=32)
    p.add_argument("--num-block", type=int, default=4)
    p.add_argument("--json", type=Path)
    p.add_argument("--json-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.json is not None and args.json.exists():
        p.error(f"--json {args.json}: the file exists; a results file is never overwritten")
    logging.getLogger("basicsr").setLevel(logging.WARNING)
    info = machine_info(torch.device("cpu"))
    batch = make_batch(16, 24, 2)
    trainers = []
    for layout in LAYOUTS:
        trainers.append(Trainer("EDSR", layout, model_options("EDSR", args.num_feat, args.num_block, 2), batch))
        for name, flags in VARIANTS.items():
            t = Trainer("AdderEDSR", layout, model_options("AdderEDSR", args.num_feat, args.num_block, 2), batch)
            if flags is not None:
                undo(t, flags)
            t.arch = f"AdderEDSR[{name}]"
            trainers.append(t)
    timing = time_interleaved(trainers, args.rounds, args.iters, args.warmup)
    if hasattr(os, "getloadavg"):
        info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    ratios = {k: v["median_s"] / timing[f"EDSR/{k.split('/')[1]}"]["median_s"] for k, v in timing.items()}
    report = {"machine": info, "command": " ".join(["benchmarks/train_step_cuts.py", *(sys.argv[1:] if argv is None
                                                                                      else argv)]),
              "config": {"num_feat": args.num_feat, "num_block": args.num_block, "scale": 2, "batch": 16,
                         "lr_size": 24, "rounds": args.rounds, "iters": args.iters, "warmup": args.warmup},
              "variants": {k: list(v) if v else "package code" for k, v in VARIANTS.items()},
              "variant_flags": ["NCHW units", "in-place adds", "res_scale skip", "clip without x1"],
              "timing": timing, "ratios_to_edsr": ratios}
    print(f"# training-step cuts, {info['date']}, {info['cpu']}, {info['torch_threads']} threads, "
          f"load {info['load_average_1min_at_start']} -> {info['load_average_1min_at_end']}\n")
    print("| variant | " + " | ".join(f"{lay} ms/iter | {lay} / EDSR" for lay in LAYOUTS) + " |")
    print("|---|" + "---:|---:|" * len(LAYOUTS))
    for name in ["EDSR", *(f"AdderEDSR[{v}]" for v in VARIANTS)]:
        cells = [f"{timing[f'{name}/{lay}']['median_s'] * 1e3:.1f} | {ratios[f'{name}/{lay}']:.2f}×" for lay in LAYOUTS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    path = args.json
    if path is None:
        path = new_json_path(args.json_dir or ROOT / "docs" / "cpu", "train_step_cuts", info["date"])
    return write_new_json(report, path, "train_step_cuts")  # whole or nothing, never overwriting


if __name__ == "__main__":
    sys.exit(main())
