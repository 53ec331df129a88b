"""The measurements of benchmarks/bench_adder_conv.py: the layer cases, the timed calls, peak memory.

``addersr::adder_conv2d`` (on NCHW and channels_last inputs, with either float CPU kernel), its
pure-PyTorch reference and ``F.conv2d`` (NCHW and channels_last) on one layer shape: :class:`Problem` builds the inputs and the call of each (implementation,
mode); :func:`time_interleaved` times calls taking turns; :func:`measure_once` runs one call
once for its time and peak memory (a slow one after a probe that estimates its cost), and
:func:`measure_in_fork` does so in a freshly forked process. The CLI and the report are in
bench_adder_conv.py; method and results in docs/benchmarks.md.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the fallback warning is reported by bench_adder_conv.py, in the header
    from addersr_plugin.ops import adder_conv2d, adder_conv2d_reference


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
# The float CPU kernels the op can be told to use (csrc/cpu/adder_conv2d_cpu_avx512.cpp): the C++
# side reads this variable at every call, so one process can time both, taking turns.
FLOAT_KERNEL_ENV = "ADDERSR_FLOAT_KERNEL"
MODES = ("fwd", "fwdbwd")
# Image side of the one-sample probe that estimates a slow implementation's cost.
PROBE_HW = 16


def parse_cases(parser, text: str, known: Dict[str, "Case"]) -> List[str]:
    """The comma-separated case names of ``text``; ``parser.error`` names any not in ``known``."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in known]
    if unknown or not names:
        parser.error(f"--cases: unknown case(s) {unknown or '(none given)'}; choose from {', '.join(known)}")
    return names


# --------------------------------------------------------------------------- the measured calls

def addernet_unfold_forward(x: torch.Tensor, w: torch.Tensor, padding: int) -> torch.Tensor:
    """``-Σ|x − w|`` the way the public AdderNet layer computes it (huawei-noah/AdderNet,
    ``adder.py``, written here from its description): unfold the input into columns, then one
    (Cout, K, L·N) difference tensor (K = Cin·kh·kw taps, L output pixels, N images) before the
    absolute value and the sum over K. ``bench_addernet_public.py`` measures it."""
    n, _, h, wd = x.shape
    cout, _, kh, kw = w.shape
    ho, wo = h + 2 * padding - kh + 1, wd + 2 * padding - kw + 1
    cols = F.unfold(x, (kh, kw), padding=padding)  # N, K, L
    cols = cols.permute(1, 2, 0).reshape(cols.shape[1], -1)  # K, L·N (the public code's order)
    out = -(w.reshape(cout, -1)[:, :, None] - cols[None]).abs().sum(1)  # Cout, L·N
    return out.reshape(cout, ho, wo, n).permute(3, 0, 1, 2)


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
        if impl == "addernet_public":
            return addernet_unfold_forward(x, w, self.padding)
        # adder_cl: the op on a channels_last input (a network run in that layout)
        fn = adder_conv2d if impl in ("adder", "adder_cl") else adder_conv2d_reference
        return fn(x, w, None, 1, self.padding)

    def call(self, impl: str, mode: str) -> Callable[[], None]:
        """A no-argument callable that runs one forward (no grad) or forward+backward."""
        # conv_cl, adder_cl: inputs already channels_last (a network run in that layout keeps them so)
        layout = torch.channels_last if impl in ("conv_cl", "adder_cl") else torch.contiguous_format
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


def with_float_kernel(kernel: Optional[str], fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` run with the float CPU kernel ``kernel`` ("avx2" forces the AVX2 kernels; any other
    value lets the op use AVX-512 where the CPU has it); ``None`` leaves the environment alone."""
    if kernel is None:
        return fn

    def run():
        os.environ[FLOAT_KERNEL_ENV] = kernel
        fn()
    return run


# Inputs of the float kernels' accuracy check: the EDSR layer's shape (576 taps) on 2 images,
# weights ~N(0, 1), features ~N(mean, std). "realistic": features of a trained body layer's
# spread; "dc_offset": features and weights sharing a large mean, the case where the AVX-512
# forward's Σx + Σw − 2·Σmin(x, w) cancels most (|y| is small next to Σx and Σw).
ACCURACY_INPUTS = {"realistic": (0.0, 5.0, 0.0), "dc_offset": (100.0, 1.0, 100.0)}


def float_kernel_accuracy(kernels: List[str]) -> Dict[str, dict]:
    """Largest error of each float CPU kernel's forward against the float64 reference, absolute
    and relative to the largest |y| (a padded border tap adds |0 − w|, so the border outputs are
    the largest in "dc_offset"; its median |y| is the interior's size), on ACCURACY_INPUTS."""
    case = CASES["edsr"]
    out = {}
    for name, (x_mean, x_std, w_mean) in ACCURACY_INPUTS.items():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, case.cin, case.hw, case.hw, generator=g, dtype=torch.float64) * x_std + x_mean
        w = torch.randn(case.cout, case.cin, case.k, case.k, generator=g, dtype=torch.float64) + w_mean
        expected = adder_conv2d_reference(x, w, None, 1, case.padding)
        scale = expected.abs().max().item()
        result = {"x": f"N({x_mean:g}, {x_std:g})", "w": f"N({w_mean:g}, 1)", "max_abs_y": scale,
                  "median_abs_y": expected.abs().median().item()}
        for k in kernels:
            with_float_kernel(k, lambda: None)()  # sets the variable
            err = (adder_conv2d(x.float(), w.float(), None, 1, case.padding).double() - expected).abs().max().item()
            result[k] = {"max_abs_error": err, "max_error_rel_to_max_abs_y": err / scale}
        out[name] = result
    os.environ.pop(FLOAT_KERNEL_ENV, None)
    return out


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
                 slow: bool, budget_s: float, memory: bool, float_kernel: Optional[str] = None) -> dict:
    """Warm up, then run (impl, mode) once, recording its time and peak memory.

    A slow implementation (the reference, or the op when it falls back to it) is first probed
    on one small sample, which also warms it up; when the probe extrapolated to the full batch
    and image exceeds ``budget_s`` seconds, or half the free memory, the full run is skipped
    with the estimate as the reason. ``float_kernel``: see :func:`with_float_kernel`.
    """
    if float_kernel is not None:
        os.environ[FLOAT_KERNEL_ENV] = float_kernel
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

