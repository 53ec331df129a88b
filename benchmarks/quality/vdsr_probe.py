"""Why the depth study's CNN VDSR stays at bicubic: each ReLU's share of active units and mean
activation, layer by layer, in the archived VDSR runs' final models and in a freshly initialised
one, on the centre crop of each validation photo.

    python benchmarks/quality/vdsr_probe.py     # writes docs/quality_depth/vdsr_probe.json

A layer with no active unit passes nothing on: the network's output is then its bicubic
interpolation plus the last layer's bias, whatever the input.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import depth_study as study  # noqa: E402
import runner  # noqa: E402
from depth_report import pairs_of  # noqa: E402

RUNS = ("depth_x2_vdsr_16x20_s10", "depth_x2_vdsr_lr5e4_16x20_s10", "depth_x2_vdsr_zl_16x20_s10")
OUT = os.path.join(runner.ROOT, "docs", "quality_depth", "vdsr_probe.json")
CROP = 64  # LR pixels


def relu_stats(net, lq_batch) -> list[dict]:
    """Per ReLU of ``net.body``: share of outputs > 0 and mean output, over ``lq_batch``."""
    from addersr_plugin.nn import bicubic_upsample

    stats = []
    h = bicubic_upsample(lq_batch, net.upscale)
    with torch.inference_mode():
        for m in net.body:
            h = m(h)
            if isinstance(m, torch.nn.ReLU):
                stats.append({"active": round(float((h > 0).float().mean()), 4), "mean": float(h.mean())})
    return stats


def crops(scale: int) -> torch.Tensor:
    out = []
    for _gt, lq in pairs_of("val", scale).values():
        h, w = lq.shape[:2]
        y, x = (h - CROP) // 2, (w - CROP) // 2
        out.append(torch.from_numpy(lq[y:y + CROP, x:x + CROP, ::-1].copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def main() -> int:
    from addersr_plugin.archs import VDSR
    from addersr_plugin.loading import load_generator

    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "crop_lr_pixels": CROP, "models": {}}
    batch = crops(2)
    torch.manual_seed(10)
    result["models"]["fresh (He init, seed 10)"] = relu_stats(VDSR(num_feat=16, num_layer=20, upscale=2), batch)
    for name in RUNS:
        run = study.run_of(name)
        runner.restore(run)
        if not run.done():
            print(f"{name}: not finished, skipped")
            continue
        net, _, _ = load_generator(run.option_file, run.model)
        result["models"][name] = relu_stats(net, batch)
    for name, layers in result["models"].items():
        dead = [i for i, s in enumerate(layers) if s["active"] == 0]
        print(f"{name}: active share per ReLU {[s['active'] for s in layers]}; dead ReLUs {dead or 'none'}")
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {os.path.relpath(OUT, runner.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
