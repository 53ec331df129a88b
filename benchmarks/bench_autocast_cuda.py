#!/usr/bin/env python
"""The adder op under CUDA autocast (fp16/bf16, packed fp16 kernels) against fp32 and cuDNN.

    python benchmarks/bench_autocast_cuda.py [--repeat N] [--json PATH]

One layer, the EDSR body layer (N=16, 64→64, 48×48, 3×3, pad 1), forward (no grad) and
forward+backward, timed in this process with CUDA events, the calls taking turns after a warm-up
(medians of --repeat samples of --inner calls each):

    adder_fp32      addersr::adder_conv2d in float32
    adder_amp_fp16  the same call under torch.autocast(float16): addersr::adder_conv2d_amp
    adder_amp_bf16  under torch.autocast(bfloat16)
    conv_fp16       F.conv2d under torch.autocast(float16) (cuDNN, tensor cores)
    conv_fp32       F.conv2d in float32, TF32 off

As in a network, the activation arrives in the autocast dtype and the weight is a float32
parameter. The report gives each time, the ratios the issue asks for (fp32 adder / amp adder:
the half path's speed-up, target ≥ 1.6× forward; amp adder / cuDNN fp16) and, as a sanity check,
the largest difference of the amp outputs to the fp32 adder's relative to the output's spread
(docs/adder_op.md, "Mixed precision"). Run on a lent GPU by tests/gpu/run_gpu_checks.sh.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import warnings
from pathlib import Path
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from addersr_plugin.ops import adder_conv2d, extension_status

SHAPE = dict(n=16, cin=64, cout=64, hw=48, k=3, padding=1)
IMPLS = ("adder_fp32", "adder_amp_fp16", "adder_amp_bf16", "conv_fp16", "conv_fp32")
MODES = ("fwd", "fwdbwd")
# (numerator, denominator, what the ratio says)
RATIOS = [
    ("adder_fp32", "adder_amp_fp16", "fp16 autocast speed-up over the fp32 adder"),
    ("adder_fp32", "adder_amp_bf16", "bf16 autocast speed-up over the fp32 adder"),
    ("adder_amp_fp16", "conv_fp16", "fp16 adder / cuDNN fp16 conv"),
    ("adder_amp_bf16", "conv_fp16", "bf16 adder / cuDNN fp16 conv"),
    ("adder_fp32", "conv_fp32", "fp32 adder / cuDNN fp32 conv (TF32 off)"),
]


def _amp(dtype):
    return torch.autocast("cuda", dtype=dtype) if dtype is not None else torch.autocast("cuda", enabled=False)


def make_calls(device: torch.device) -> Dict[str, Dict[str, Callable[[], torch.Tensor]]]:
    """calls[impl][mode]: a no-argument callable running one forward or forward+backward."""
    g = torch.Generator().manual_seed(0)
    s = SHAPE
    x32 = torch.randn(s["n"], s["cin"], s["hw"], s["hw"], generator=g).relu().to(device)  # a BN+ReLU output
    w = torch.randn(s["cout"], s["cin"], s["k"], s["k"], generator=g).mul(0.5).to(device).requires_grad_()
    gy = torch.randn(s["n"], s["cout"], s["hw"], s["hw"], generator=g).to(device)
    plans = {
        "adder_fp32": (adder_conv2d, None), "adder_amp_fp16": (adder_conv2d, torch.float16),
        "adder_amp_bf16": (adder_conv2d, torch.bfloat16), "conv_fp16": (F.conv2d, torch.float16),
        "conv_fp32": (F.conv2d, None),
    }
    calls: Dict[str, Dict[str, Callable[[], torch.Tensor]]] = {}
    for impl, (fn, dtype) in plans.items():
        x = x32.to(dtype or torch.float32).requires_grad_()  # the activation in the autocast dtype

        def fwd(fn=fn, dtype=dtype, x=x):
            with torch.no_grad(), _amp(dtype):
                return fn(x, w, None, 1, s["padding"])

        def fwdbwd(fn=fn, dtype=dtype, x=x):
            x.grad = w.grad = None
            with _amp(dtype):
                y = fn(x, w, None, 1, s["padding"])
            y.backward(gy.to(y.dtype))
            return y

        calls[impl] = {"fwd": fwd, "fwdbwd": fwdbwd}
    return calls


def time_calls(calls: Dict[str, Callable[[], object]], repeat: int, inner: int, warmup: int) -> Dict[str, dict]:
    """Median seconds per call of each, timed with CUDA events over `inner` calls, taking turns."""
    samples: Dict[str, List[float]] = {name: [] for name in calls}
    for it in range(warmup + repeat):
        for name, fn in calls.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            torch.cuda.synchronize()
            if it >= warmup:
                samples[name].append(start.elapsed_time(end) / 1e3 / inner)
    return {name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "samples": len(v)}
            for name, v in samples.items()}


def accuracy(calls) -> Dict[str, float]:
    """max |Y_amp − Y_fp32| / std(Y_fp32): the amp forward's deviation relative to the spread BN keeps."""
    ref = calls["adder_fp32"]["fwd"]().double()
    spread = ref.std().item()
    return {impl: ((calls[impl]["fwd"]().double() - ref).abs().max().item() / spread)
            for impl in ("adder_amp_fp16", "adder_amp_bf16")}


