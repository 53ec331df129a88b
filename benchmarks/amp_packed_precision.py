#!/usr/bin/env python
"""How much the packed half-precision summation of ``adder_conv2d_amp`` costs in accuracy (CPU).

    python benchmarks/amp_packed_precision.py [--runs 4,8,16] [--seeds 0,1]

A PyTorch model of the CUDA kernel's arithmetic (csrc/cuda/adder_conv2d_kernels.cuh, "forward,
packed fp16"): |x − w| rounded to the arithmetic dtype, each of the two lanes of a pair of taps
summing `run` taps in that dtype, the lanes flushed into a float32 accumulator. PyTorch's CPU
float16/bfloat16 tensor ops round each result to nearest even from float32, which for + and −
equals the GPU's correctly rounded packed ops (float32 has at least 2p + 2 bits). The order of the
flushes into fp32 differs from the kernel's tiling but not its rounding.

1. One layer (64→64, 3×3, BN+ReLU-like input): the error of Y from the arithmetic against that of
   rounding only the inputs and that of rounding the output, for fp16 and bf16 arithmetic.
2. AdderVDSR 32 features × 6 layers in train mode (docs/adder_op.md's setup: random weights, a
   non-zero conv_last, BatchNorm statistics of 3 batches, 4 random 24² images) under CPU autocast
   with the adder layers replaced by the model: the largest difference to the float32 network.
   "f32" is today's CPU rule (adder layers in float32); "fp16 arith run R" the CUDA kernel's
   design (operands rounded to the autocast dtype, arithmetic in fp16); "bf16 arith" the
   alternative of bf16 arithmetic for bf16 autocast. Results: docs/adder_op.md, "Mixed precision".
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import addersr_plugin.nn.adder_conv as adder_conv_module
    from addersr_plugin.archs.adder_vdsr_arch import AdderVDSR


def packed_forward(x, w, arith: torch.dtype, run: int, padding: int):
    """-Σ|x − w| (stride 1, groups 1) summed as the packed kernel sums it; x, w hold their values."""
    n, _, h, wd = x.shape
    m = w.shape[0]
    cols = F.unfold(x.float(), w.shape[2:], padding=padding).to(arith)  # exact: values of `arith`
    wk = w.float().reshape(m, -1).to(arith)
    k = cols.shape[1]
    step = 2 * run
    kp = -(-k // step) * step
    cols, wk = F.pad(cols, (0, 0, 0, kp - k)), F.pad(wk, (0, kp - k))
    out = []
    for s in range(n):
        d = (cols[s][None] - wk[:, :, None]).abs().view(m, kp // step, run, 2, -1)  # rounded |x − w|
        lanes = d[:, :, 0]
        for r in range(1, run):
            lanes = lanes + d[:, :, r]  # a run, each add rounded
        flush = lanes[:, :, 0].float() + lanes[:, :, 1].float()
        acc = torch.zeros(m, flush.shape[-1])
        for j in range(flush.shape[1]):
            acc = acc + flush[:, j]
        out.append(-acc)
    return torch.stack(out).view(n, m, h, wd)


def exact(x, w, padding: int):
    cols = F.unfold(x.double(), w.shape[2:], padding=padding)
    return -(cols[:, None] - w.double().reshape(w.shape[0], -1)[None, :, :, None]).abs().sum(2).view(
        x.shape[0], w.shape[0], *x.shape[2:])


def layer_study(runs):
    torch.manual_seed(0)
    x = torch.randn(2, 64, 16, 16).relu()
    w = torch.randn(64, 64, 3, 3) * 0.5
    y_true = exact(x, w, 1)
    print("1. one layer 64→64 3×3, 2×16², |Y| mean %.0f; rms errors of Y:" % y_true.abs().mean())
    for h in (torch.float16, torch.bfloat16):
        y_in = exact(x.to(h).float(), w.to(h).float(), 1)
        rms = lambda e: e.pow(2).mean().sqrt().item()  # noqa: E731
        row = [f"inputs rounded {rms(y_in - y_true):.3g}", f"output rounded {rms(y_in.to(h).double() - y_in):.3g}"]
        for r in runs:
            row.append(f"arith run {r} {rms(packed_forward(x.to(h), w.to(h), h, r, 1).double() - y_in):.3g}")
        print(f"   {str(h):15s} " + " | ".join(row))


def network_study(runs, seeds):
    original = adder_conv_module.adder_conv2d
    mode = {"m": None}

    def patched(x, w, b, stride, padding, dilation, groups, **kw):
        if not torch.is_autocast_enabled("cpu") or mode["m"] is None:
            return original(x, w, b, stride, padding, dilation, groups, **kw)
        amp = torch.get_autocast_dtype("cpu")
        arith, run = mode["m"]
        assert tuple(stride) == (1, 1) and groups == 1 and tuple(dilation) == (1, 1)
        with torch.autocast("cpu", enabled=False):
            y = packed_forward(x.to(amp), w.to(amp), arith, run, padding[0])
            return y if b is None else y + b.float().view(1, -1, 1, 1)

    variants = [("f32", None)] + [(f"fp16 arith run {r}", (torch.float16, r)) for r in runs]
    adder_conv_module.adder_conv2d = patched
    try:
        print("2. AdderVDSR 32×6 train mode: max |out − out_float32| under CPU autocast")
        for seed in seeds:
            for amp in (torch.bfloat16, torch.float16):
                torch.manual_seed(seed)
                net = AdderVDSR(3, 3, num_feat=32, num_layer=6, upscale=2).train()
                torch.nn.init.normal_(net.conv_last.weight, 0, 0.05)
                xs = [torch.rand(4, 3, 24, 24) for _ in range(3)]
                row = []
                with torch.no_grad():
                    for x in xs:
                        net(x)  # BatchNorm statistics
                    ref = net(xs[0])
                    residual = (ref - F.interpolate(xs[0], scale_factor=2, mode="bicubic")).abs().max().item()
                    extra = [("bf16 arith run 8", (torch.bfloat16, 8))] if amp == torch.bfloat16 else []
                    for name, m in variants + extra:
                        mode["m"] = m
                        with torch.autocast("cpu", dtype=amp):
                            row.append(f"{name} {(net(xs[0]).float() - ref).abs().max().item():.4f}")
                print(f"   seed {seed} {str(amp):15s} residual {residual:.2f} | " + " | ".join(row))
    finally:
        adder_conv_module.adder_conv2d = original


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="4,8,16", help="run lengths to model (default 4,8,16)")
    p.add_argument("--seeds", default="0,1", help="network seeds (default 0,1)")
    args = p.parse_args(argv)
    runs = [int(r) for r in args.runs.split(",")]
    layer_study(runs)
    network_study(runs, [int(s) for s in args.seeds.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
