"""The public AdderNet layer's formulation against ``F.conv2d`` and our op (the README's "hundreds
of times slower, gigabytes for one layer").

    python benchmarks/bench_addernet_public.py [--case edsr] [--json PATH | --json-dir DIR]

The public AdderNet code (huawei-noah/AdderNet, ``adder.py``) computes a layer by unfolding the
input into columns and broadcasting ``W_col[:, :, None] - X_col[None]`` over (Cout, Cin·k·k,
N·H·W) before the absolute value and the sum over the middle axis: the whole difference tensor
exists at once. ``adder_conv_measure.addernet_unfold_forward`` is that formulation, written from
its description (same tensor shapes, so the same time and memory), and tested against a direct
float64 definition in ``tests/benchmarks/test_bench_addernet_public.py``.

Forward only, CPU, float32. ``F.conv2d`` (NCHW and channels_last) and ``adder_conv2d`` are timed
interleaved (medians of ``--repeat``); the public formulation, seconds per call, runs ``--slow-repeat``
times; each implementation's peak memory is measured once in a forked child
(``adder_conv_measure.measure_in_fork``, after one warm-up call there). Writes one JSON per run (``results_io``: dated, never
overwriting) with the date, machine and command.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules, also when loaded by path
from adder_conv_measure import CASES, Problem, measure_in_fork, timed  # noqa: E402
from bench_adder_conv import machine_info  # noqa: E402
from results_io import new_json_path, write_new_json  # noqa: E402



IMPLS = ("conv", "conv_cl", "adder", "addernet_public")
FAST = IMPLS[:3]


def peak_memory(case) -> dict:
    """Peak extra memory of one forward of each implementation, each in a forked child
    (``adder_conv_measure.measure_in_fork``: a fresh address space per measurement)."""
    cpu = torch.device("cpu")
    out = {}
    for impl in IMPLS:
        r = measure_in_fork(600, case, impl, "fwd", cpu, torch.float32, False, 0.0, True)
        out[impl] = ({"error": r["error"]} if "error" in r else
                     {"peak_mib": round(r["peak_mib"], 1), "method": r["memory_method"]})
    return out


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
    memory = {} if args.no_memory else peak_memory(case)
    problem = Problem(case, torch.device("cpu"), torch.float32)
    fns = {impl: problem.call(impl, "fwd") for impl in IMPLS}
    for name in FAST:
        fns[name]()  # warm-up
    times = {name: [] for name in FAST}
    for _ in range(args.repeat):  # interleaved: drift hits all alike
        for name in FAST:
            times[name].append(timed(problem, fns[name]))
    times["addernet_public"] = [timed(problem, fns["addernet_public"]) for _ in range(args.slow_repeat)]
    with torch.no_grad():
        err = (problem._forward("addernet_public", problem.x, problem.w)
               - problem._forward("adder", problem.x, problem.w)).abs().max().item()
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
    for k in IMPLS:
        mib = memory.get(k, {}).get("peak_mib", "–")
        print(f"| {k} | {med[k]:.4f} | {report['ratio_to_conv_nchw'][k]:.2f} | "
              f"{report['ratio_to_conv_channels_last'][k]:.2f} | {mib} |")
    path = args.json or new_json_path(args.json_dir or ROOT / "docs" / "cpu", "bench_addernet_public", info["date"])
    return write_new_json(report, path, "bench_addernet_public")


if __name__ == "__main__":
    sys.exit(main())
