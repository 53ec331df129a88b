"""The public AdderNet layer's formulation against ``F.conv2d`` and our op (the README's "hundreds
of times slower, gigabytes for one layer").

    python benchmarks/bench_addernet_public.py [--case edsr] [--json PATH | --json-dir DIR]

The public AdderNet code (huawei-noah/AdderNet, ``adder.py``) computes a layer by unfolding the
input into columns and broadcasting ``W_col[:, :, None] - X_col[None]`` over (Cout, Cin·k·k,
N·H·W) before the absolute value and the sum over the middle axis: the whole difference tensor
exists at once. :func:`addernet_unfold_forward` is that formulation, written here from its
description (same tensor shapes, so the same time and memory), and tested against our float64
reference in ``tests/benchmarks/test_bench_addernet_public.py``.

Forward only, CPU, float32. ``F.conv2d`` (NCHW and channels_last) and ``adder_conv2d`` are timed
interleaved (medians of ``--repeat``); the public formulation, seconds per call, runs ``--slow-repeat``
times; each implementation's peak memory is measured once in a forked child (a fresh address
space: ``adder_conv_measure.PeakMeter``). Writes one JSON per run (``results_io``: dated, never
overwriting) with the date, machine and command.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules, also when loaded by path
from adder_conv_measure import CASES, PeakMeter, _pin_malloc_to_mmap  # noqa: E402
from bench_adder_conv import machine_info  # noqa: E402
from results_io import new_json_path, write_new_json  # noqa: E402

from addersr_plugin.ops import adder_conv2d  # noqa: E402


def addernet_unfold_forward(x: torch.Tensor, w: torch.Tensor, padding: int) -> torch.Tensor:
    """``-Σ|x − w|`` the way the public AdderNet layer computes it: one (Cout, K, L·N) difference
    tensor (K = Cin·kh·kw taps, L output pixels, N images), then abs and a sum over K."""
    n, _, h, wd = x.shape
    cout, _, kh, kw = w.shape
    ho, wo = h + 2 * padding - kh + 1, wd + 2 * padding - kw + 1
    cols = F.unfold(x, (kh, kw), padding=padding)  # N, K, L
    cols = cols.permute(1, 2, 0).reshape(cols.shape[1], -1)  # K, L·N (the public code's order)
    out = -(w.reshape(cout, -1)[:, :, None] - cols[None]).abs().sum(1)  # Cout, L·N
    return out.reshape(cout, ho, wo, n).permute(3, 0, 1, 2)


def inputs(case, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(case.n, case.cin, case.hw, case.hw, generator=g),
            torch.randn(case.cout, case.cin, case.k, case.k, generator=g))


def calls(x, w, padding):
    cl = torch.channels_last
    x_cl, w_cl = x.contiguous(memory_format=cl), w.contiguous(memory_format=cl)
    return {
        "conv": lambda: F.conv2d(x, w, None, 1, padding),
        "conv_cl": lambda: F.conv2d(x_cl, w_cl, None, 1, padding),
        "adder": lambda: adder_conv2d(x, w, None, 1, padding),
        "addernet_public": lambda: addernet_unfold_forward(x, w, padding),
    }


def peak_in_fork(case, impl: str) -> dict:
    """Peak extra memory (MiB) of one forward of ``impl``, in a forked child."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report, never raise
        os.close(read_fd)
        try:
            _pin_malloc_to_mmap()
            x, w = inputs(case)
            fn = calls(x, w, case.padding)[impl]
            meter = PeakMeter(torch.device("cpu"))
            with torch.no_grad():
                meter.start()
                fn()
                text = f"{meter.stop()} {meter.method}"
        except BaseException as exc:  # noqa: BLE001  (reported to the parent)
            text = f"error {type(exc).__name__}: {exc}"
        with os.fdopen(write_fd, "w") as out:
            out.write(text)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as inp:
        text = inp.read()
    os.waitpid(pid, 0)
    value, _, method = text.partition(" ")
    if value == "error" or not text:
        return {"error": method or "the measuring process died"}
    return {"peak_mib": round(float(value), 1), "method": method}


