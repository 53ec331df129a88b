"""Regenerate docs/energy.md: every row is one run of ``addersr energy`` (``--json``) on shipped option files.

    python benchmarks/make_energy_doc.py [--out docs/energy.md]

Rows: VDSR vs AdderVDSR and EDSR vs AdderEDSR (baseline 64/16 and paper scale 256/32) at x2, x3 and
x4, with and without the power activation, and with a conv vs an adder upsampler (EDSR). Each row
is counted with BN folded (inference) and again with BN unfolded. Takes about two minutes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from addersr_plugin.cli.energy import main as energy_main  # noqa: E402
from addersr_plugin.energy.report import CATEGORY_LABELS, format_count, format_energy  # noqa: E402
from addersr_plugin.energy.table import table_markdown  # noqa: E402

# 1280 is not divisible by 3: x3 rows use the nearest larger width.
HR_SIZES = {2: "1280x720", 3: "1281x720", 4: "1280x720"}


def rows():
    """(family, scale, variant, adder option file, cnn option file, --set, --vs-set) per table row."""
    for scale in (2, 3, 4):
        # The published VDSR works on the Y channel; the shipped option files are RGB.
        y = ["num_in_ch=1", "num_out_ch=1"]
        for power in (True, False):
            yield ("VDSR (Y channel)", scale, "power act" if power else "no power act",
                   f"options/train/AdderVDSR/train_AdderVDSR_x{scale}.yml", f"options/train/VDSR/train_VDSR_x{scale}.yml",
                   y + [f"power_act={str(power).lower()}"], y)
    for size, family in (("", "EDSR-baseline (64 feats, 16 blocks)"), ("_L", "EDSR paper scale (256 feats, 32 blocks)")):
        for scale in (2, 3, 4):
            for upsampler in ("conv", "adder"):
                for power in (True, False):
                    yield (family, scale, f"{upsampler} upsampler, {'power act' if power else 'no power act'}",
                           f"options/train/AdderEDSR/train_AdderEDSR{size}_x{scale}.yml",
                           f"options/train/EDSR/train_EDSR{size}_x{scale}.yml",
                           [f"adder_upsampler={str(upsampler == 'adder').lower()}", f"power_act={str(power).lower()}"],
                           [])


def command(adder, cnn, sets, vs_sets, hr, bn):
    argv = ["-opt", adder, "--vs", cnn, "--hr-size", hr, "--bn", bn]
    for s in sets:
        argv += ["--set", s]
    for s in vs_sets:
        argv += ["--vs-set", s]
    return argv


def run(argv):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "energy.json")
        with open(os.devnull, "w") as devnull:
            stdout, sys.stdout = sys.stdout, devnull
            try:
                status = energy_main(argv + ["--json", out])
            finally:
                sys.stdout = stdout
        if status != 0:
            raise SystemExit(f"addersr energy {shlex.join(argv)} failed with status {status}")
        with open(out) as f:
            return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "energy.md"))
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # option paths in the commands are relative to the repository root

    table_lines = ["| model | × | HR | variant | CNN mul / add | adder mul / add | CNN energy | adder energy "
                   "| ratio, paper's rule | ratio, all counted | ratio, all, BN unfolded |",
                   "|---|---|---|---|---|---|---|---|---|---|---|"]
    commands = []
    left_out_example = None
    for family, scale, variant, adder, cnn, sets, vs_sets in rows():
        hr = HR_SIZES[scale]
        folded = run(command(adder, cnn, sets, vs_sets, hr, "folded"))
        unfolded = run(command(adder, cnn, sets, vs_sets, hr, "unfolded"))
        a, c = folded["networks"]
        comp = folded["comparison"]
        table_lines.append(
            f"| {family} | {scale} | {hr} | {variant} "
            f"| {format_count(c['total']['mul'])} / {format_count(c['total']['add'])} "
            f"| {format_count(a['total']['mul'])} / {format_count(a['total']['add'])} "
            f"| {format_energy(c['total']['energy_pj'])} | {format_energy(a['total']['energy_pj'])} "
            f"| {comp['ratio_paper_rule']:.2f}× | {comp['ratio_all']:.2f}× "
            f"| {unfolded['comparison']['ratio_all']:.2f}× |")
        commands.append(f"addersr energy {shlex.join(command(adder, cnn, sets, vs_sets, hr, 'folded'))}")
        if left_out_example is None:
            left_out_example = (family, scale, variant, a, c, comp)
        print(table_lines[-1], flush=True)

    family, scale, variant, a, c, comp = left_out_example
    left_lines = ["| item | adder network | CNN |", "|---|---|---|"]
    for cat, e in comp["left_out_by_paper_rule"].items():
        left_lines.append(f"| {CATEGORY_LABELS[cat]} | {format_energy(e['adder_pj'])} | {format_energy(e['cnn_pj'])} |")
    cat_lines = ["| category | MACs | mul | add | compare | exp/log | energy |", "|---|---|---|---|---|---|---|"]
    for cat, v in a["categories"].items():
        cat_lines.append(f"| {CATEGORY_LABELS[cat]} | {format_count(v['macs'])} | {format_count(v['mul'])} | {format_count(v['add'])} "
                         f"| {format_count(v['cmp'])} | {format_count(v['trans'])} | {format_energy(v['energy_pj'])} |")

    doc = f"""# Energy of AdderSR networks vs their CNNs

Generated by `python benchmarks/make_energy_doc.py` on {datetime.date.today().isoformat()}: every row is one run
of `addersr energy` (its `--json` output) on the option files shipped under `options/`, with the overrides shown
in the commands at the end. Do not edit by hand; rerun the script. One image, fp32, counted on the meta device
(no real compute). Energy at 45 nm; the ratios are CNN energy / adder-network energy.

## How it is counted

{folded['conventions']}

- **ratio, paper's rule**: only convolution and adder multiply-accumulates, as AdderNet/AdderSR/AdderDet count
  (the paper's rule derives 2.55× for VDSR ×2, 2.17×/2.53× for EDSR-baseline ×2 and 2.34×/2.55× for paper-scale EDSR
  ×2 with a conv/adder upsampler).
- **ratio, all counted**: also BN (folded for inference: free after a conv, a per-channel multiply + add per element
  after an adder layer), the power activation (2 transcendentals per element, an estimate), self-shortcut and
  residual adds, res_scale and mean-shift scalings, ReLU compares and bicubic upsampling.
- **ratio, all, BN unfolded**: the same with BN as the training-form expression (2 multiplies + 2 adds per element).
- VDSR rows use the Y channel (`num_in_ch=1`) as the published VDSR does (612.6 G multiply-adds at 720p); the
  shipped VDSR option files are RGB. ×3 rows use a 1281×720 output because 1280 is not divisible by 3.

## Energy per operation

{table_markdown()}

## VDSR / AdderVDSR and EDSR / AdderEDSR, one 720p output image

{chr(10).join(table_lines)}

## What the paper's rule leaves out ({family} ×{scale}, {variant})

{chr(10).join(left_lines)}

{a["arch"]} ×{scale} by category:

{chr(10).join(cat_lines)}

The power activation is the largest item the paper's rule leaves out: two transcendentals per element of every
adder unit. Its price rests on our estimate of an exp or a log (8 multiplies + 8 adds); on hardware with a
cheaper exp/log, the "all counted" ratios move towards the paper's-rule ones.

## Commands (BN folded; add `--bn unfolded` for the last column, `--per-layer` for a per-layer breakdown)

```
{chr(10).join(commands)}
```
"""
    with open(args.out + ".tmp", "w") as f:
        f.write(doc)
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
