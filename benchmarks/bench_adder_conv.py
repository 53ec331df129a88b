#!/usr/bin/env python
"""Time and memory of ``addersr::adder_conv2d`` as ratios to ``F.conv2d`` on the same layer.

    python benchmarks/bench_adder_conv.py [--device cpu|cuda] [--repeat N] [--cases edsr,vdsr,stem,paper]
                                          [--json PATH] [--markdown]

For every case the adder op and a convolution of the same shape are timed in this process,
interleaved (conv, adder, conv, adder, ...) after a warm-up, and the medians compared. The
pure-PyTorch reference is timed once per mode, after a one-sample probe has estimated that it
fits the time budget. Peak memory is the high-water mark above a warm baseline: on CPU the
process RSS of a freshly forked child per measurement, on CUDA ``torch.cuda.max_memory_allocated``.
Method and results: docs/benchmarks.md. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import json
import os
import platform
import signal
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the fallback warning is reported below, in the header
    from addersr_plugin.ops import adder_conv2d, adder_conv2d_reference, extension_available, extension_status


@dataclass(frozen=True)
class Case:
    title: str
    n: int
    cin: int
    cout: int
    hw: int
    k: int = 3
    padding: int = 1

    def shape(self) -> str:
        return f"N={self.n}, {self.cin}→{self.cout}, {self.hw}×{self.hw}, {self.k}×{self.k}, pad {self.padding}"

    def out_pixels(self) -> int:
        return (self.hw + 2 * self.padding - self.k + 1) ** 2

    def macs(self) -> int:
        """Multiply-accumulates (adder: subtract-abs-accumulates) of one forward."""
        return self.n * self.cout * self.cin * self.k * self.k * self.out_pixels()


CASES: Dict[str, Case] = {
    "edsr": Case("EDSR body layer", 16, 64, 64, 48),
    "vdsr": Case("VDSR layer", 16, 64, 64, 41),
    "stem": Case("RGB stem", 16, 3, 64, 48),
    "paper": Case("paper-scale EDSR layer", 4, 256, 256, 48),
}
IMPLS = ("conv", "adder", "reference")
MODES = ("fwd", "fwdbwd")
# The targets for the EDSR layer on the 2-core CPU.
TARGETS = {"fwd": 2.5, "fwdbwd": 3.0, "memory": 2.0}
# Image side of the one-sample probe that estimates a slow implementation's cost.
PROBE_HW = 16


# --------------------------------------------------------------------------- the measured calls

class Problem:
    """Inputs of one case on one device, and the callables that run each (impl, mode)."""

    def __init__(self, case: Case, device: torch.device, dtype: torch.dtype, n: Optional[int] = None,
                 hw: Optional[int] = None):
        g = torch.Generator().manual_seed(0)
        n = case.n if n is None else n
        hw = case.hw if hw is None else hw
        self.x = torch.randn(n, case.cin, hw, hw, generator=g).to(device, dtype)
        self.w = torch.randn(case.cout, case.cin, case.k, case.k, generator=g).to(device, dtype)
        out = hw + 2 * case.padding - case.k + 1
        self.gy = torch.randn(n, case.cout, out, out, generator=g).to(device, dtype)
        self.padding = case.padding
        self.device = device

    def _forward(self, impl: str, x, w):
        if impl == "conv":
            return F.conv2d(x, w, None, 1, self.padding)
        if impl == "conv_cl":  # oneDNN's faster layout on CPU: same numbers, NHWC strides
            cl = torch.channels_last
            return F.conv2d(x.contiguous(memory_format=cl), w.contiguous(memory_format=cl), None, 1, self.padding)
        fn = adder_conv2d if impl == "adder" else adder_conv2d_reference
        return fn(x, w, None, 1, self.padding)

    def call(self, impl: str, mode: str) -> Callable[[], None]:
        """A no-argument callable that runs one forward (no grad) or forward+backward."""
        # conv_cl: inputs already channels_last (a network run in that layout keeps them so)
        layout = torch.channels_last if impl == "conv_cl" else torch.contiguous_format
        x0, w0 = self.x.contiguous(memory_format=layout), self.w.contiguous(memory_format=layout)
        if mode == "fwd":
            def run():
                with torch.no_grad():
                    self._forward(impl, x0, w0)
            return run
        x = x0.detach().requires_grad_(True)
        w = w0.detach().requires_grad_(True)

        def run_bwd():
            x.grad = w.grad = None  # no accumulation into last run's gradients
            self._forward(impl, x, w).backward(self.gy)
        return run_bwd

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def timed(problem: Problem, fn: Callable[[], None]) -> float:
    problem.sync()
    start = time.perf_counter()
    fn()
    problem.sync()
    return time.perf_counter() - start


# --------------------------------------------------------------------------- memory

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _proc_status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def _reset_rss_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _pin_malloc_to_mmap() -> None:
    """Make glibc hand large blocks back to the OS on free, so RSS follows live tensors.

    Without it glibc's adaptive mmap threshold keeps freed blocks resident after the warm-up,
    and the measured call reuses them without raising RSS: peaks would read too low."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 64 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 * 1024)
    except OSError:
        pass


