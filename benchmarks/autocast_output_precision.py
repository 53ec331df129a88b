#!/usr/bin/env python
"""Why the adder op's output stays float32 under autocast: the error of half-precision adder outputs (CPU).

    python benchmarks/autocast_output_precision.py [--seed 0] [--json-dir DIR]

AdderEDSR 32 features × 4 blocks ×2 (the default, and the paper's unit order: ``second_shortcut``,
no image skip, no DC-free head) and AdderVDSR 32 features × 6 layers, random weights, a
non-zero ``conv_last``, BatchNorm statistics of 3 batches of 4 random 24² images, in train mode.
Under CPU autocast (bfloat16, float16) every adder layer is run as:

* ``float32_operands``: autocast off for the op: float32 operands, float32 output;
* ``as_shipped``: the op under autocast as it is: operands rounded to the autocast dtype, sum and
  output in float32;
* ``half_output``: the same with the output rounded to the autocast dtype, as a half-precision
  kernel output would be.

Recorded per network: the largest |adder output| in float32, the largest residual of the float32
output over bicubic, and for each dtype and mode the largest |out − out_float32| (NaN if the output
has a non-finite value). Writes one dated JSON (``results_io``; default docs/adder_op/).
Results: docs/adder_op.md, "Why the output stays float32".
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import addersr_plugin.nn.adder_conv as adder_conv_module
    from addersr_plugin.archs.adder_edsr_arch import AdderEDSR
    from addersr_plugin.archs.adder_vdsr_arch import AdderVDSR
    from addersr_plugin.nn import AdderConv2d
from bench_adder_conv import machine_info  # noqa: E402
from results_io import new_json_path, write_new_json  # noqa: E402

MODES = ("float32_operands", "as_shipped", "half_output")
NETS = {
    "AdderEDSR 32x4 x2": lambda: AdderEDSR(3, 3, num_feat=32, num_block=4, upscale=2),
    "AdderEDSR 32x4 x2 paper": lambda: AdderEDSR(3, 3, num_feat=32, num_block=4, upscale=2, second_shortcut=True,
                                                 image_skip=False, dc_free_head=False),
    "AdderVDSR 32x6 x2": lambda: AdderVDSR(3, 3, num_feat=32, num_layer=6, upscale=2),
}


def measure(make, seed: int, size: int = 24) -> dict:
    original = adder_conv_module.adder_conv2d
    mode = {"m": "as_shipped"}

    def patched(x, w, b, stride, padding, dilation, groups, **kw):
        if not torch.is_autocast_enabled("cpu") or mode["m"] == "as_shipped":
            return original(x, w, b, stride, padding, dilation, groups, **kw)
        if mode["m"] == "float32_operands":
            with torch.autocast("cpu", enabled=False):
                return original(x.float(), w.float(), None if b is None else b.float(),
                                stride, padding, dilation, groups, **kw)
        y = original(x, w, b, stride, padding, dilation, groups, **kw)
        return y.to(torch.get_autocast_dtype("cpu"))  # half_output

    torch.manual_seed(seed)
    net = make().train()
    torch.nn.init.normal_(net.conv_last.weight, 0, 0.05)
    xs = [torch.rand(4, 3, size, size) for _ in range(3)]
    peak = {"v": 0.0}
    hooks = [m.register_forward_hook(lambda _m, _i, out: peak.__setitem__("v", max(peak["v"], out.abs().max().item())))
             for m in net.modules() if isinstance(m, AdderConv2d)]
    adder_conv_module.adder_conv2d = patched
    try:
        with torch.no_grad():
            for x in xs:
                net(x)  # BatchNorm statistics
            peak["v"] = 0.0
            ref = net(xs[0])
            for h in hooks:
                h.remove()
            up = F.interpolate(xs[0], scale_factor=2, mode="bicubic", align_corners=False)
            result = {"max_abs_adder_output_float32": peak["v"],
                      "max_residual_over_bicubic": (ref - up).abs().max().item(), "max_error": {}}
            for amp in (torch.bfloat16, torch.float16):
                row = {}
                for m in MODES:
                    mode["m"] = m
                    with torch.autocast("cpu", dtype=amp):
                        out = net(xs[0]).float()
                    row[m] = (out - ref).abs().max().item() if torch.isfinite(out).all() else math.nan
                result["max_error"][str(amp).replace("torch.", "")] = row
    finally:
        adder_conv_module.adder_conv2d = original
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-dir", type=Path, default=ROOT / "docs" / "adder_op")
    args = p.parse_args(argv)
    info = machine_info(torch.device("cpu"))
    results = {name: measure(make, args.seed) for name, make in NETS.items()}
    for name, r in results.items():
        print(f"{name}: max |adder output| {r['max_abs_adder_output_float32']:.4g}, "
              f"max residual {r['max_residual_over_bicubic']:.3g}")
        for amp, row in r["max_error"].items():
            print(f"  {amp:9s} " + " | ".join(f"{m} {v:.4g}" for m, v in row.items()))
    report = {"machine": info, "seed": args.seed,
              "command": "python benchmarks/autocast_output_precision.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "setup": "train mode, conv_last ~ N(0, 0.05), BatchNorm statistics of 3 batches, 4 random 24x24 images; "
                       "max |out - out_float32| per autocast dtype and adder-layer mode",
              "results": results}
    return write_new_json(report, new_json_path(args.json_dir, "autocast_output_precision", info["date"]),
                          "autocast_output_precision")


if __name__ == "__main__":
    sys.exit(main())