def ratios(times: Dict[str, Dict[str, dict]]) -> List[dict]:
    """The RATIOS of median times, per mode."""
    out = []
    for num, den, what in RATIOS:
        for mode in MODES:
            a, b = times[mode][num]["median_s"], times[mode][den]["median_s"]
            out.append({"mode": mode, "ratio": a / b, "numerator": num, "denominator": den, "what": what})
    return out


def report_lines(report: dict) -> List[str]:
    m = report["machine"]
    lines = [f"{m['gpu']} | torch {m['torch']} | CUDA {m['cuda']} | cuDNN {m['cudnn']} | {m['date']}",
             f"EDSR body layer {SHAPE}; medians of {report['settings']['repeat']} samples × "
             f"{report['settings']['inner']} calls", "",
             "| impl | fwd ms | fwd+bwd ms |", "|---|---:|---:|"]
    for impl in IMPLS:
        lines.append(f"| {impl} | {report['time']['fwd'][impl]['median_s'] * 1e3:.3f} "
                     f"| {report['time']['fwdbwd'][impl]['median_s'] * 1e3:.3f} |")
    lines += ["", "| ratio | mode | value |", "|---|---|---:|"]
    lines += [f"| {r['what']} | {r['mode']} | {r['ratio']:.2f}× |" for r in report["ratios"]]
    fwd = next(r["ratio"] for r in report["ratios"] if r["numerator"] == "adder_fp32"
               and r["denominator"] == "adder_amp_fp16" and r["mode"] == "fwd")
    lines += ["", f"fp16 forward speed-up {fwd:.2f}× (issue 17 target ≥ 1.6×): {'met' if fwd >= 1.6 else 'MISSED'}"]
    lines += [f"max |Y_{k} − Y_fp32| / std(Y_fp32) = {v:.3g}" for k, v in report["accuracy"].items()]
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=15, help="timed samples per call (default 15)")
    p.add_argument("--inner", type=int, default=10, help="calls per sample (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON (a new file)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        p.error("needs a CUDA device (this benchmark times the CUDA kernels)")
    if args.json is not None and args.json.exists():
        p.error(f"--json {args.json}: the file exists; give a new name (one file per run)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device("cuda")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    calls = make_calls(device)
    times = {mode: time_calls({impl: calls[impl][mode] for impl in IMPLS}, args.repeat, args.inner, args.warmup)
             for mode in MODES}
    report = {
        "machine": {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "gpu": torch.cuda.get_device_name(device), "torch": torch.__version__,
                    "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                    "extension": extension_status()},
        "settings": {"shape": SHAPE, "repeat": args.repeat, "inner": args.inner, "warmup": args.warmup,
                     "tf32": False},
        "time": times,
        "ratios": ratios(times),
        "accuracy": accuracy(calls),
    }
    print("\n".join(report_lines(report)))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