class PeakMeter:
    """Extra memory (MiB) at the high-water mark of one call, above the warm baseline."""

    def __init__(self, device: torch.device):
        self.device = device
        self.method = "cuda.max_memory_allocated" if device.type == "cuda" else "rss-hwm"

    def start(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = _proc_status_kib("VmRSS") * 1024
            if not _reset_rss_peak():
                # ru_maxrss never goes down: the delta is right only when the call sets a new
                # high-water mark, so it is reported as a lower bound.
                self.method = "ru_maxrss (lower bound)"

    def stop(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.method == "rss-hwm":
            peak = _proc_status_kib("VmHWM") * 1024
        else:
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0, peak - self.base) / 2**20


def _mem_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- one measurement

def measure_once(case: Case, impl: str, mode: str, device: torch.device, dtype: torch.dtype,
                 slow: bool, budget_s: float, memory: bool) -> dict:
    """Warm up, then run (impl, mode) once, recording its time and peak memory.

    A slow implementation (the reference, or the op when it falls back to it) is first probed
    on one small sample, which also warms it up; when the probe extrapolated to the full batch
    and image exceeds ``budget_s`` seconds, or half the free memory, the full run is skipped
    with the estimate as the reason.
    """
    meter = PeakMeter(device)
    if slow:
        # Its cost is linear in samples × output pixels: probe one sample of a small image.
        probe_hw = min(case.hw, PROBE_HW)
        probe = Problem(case, device, dtype, n=1, hw=probe_hw)
        run = probe.call(impl, mode)
        meter.start()
        first_s = timed(probe, run)  # includes one-time costs (page faults, lazy init) ...
        probe_mib = meter.stop()
        probe_s = min(first_s, timed(probe, run))  # ... which the estimate should not multiply
        del probe, run
        scale = case.n * case.out_pixels() / Case(case.title, 1, case.cin, case.cout, probe_hw,
                                                  case.k, case.padding).out_pixels()
        est_s = probe_s * scale
        if est_s > budget_s:
            return {"skipped": f"est. {est_s:.0f} s > {budget_s:.0f} s budget", "probe_s": probe_s}
        est_bytes = probe_mib * 2**20 * scale  # an upper bound: the reference works in bounded chunks
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else _mem_available()
        if free is not None and est_bytes > 0.5 * free:
            return {"skipped": f"est. {est_bytes / 2**30:.1f} GiB > half of {free / 2**30:.1f} GiB free",
                    "probe_s": probe_s}
    problem = Problem(case, device, dtype)
    fn = problem.call(impl, mode)
    if not slow:
        fn()  # warm-up: allocator, oneDNN/cuDNN primitives, thread pool
    meter.start()
    seconds = timed(problem, fn)
    peak = meter.stop() if memory else None
    return {"seconds": seconds, "peak_mib": peak, "memory_method": meter.method if memory else None}


def measure_in_fork(timeout_s: float, *args) -> dict:
    """``measure_once`` in a forked child: a fresh address space per measurement, so one
    measurement's allocator state cannot hide or inflate the next one's peak.

    Forking is safe only before this process has run a parallel region (libgomp's thread
    team does not survive fork), which is why all forks happen before any timing."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        code = 0
        try:
            signal.alarm(int(timeout_s) + 1)
            _pin_malloc_to_mmap()
            result = measure_once(*args)
        except BaseException as exc:  # reported to the parent, never raised in the child
            result, code = {"error": f"{type(exc).__name__}: {exc}"}, 1
        with os.fdopen(write_fd, "w") as out:
            json.dump(result, out)
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as inp:
        text = inp.read()
    _, status = os.waitpid(pid, 0)
    if not text:
        return {"error": f"measurement process died (wait status {status}; timeout {timeout_s:.0f} s)"}
    return json.loads(text)


# --------------------------------------------------------------------------- timing

def time_interleaved(problem: Problem, calls: Dict[str, Callable[[], None]], repeat: int, warmup: int,
                     on_cuda_tf32: Optional[Dict[str, bool]] = None) -> Dict[str, dict]:
    """Median and spread of each call, the calls taking turns so drift hits all of them alike."""
    def run(name):
        if on_cuda_tf32 is not None and name in on_cuda_tf32:
            torch.backends.cudnn.allow_tf32 = on_cuda_tf32[name]
        return timed(problem, calls[name])

    for _ in range(warmup):
        for name in calls:
            run(name)
    samples: Dict[str, List[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name in calls:
            samples[name].append(run(name))
    return {name: {"median_s": statistics.median(s), "min_s": min(s), "max_s": max(s), "samples": len(s)}
            for name, s in samples.items()}


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
    p.add_argument("--json", type=Path, metavar="PATH", help="also write all results as JSON")
    p.add_argument("--markdown", action="store_true", help="print a table for docs/benchmarks.md")
    args = p.parse_args(argv)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown or not names:
        p.error(f"--cases: unknown case(s) {unknown or '(none given)'}; choose from {', '.join(CASES)}")
    args.cases = names
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be non-negative")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    if args.device == "cpu" and args.dtype != "float32":
        p.error(f"--dtype {args.dtype}: the CPU kernels support float32 and float64 only")
    return args


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
    forked = device.type == "cpu"
    measured: Dict[str, Dict[str, dict]] = {name: {} for name in cases}
    singles = [(impl, mode) for impl in IMPLS for mode in MODES
               if not (impl == "reference" and args.no_reference)]
    if not args.no_memory or not args.no_reference:
        # Phase 1: single runs (peak memory of everything, time of the reference). On CPU each in a
        # freshly forked process; this must come before phase 2 computes anything here.
        print("\n## single runs" + (" (peak memory; reference time)" if not args.no_memory else ""))
        for name, case in cases.items():
            for impl, mode in singles:
                slow = impl == "reference" or (impl == "adder" and adder_is_slow)
                if args.no_memory and not slow:
                    continue
                run_args = (case, impl, mode, device, dtype, slow, args.reference_budget, not args.no_memory)
                result = (measure_in_fork(3 * args.reference_budget + 120, *run_args) if forked
                          else measure_once(*run_args))
                measured[name][f"{impl}_{mode}"] = result
                detail = result.get("skipped") or result.get("error") or (
                    f"{_ms(result['seconds'])} ms" + (f", peak +{result['peak_mib']:.0f} MiB"
                                                      if result.get("peak_mib") is not None else ""))
                print(f"  {name:6s} {impl:9s} {mode:7s} {detail}", flush=True)

    # Phase 2: conv vs adder, interleaved, in this process.
    print(f"\n## timing: {args.repeat} interleaved repeats after {args.warmup} warm-up runs (medians)")
    report = {"machine": info, "settings": {
        "repeat": args.repeat, "warmup": args.warmup, "dtype": args.dtype,
        "reference_budget_s": args.reference_budget,
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
            if not adder_is_slow:
                calls[f"adder_{mode}"] = problem.call("adder", mode)
        if device.type == "cuda":
            tf32 = {f"conv_{m}": False for m in MODES} | {f"conv_tf32_{m}": True for m in MODES}
        saved_tf32 = torch.backends.cudnn.allow_tf32
        try:
            times = time_interleaved(problem, calls, args.repeat, args.warmup, tf32)
        finally:
            torch.backends.cudnn.allow_tf32 = saved_tf32
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
            ref = reference[mode]
            line.append(f"reference {_ratio(ref['seconds'], conv)}" if "seconds" in ref else "reference skipped")
        print(" | ".join(line), flush=True)

    if hasattr(os, "getloadavg"):
        report["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    targets = target_lines(report)
    report["targets"] = targets
    if targets:
        print("\n## targets (EDSR layer, CPU)")
        for line in targets:
            print("  " + line)
    if args.markdown:
        print("\n" + markdown(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(report, indent=2, default=str))
        tmp.replace(args.json)  # never a half-written results file
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