def timed(fn) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    return time.perf_counter() - start


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=sorted(CASES), default="edsr", help="the layer (default edsr)")
    p.add_argument("--batch", type=int, default=None, help="images per call instead of the case's")
    p.add_argument("--size", type=int, default=None, help="image side instead of the case's")
    p.add_argument("--repeat", type=int, default=9, help="timed rounds of the fast calls (default 9)")
    p.add_argument("--slow-repeat", type=int, default=2, help="timed calls of the public formulation (default 2)")
    p.add_argument("--no-memory", action="store_true", help="do not measure peak memory")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the results to PATH, which must not exist")
    p.add_argument("--json-dir", type=Path, metavar="DIR", default=None,
                   help="write them to a new dated file in DIR (default docs/cpu/ when --json is not given)")
    args = p.parse_args(argv)
    if args.json is not None and args.json_dir is not None:
        p.error("--json and --json-dir: give one")
    if args.json is not None and args.json.exists():
        p.error(f"--json {args.json}: the file exists; a results file is never overwritten (one file per run)")
    if args.repeat < 1 or args.slow_repeat < 1:
        p.error("--repeat and --slow-repeat must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    case = CASES[args.case]
    if args.batch is not None or args.size is not None:
        case = dataclasses.replace(case, n=args.batch or case.n, hw=args.size or case.hw)
    info = machine_info(torch.device("cpu"))
    # Memory first: forks are safe only before this process has run a parallel region.
    memory = {} if args.no_memory else {impl: peak_in_fork(case, impl) for impl in
                                         ("conv", "conv_cl", "adder", "addernet_public")}
    x, w = inputs(case)
    fns = calls(x, w, case.padding)
    fast = ("conv", "conv_cl", "adder")
    for name in fast:
        timed(fns[name])  # warm-up
    times = {name: [] for name in fast}
    for _ in range(args.repeat):  # interleaved: drift hits all alike
        for name in fast:
            times[name].append(timed(fns[name]))
    times["addernet_public"] = [timed(fns["addernet_public"]) for _ in range(args.slow_repeat)]
    with torch.no_grad():
        err = (fns["addernet_public"]() - fns["adder"]()).abs().max().item()
    med = {k: statistics.median(v) for k, v in times.items()}
    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    report = {
        "machine": info, "command": "python benchmarks/bench_addernet_public.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "case": {"name": args.case, "title": case.title, "n": case.n, "cin": case.cin, "cout": case.cout,
                 "hw": case.hw, "k": case.k, "padding": case.padding},
        "seconds": times, "median_s": med,
        "ratio_to_conv_nchw": {k: v / med["conv"] for k, v in med.items()},
        "ratio_to_conv_channels_last": {k: v / med["conv_cl"] for k, v in med.items()},
        "memory": memory, "max_abs_difference_public_vs_op": err,
    }
    print(f"# {case.title} (N{case.n}, {case.cin}->{case.cout}, {case.hw}², {case.k}×{case.k}), forward, "
          f"{info['date']}, {info['cpu']}, {info['torch_threads']} threads\n")
    print("| implementation | median s | × conv NCHW | × conv channels_last | peak MiB |")
    print("|---|---:|---:|---:|---:|")
    for k in ("conv", "conv_cl", "adder", "addernet_public"):
        mib = memory.get(k, {}).get("peak_mib", "–")
        print(f"| {k} | {med[k]:.4f} | {report['ratio_to_conv_nchw'][k]:.2f} | "
              f"{report['ratio_to_conv_channels_last'][k]:.2f} | {mib} |")
    path = args.json or new_json_path(args.json_dir or ROOT / "docs" / "cpu", "bench_addernet_public", info["date"])
    return write_new_json(report, path, "bench_addernet_public")


if __name__ == "__main__":
    sys.exit(main())
