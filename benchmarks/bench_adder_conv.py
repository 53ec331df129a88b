#!/usr/bin/env python
"""Time and memory of ``addersr::adder_conv2d`` as ratios to ``F.conv2d`` on the same layer.

    python benchmarks/bench_adder_conv.py [--device cpu|cuda] [--repeat N] [--cases edsr,vdsr,stem,paper]
                                          [--float-kernels avx512,avx2] [--json PATH | --json-dir DIR]
                                          [--markdown]

For every case the adder op and a convolution of the same shape are timed in this process,
interleaved (conv, adder, conv, adder, ...) after a warm-up, and the medians compared. The
pure-PyTorch reference is timed once per mode, after a one-sample probe has estimated that it
fits the time budget. Peak memory is the high-water mark above a warm baseline: on CPU the
process RSS of a freshly forked child per measurement, on CUDA ``torch.cuda.max_memory_allocated``.
On CPU the float kernels (AVX-512 where the CPU has it, AVX2) are timed side by side in the same
process (``ADDERSR_FLOAT_KERNEL`` set before each call), on NCHW and channels_last inputs.
Method and results: docs/benchmarks.md. Nothing here asserts a timing. The measurements
themselves (cases, timed calls, peak memory, forked runs) are in adder_conv_measure.py; this
file holds the command line, the run of both phases and the report.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # adder_conv_measure, also when loaded by path
from results_io import new_json_path, write_new_json  # noqa: E402
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the fallback warning is reported below, in the header
    from addersr_plugin.ops import extension_status
    from addersr_plugin.ops._extension import cpu_has_avx512
    from adder_conv_measure import (CASES, IMPLS, MODES, Problem, measure_in_fork, measure_once,
                                    float_kernel_accuracy, parse_cases, time_interleaved, with_float_kernel)
FLOAT_KERNELS = ("avx512", "avx2")

# The targets for the EDSR layer on the 2-core CPU.
TARGETS = {"fwd": 2.5, "fwdbwd": 3.0, "memory": 2.0}


# --------------------------------------------------------------------------- report

def machine_info(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    status = extension_status()
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device.type,
        # Other processes on the machine inflate and scatter timings; the reader should know.
        "load_average_1min_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "extension_loaded": status["extension_loaded"],
        "cpu_float_kernel_default": status["cpu_float_kernel"],
        "kernel": "compiled" if status["extension_loaded"] and device.type.upper() not in
        status["reference_backends"] else "pure-PyTorch reference (fallback)",
    }
    if status["load_error"]:
        info["extension_error"] = status["load_error"]
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def _ms(seconds: Optional[float]) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:,.1f}"


def _ratio(a: Optional[float], b: Optional[float]) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}×"


def _mib(x: Optional[float]) -> str:
    return "—" if x is None else f"{x:,.0f}"


def markdown(report: dict) -> str:
    info = report["machine"]
    cuda = info["device"] == "cuda"
    lines = [
        f"Measured {info['date']} on {info.get('gpu', info['cpu'])} "
        f"({info['cpu_cores']} cores, {info['torch_threads']} torch threads), torch {info['torch']}, "
        f"dtype {report['settings']['dtype']}, adder kernel: {info['kernel']}, "
        f"{report['settings']['repeat']} interleaved repeats (medians), 1-min load average "
        f"{info.get('load_average_1min_at_start')} at start, {info.get('load_average_1min_at_end')} at end.",
        "",
        "| case | shape | conv fwd ms | adder fwd ms | **fwd ratio** | conv fwd+bwd ms | adder fwd+bwd ms "
        "| **fwd+bwd ratio** | reference fwd | reference fwd+bwd |" + (" fwd ratio vs TF32 conv | fwd+bwd ratio vs TF32 conv |" if cuda else " fwd ratio vs channels_last conv | fwd+bwd ratio vs channels_last conv |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["cases"].items():
        t = r["time"]
        row = [r["title"], r["shape"]]
        for mode in MODES:
            conv, adder = t[f"conv_{mode}"]["median_s"], t[f"adder_{mode}"]["median_s"]
            row += [_ms(conv), _ms(adder), f"**{_ratio(adder, conv)}**"]
        for mode in MODES:
            ref = r["reference"].get(mode, {})
            row.append(_ratio(ref.get("seconds"), t[f"conv_{mode}"]["median_s"]) if "seconds" in ref
                       else f"skipped ({ref.get('skipped') or ref.get('error', 'not run')})")
        other = "conv_tf32" if cuda else "conv_cl"
        for mode in MODES:
            base = t.get(f"{other}_{mode}", {}).get("median_s")
            row.append(_ratio(t[f"adder_{mode}"]["median_s"], base))
        lines.append("| " + " | ".join(row) + " |")
    if any(r["memory"] for r in report["cases"].values()):
        lines += ["", f"Peak memory above the inputs (MiB; {report['settings']['memory_method']}):", "",
                  "| case | conv fwd | adder fwd | reference fwd | conv fwd+bwd | adder fwd+bwd | reference fwd+bwd "
                  "| adder/conv fwd | adder/conv fwd+bwd |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in report["cases"].items():
            m = r["memory"]
            row = [r["title"]]
            for mode in MODES:
                row += [_mib(m.get(f"{impl}_{mode}")) for impl in IMPLS]
            for mode in MODES:
                conv, adder = m.get(f"conv_{mode}"), m.get(f"adder_{mode}")
                row.append(_ratio(adder, conv))
            lines.append("| " + " | ".join(row) + " |")
    kernels = report["settings"].get("float_kernels") or []
    if kernels:
        lines += ["", kernel_table(report, kernels)]
    if report.get("float_kernel_accuracy"):
        lines += ["", accuracy_table(report["float_kernel_accuracy"], kernels)]
    return "\n".join(lines)


def accuracy_table(accuracy: dict, kernels: List[str]) -> str:
    """The forward's largest error against the float64 reference, per float kernel."""
    lines = ["Forward error against the float64 reference (EDSR layer shape, 2 images, 576 taps):", "",
             "| inputs | x | w | max \\|y\\| | median \\|y\\| | "
             + " | ".join(f"{k} max error (rel. to max \\|y\\|)" for k in kernels) + " |",
             "|---|---|---|---:|---:|" + "---:|" * len(kernels)]
    for name, r in accuracy.items():
        row = [name, r["x"], r["w"], f"{r['max_abs_y']:.0f}", f"{r['median_abs_y']:.0f}"]
        row += [f"{r[k]['max_abs_error']:.2g} ({r[k]['max_error_rel_to_max_abs_y']:.1e})" for k in kernels]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def kernel_table(report: dict, kernels: List[str]) -> str:
    """Each float CPU kernel as ratios to the NCHW and the channels_last conv, on NCHW and
    channels_last adder inputs (the op returns NCHW either way), with its peak memory."""
    lines = ["Float CPU kernels side by side (same process, interleaved; ratios of medians; "
             "`adder` NCHW input, `adder_cl` channels_last input):", "",
             "| case | float kernel | adder fwd ms | fwd × conv NCHW | fwd × conv channels_last "
             "| fwd+bwd × conv NCHW | fwd+bwd × conv channels_last | adder_cl fwd × conv channels_last "
             "| adder_cl fwd+bwd × conv channels_last | peak MiB fwd / fwd+bwd |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["cases"].values():
        t, m = r["time"], r["memory"]
        for k in kernels:
            med = {key: t.get(key, {}).get("median_s") for key in t}
            row = [r["title"], k, _ms(med.get(f"adder_{k}_fwd"))]
            for mode in MODES:
                row += [_ratio(med.get(f"adder_{k}_{mode}"), med.get(f"conv_{mode}")),
                        _ratio(med.get(f"adder_{k}_{mode}"), med.get(f"conv_cl_{mode}"))]
            row += [_ratio(med.get(f"adder_cl_{k}_{mode}"), med.get(f"conv_cl_{mode}")) for mode in MODES]
            row.append(" / ".join(_mib(m.get(f"adder_{k}_{mode}")) for mode in MODES))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def target_lines(report: dict) -> List[str]:
    r = report["cases"].get("edsr")
    if r is None or report["machine"]["device"] != "cpu":
        return []
    out = []
    for mode, label in (("fwd", "forward"), ("fwdbwd", "forward+backward")):
        if r["time"][f"adder_{mode}"]["median_s"] is None:
            out.append(f"EDSR {label}: not measured (the adder op ran the reference and was skipped)")
            continue
        ratio = r["time"][f"adder_{mode}"]["median_s"] / r["time"][f"conv_{mode}"]["median_s"]
        out.append(f"EDSR {label}: {ratio:.2f}× conv (target ≤ {TARGETS[mode]}×) "
                   f"{'met' if ratio <= TARGETS[mode] else 'MISSED'}")
    for mode in MODES:
        conv, adder = r["memory"].get(f"conv_{mode}"), r["memory"].get(f"adder_{mode}")
        if conv and adder is not None:
            ratio = adder / conv
            out.append(f"EDSR peak memory {mode}: {ratio:.2f}× conv (target ≤ {TARGETS['memory']}×) "
                       f"{'met' if ratio <= TARGETS['memory'] else 'MISSED'}")
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--repeat", type=int, default=7, help="timed runs of each call, interleaved (default 7)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs of each call first (default 2)")
    p.add_argument("--cases", default=",".join(CASES),
                   help=f"comma-separated subset of {','.join(CASES)} (default: all)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="half types only on CUDA (default float32)")
    p.add_argument("--reference-budget", type=float, default=30.0, metavar="SECONDS",
                   help="skip a reference run estimated to take longer (default 30)")
    p.add_argument("--no-reference", action="store_true", help="do not run the reference")
    p.add_argument("--no-memory", action="store_true", help="do not measure peak memory")
    p.add_argument("--float-kernels", default=None, metavar="LIST",
                   help="CPU: float kernels to time side by side, from avx512,avx2 (default: those this CPU "
                        "has; the first is the one the main table reports)")
    p.add_argument("--json", type=Path, metavar="PATH",
                   help="also write all results as JSON to PATH, which must not exist yet (one file per run)")
    p.add_argument("--json-dir", type=Path, metavar="DIR",
                   help="write the JSON to a new file DIR/bench_adder_conv_<date>_<time>.json (never overwrites)")
    p.add_argument("--markdown", action="store_true", help="print a table for docs/benchmarks.md")
    args = p.parse_args(argv)
    names = parse_cases(p, args.cases, CASES)
    args.cases = names
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be non-negative")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    if args.device == "cpu" and args.dtype != "float32":
        p.error(f"--dtype {args.dtype}: the CPU kernels support float32 and float64 only")
    if args.json is not None and args.json.exists():
        p.error(f"--json {args.json}: the file exists; a results file is never overwritten (one file per "
                "run): give a new name, e.g. with the date and time")
    if args.json and args.json_dir:
        p.error("--json and --json-dir: give one")
    args.float_kernels = _float_kernels(p, args)
    return args


def _float_kernels(p: argparse.ArgumentParser, args: argparse.Namespace) -> List[str]:
    """The float CPU kernels to time: none on CUDA, else the given ones or all this CPU has."""
    if args.device != "cpu":
        if args.float_kernels:
            p.error("--float-kernels: CPU only")
        return []
    if args.float_kernels is None:
        return list(FLOAT_KERNELS) if cpu_has_avx512() else ["avx2"]
    names = [k.strip() for k in args.float_kernels.split(",") if k.strip()]
    unknown = [k for k in names if k not in FLOAT_KERNELS]
    if unknown or not names:
        p.error(f"--float-kernels: unknown kernel(s) {unknown or '(none given)'}; choose from "
                f"{', '.join(FLOAT_KERNELS)}")
    if "avx512" in names and not cpu_has_avx512():
        p.error("--float-kernels avx512: this CPU lacks AVX-512 F/DQ/VL/BW")
    return names



def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    info = machine_info(device)
    adder_is_slow = info["kernel"] != "compiled"
    print(f"# adder_conv2d benchmark, {info['date']}")
    for key, value in info.items():
        print(f"  {key}: {value}")
    if adder_is_slow:
        print("  NOTE: the compiled kernels are not in use; 'adder' below is the slow reference path.")

    cases = {name: CASES[name] for name in args.cases}
    kernels = [] if adder_is_slow else args.float_kernels
    forked = device.type == "cpu"
    measured: Dict[str, Dict[str, dict]] = {name: {} for name in cases}
    # (key, impl, mode, float kernel): the adder once per float kernel on CPU
    singles = [(f"{impl}_{k}" if impl == "adder" and k else impl, impl, mode, k) for impl in IMPLS
               for k in ((kernels or [None]) if impl == "adder" else [None]) for mode in MODES
               if not (impl == "reference" and args.no_reference)]
    if not args.no_memory or not args.no_reference:
        # Phase 1: single runs (peak memory of everything, time of the reference). On CPU each in a
        # freshly forked process; this must come before phase 2 computes anything here.
        print("\n## single runs" + (" (peak memory; reference time)" if not args.no_memory else ""))
        for name, case in cases.items():
            for key, impl, mode, kernel in singles:
                slow = impl == "reference" or (impl == "adder" and adder_is_slow)
                if args.no_memory and not slow:
                    continue
                run_args = (case, impl, mode, device, dtype, slow, args.reference_budget, not args.no_memory, kernel)
                result = (measure_in_fork(3 * args.reference_budget + 120, *run_args) if forked
                          else measure_once(*run_args))
                measured[name][f"{key}_{mode}"] = result
                if kernels and key == f"adder_{kernels[0]}":  # the main table's adder column
                    measured[name][f"adder_{mode}"] = result
                detail = result.get("skipped") or result.get("error") or (
                    f"{_ms(result['seconds'])} ms" + (f", peak +{result['peak_mib']:.0f} MiB"
                                                      if result.get("peak_mib") is not None else ""))
                print(f"  {name:6s} {key:12s} {mode:7s} {detail}", flush=True)

    # Phase 2: conv vs adder, interleaved, in this process.
    print(f"\n## timing: {args.repeat} interleaved repeats after {args.warmup} warm-up runs (medians)")
    report = {"machine": info, "settings": {
        "repeat": args.repeat, "warmup": args.warmup, "dtype": args.dtype,
        "reference_budget_s": args.reference_budget, "float_kernels": kernels,
        "memory_method": None if args.no_memory else (
            "RSS high-water mark of a forked process per measurement" if forked
            else "torch.cuda.max_memory_allocated above the allocated baseline")}, "cases": {}}
    for name, case in cases.items():
        problem = Problem(case, device, dtype)
        calls, tf32 = {}, None
        for mode in MODES:
            calls[f"conv_{mode}"] = problem.call("conv", mode)
            if device.type == "cpu":
                calls[f"conv_cl_{mode}"] = problem.call("conv_cl", mode)
            if device.type == "cuda":
                calls[f"conv_tf32_{mode}"] = problem.call("conv", mode)
            if kernels:  # CPU: every float kernel, NCHW and channels_last input
                for k in kernels:
                    calls[f"adder_{k}_{mode}"] = with_float_kernel(k, problem.call("adder", mode))
                    calls[f"adder_cl_{k}_{mode}"] = with_float_kernel(k, problem.call("adder_cl", mode))
            elif not adder_is_slow:
                calls[f"adder_{mode}"] = problem.call("adder", mode)
        if device.type == "cuda":
            tf32 = {f"conv_{m}": False for m in MODES} | {f"conv_tf32_{m}": True for m in MODES}
        saved_tf32 = torch.backends.cudnn.allow_tf32
        try:
            times = time_interleaved(problem, calls, args.repeat, args.warmup, tf32)
        finally:
            torch.backends.cudnn.allow_tf32 = saved_tf32
            os.environ.pop("ADDERSR_FLOAT_KERNEL", None)
        for mode in MODES:  # the main table's adder column: the first float kernel
            if kernels:
                times[f"adder_{mode}"] = times[f"adder_{kernels[0]}_{mode}"]
        if adder_is_slow:  # the slow path was timed once in phase 1, like the reference
            for mode in MODES:
                single = measured[name].get(f"adder_{mode}", {})
                times[f"adder_{mode}"] = {"median_s": single.get("seconds"), "samples": 1 if "seconds" in single else 0}
        del problem
        reference = {mode: measured[name].get(f"reference_{mode}", {"skipped": "--no-reference"}) for mode in MODES}
        memory = {key: r.get("peak_mib") for key, r in measured[name].items() if r.get("peak_mib") is not None}
        report["cases"][name] = {"title": case.title, "shape": case.shape(), "macs": case.macs(),
                                 "time": times, "reference": reference, "memory": memory}
        line = [f"  {name:6s}"]
        for mode in MODES:
            conv, adder = times[f"conv_{mode}"]["median_s"], times[f"adder_{mode}"]["median_s"]
            line.append(f"{mode} conv {_ms(conv)} ms, adder {_ms(adder)} ms = {_ratio(adder, conv)}")
            if device.type == "cuda":
                line.append(f"(vs TF32 conv {_ratio(adder, times[f'conv_tf32_{mode}']['median_s'])})")
            if f"conv_cl_{mode}" in times:
                line.append(f"(vs channels_last conv {_ratio(adder, times[f'conv_cl_{mode}']['median_s'])})")
            for k in kernels[1:]:
                other = times[f"adder_{k}_{mode}"]["median_s"]
                line.append(f"[{k}: {_ratio(other, conv)}, vs channels_last conv "
                            f"{_ratio(other, times[f'conv_cl_{mode}']['median_s'])}]")
            ref = reference[mode]
            line.append(f"reference {_ratio(ref['seconds'], conv)}" if "seconds" in ref else "reference skipped")
        print(" | ".join(line), flush=True)

    if hasattr(os, "getloadavg"):
        report["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    if kernels:  # after the timing: it runs the (slow) float64 reference
        report["float_kernel_accuracy"] = float_kernel_accuracy(kernels)
    targets = target_lines(report)
    report["targets"] = targets
    if targets:
        print("\n## targets (EDSR layer, CPU)")
        for line in targets:
            print("  " + line)
    if args.markdown:
        print("\n" + markdown(report))
    path = args.json
    if args.json_dir:
        path = new_json_path(args.json_dir, "bench_adder_conv", info["date"])
    if path:
        return write_new_json(report, path, "bench_adder_conv")  # whole or nothing, never overwriting
    return 0


if __name__ == "__main__":
    sys.exit(main())
