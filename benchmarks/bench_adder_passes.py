"""Each pass of the float adder op against the same pass of oneDNN's convolution, with the
instruction floor of each ratio (docs/benchmarks.md, "Floors").

    python benchmarks/bench_adder_passes.py [--cases train32,edsr] [--threads 2] [--repeat 20]
                                            [--json-dir docs/cpu]

Per case, in one process, interleaved rounds, medians: forward, input gradient and weight
gradient of ``addersr::adder_conv2d`` (AdderNet's modes: full-precision weight gradient, HardTanh
input gradient, as AdderEDSR trains) and of ``aten.convolution_backward`` / ``F.conv2d`` (NCHW and
channels_last). The floors count AVX-512 instructions per element of each pass's inner loop:

* forward: the convolution's ``vfmadd`` is one; the adder's ``vminps`` + ``vaddps`` (the
  identity Σ|x − w| = Σx + Σw − 2·Σmin(x, w)) two;
* input gradient: ``vfmadd`` one; the adder's ``vsubps`` (w − x), ``vrangeps`` (HardTanh) and
  ``vfmadd`` three;
* weight gradient: the adder's full-precision gradient is the convolution's weight gradient minus
  W·ΣG (csrc/cpu/adder_conv2d_cpu.cpp), so one, as the convolution's.

A ratio at its floor means the kernel issues its instructions as efficiently as oneDNN does; a
ratio below the floor needs oneDNN to be further from its own peak. Writes one new JSON per run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from adder_conv_measure import CASES, Case, parse_cases  # noqa: E402
from results_io import new_json_path, write_new_json  # noqa: E402

# The layer of one BasicSR training iteration of AdderEDSR 32/4 x2 (docs/benchmarks.md,
# "Training step"): a batch of 16 LR patches of 24x24, 32 features.
PASS_CASES = {"train32": Case("AdderEDSR 32/4 training layer", 16, 32, 32, 24), **CASES}
FLOORS = {"fwd": 2.0, "grad_input": 3.0, "grad_weight": 1.0}
PASSES = tuple(FLOORS)


def calls(case: Case, channels_last: bool) -> dict:
    """{(impl, pass): zero-argument call} for one case and layout (impl: "conv" or "adder")."""
    import addersr_plugin  # noqa: F401  (registers the op)

    g = torch.Generator().manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(case.n, case.cin, case.hw, case.hw, generator=g).contiguous(memory_format=fmt)
    w = torch.randn(case.cout, case.cin, case.k, case.k, generator=g)
    ho = case.hw + 2 * case.padding - case.k + 1
    go = torch.randn(case.n, case.cout, ho, ho, generator=g).contiguous(memory_format=fmt)
    p, one = [case.padding] * 2, [1, 1]
    cb = torch.ops.aten.convolution_backward
    ops = torch.ops.addersr
    return {
        ("conv", "fwd"): lambda: F.conv2d(x, w, padding=case.padding),
        ("conv", "grad_input"): lambda: cb(go, x, w, None, one, p, one, False, [0, 0], 1, [True, False, False]),
        ("conv", "grad_weight"): lambda: cb(go, x, w, None, one, p, one, False, [0, 0], 1, [False, True, False]),
        ("adder", "fwd"): lambda: ops.adder_conv2d(x, w, None, one, p, one, 1, "full", "hardtanh"),
        ("adder", "grad_input"): lambda: ops.adder_conv2d_grad_input(go, x, w, one, p, one, 1, "hardtanh"),
        ("adder", "grad_weight"): lambda: ops.adder_conv2d_grad_weight(go, x, w, one, p, one, 1, "full"),
    }


def time_case(case: Case, repeat: int, rounds: int) -> dict:
    """Medians in ms per (layout, impl, pass), interleaved over ``rounds``."""
    # The op computes in NCHW whatever its input's layout: its channels_last calls add a copy only.
    layouts = {"nchw": calls(case, False),
               "channels_last": {k: f for k, f in calls(case, True).items() if k[0] == "conv"}}
    times: dict = {}
    for layout, fns in layouts.items():
        for fn in fns.values():
            fn()  # warm-up: oneDNN primitive creation, first allocations
            fn()
    for _ in range(rounds):
        for layout, fns in layouts.items():
            for (impl, pss), fn in fns.items():
                for _ in range(repeat):
                    t = time.perf_counter()
                    fn()
                    times.setdefault(f"{layout}/{impl}/{pss}", []).append(time.perf_counter() - t)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def ratios(ms: dict) -> dict:
    """adder ÷ conv per pass, against the conv of the same layout and the faster conv layout."""
    out = {}
    for pss in PASSES:
        adder = ms[f"nchw/adder/{pss}"]  # the op computes in NCHW whatever the input's layout
        best_conv = min(ms[f"nchw/conv/{pss}"], ms[f"channels_last/conv/{pss}"])
        out[pss] = {"vs_conv_nchw": adder / ms[f"nchw/conv/{pss}"], "vs_best_conv": adder / best_conv,
                    "floor": FLOORS[pss]}
    adder = sum(ms[f"nchw/adder/{p}"] for p in PASSES)
    conv = {lay: sum(ms[f"{lay}/conv/{p}"] for p in PASSES) for lay in ("nchw", "channels_last")}
    out["fwd+bwd"] = {"vs_conv_nchw": adder / conv["nchw"], "vs_best_conv": adder / min(conv.values()),
                      "floor": sum(FLOORS.values()) / len(FLOORS)}
    return out


def markdown(report: dict) -> str:
    lines = [f"{report['date']}, {report['cpu']}, {report['threads']} threads, torch {report['torch']}", "",
             "| case | pass | adder ms | conv ms NCHW | conv ms channels_last | adder ÷ conv NCHW | adder ÷ faster conv | floor |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in report["cases"].items():
        for pss in (*PASSES, "fwd+bwd"):
            if pss == "fwd+bwd":
                a = sum(r["ms"][f"nchw/adder/{p}"] for p in PASSES)
                cn = sum(r["ms"][f"nchw/conv/{p}"] for p in PASSES)
                cc = sum(r["ms"][f"channels_last/conv/{p}"] for p in PASSES)
            else:
                a, cn, cc = (r["ms"][f"nchw/adder/{pss}"], r["ms"][f"nchw/conv/{pss}"],
                             r["ms"][f"channels_last/conv/{pss}"])
            q = r["ratios"][pss]
            lines.append(f"| {name} | {pss} | {a:.2f} | {cn:.2f} | {cc:.2f} | {q['vs_conv_nchw']:.2f}× | "
                         f"{q['vs_best_conv']:.2f}× | {q['floor']:.1f}× |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="train32,edsr", help=f"comma-separated, of {', '.join(PASS_CASES)}")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--repeat", type=int, default=10, help="timed calls per pass and round (default 10)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    p.add_argument("--json-dir", type=Path, default=Path(HERE).parent / "docs" / "cpu")
    p.add_argument("--no-json", action="store_true", help="print only")
    args = p.parse_args(argv)
    names = parse_cases(p, args.cases, PASS_CASES)
    if args.repeat < 1 or args.rounds < 1:
        p.error("--repeat and --rounds must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = {"date": date, "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "float_kernel": os.environ.get("ADDERSR_FLOAT_KERNEL", "auto"),
              "load_before": os.getloadavg(), "cases": {}}
    try:
        with open("/proc/cpuinfo") as fh:
            report["cpu"] = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    for name in names:
        case = PASS_CASES[name]
        ms = time_case(case, args.repeat, args.rounds)
        report["cases"][name] = {"shape": case.shape(), "ms": ms, "ratios": ratios(ms)}
        print(f"{name} ({case.shape()}): " + ", ".join(f"{k} {v['vs_best_conv']:.2f}× (floor {v['floor']:.1f})"
                                                        for k, v in report["cases"][name]["ratios"].items()), flush=True)
    report["load_after"] = os.getloadavg()
    print(markdown(report))
    if args.no_json:
        return 0
    return write_new_json(report, new_json_path(args.json_dir, "bench_adder_passes", date), "bench_adder_passes")


if __name__ == "__main__":
    sys.exit(main())
