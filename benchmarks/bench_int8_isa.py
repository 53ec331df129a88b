"""AdderEDSR-int8 (ours) against EDSR-int8 (FX and PT2E, ``edsr_int8.py``) and both fp32, per
instruction set of this CPU: quality and speed side by side (docs/benchmarks.md).

    python benchmarks/bench_int8_isa.py [--isa default,avx512_vnni,avx2] [--sizes 32x4,64x16]
                                        [--wrap quiet] [--json-dir docs/int8]

The ISA limits (``ONEDNN_MAX_CPU_ISA`` for oneDNN, ``ADDERSR_U8_KERNEL`` for our kernel,
``ATEN_CPU_CAPABILITY`` for PyTorch's own vector code) are read at process start, so every ISA
setting runs in its own child processes:

* ``probe``: a tiny forward of each model with ``ONEDNN_VERBOSE=1``, recording which oneDNN
  convolution implementation (``brg_conv_fwd:avx10_1_512_amx``, ``jit:avx2`` …) each one runs,
  and which vector ISA inductor and our u8 kernel pick;
* ``quality``: the shipped ``edsr-x2`` and ``adder-edsr-x2`` (32 features, 4 blocks, trained on
  the photo split's train photos, chosen on its heldout ones) fp32 and int8, Y-PSNR (border 2)
  on the split's test photos, calibrated on ``--calib-crops`` crops of its heldout photos; PT2E
  scored eagerly (its reference quantize/dequantize graph) and checked against the compiled
  (int8 oneDNN) model on one photo; the FX model's activation report on two photos;
* ``time`` (one per size, wrapped in ``--wrap``, e.g. ``quiet``): x2 to a 1280x720 output,
  untrained weights (speed does not depend on them), interleaved rounds, ratios against
  EDSR-fp32 channels_last measured in the same process.

Writes one new JSON per run (never overwrites) with the date, CPU, torch and torchao versions and
each setting's environment, and prints markdown tables.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

ISAS = {
    "default": {},
    "avx512_vnni": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ADDERSR_U8_KERNEL": "avx2", "ATEN_CPU_CAPABILITY": "avx2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}
SCALE = 2
NAMES = {"edsr_fp32": "EDSR-fp32", "edsr_fp32_cl": "EDSR-fp32, channels_last", "adder_fp32": "AdderEDSR-fp32",
         "adder_int8": "AdderEDSR-int8 (ours)", "edsr_int8_fx": "EDSR-int8 (FX)",
         "edsr_int8_fx_matched": "EDSR-int8 (FX, AdderEDSR-int8's int8/float split)",
         "edsr_int8_pt2e": "EDSR-int8 (PT2E, compiled)"}
BASE = "edsr_fp32_cl"


# --------------------------------------------------------------------------- models

def timing_models(num_feat: int, num_block: int, lr, calib_n: int = 4):
    """{key: model} of one size, untrained (seeded); int8 ones calibrated on ``calib_n`` random crops."""
    import copy

    import torch
    from basicsr.archs.edsr_arch import EDSR

    import edsr_int8
    from addersr_plugin.archs import AdderEDSR
    from addersr_plugin.quant import quantize_model

    torch.manual_seed(0)
    calib = [torch.rand(1, 3, 32, 32) for _ in range(calib_n)]
    edsr = EDSR(3, 3, num_feat=num_feat, num_block=num_block, upscale=SCALE).eval()
    adder = AdderEDSR(3, 3, num_feat=num_feat, num_block=num_block, upscale=SCALE).eval()
    models = {"edsr_fp32": edsr, "edsr_fp32_cl": copy.deepcopy(edsr).to(memory_format=torch.channels_last),
              "adder_fp32": adder, "adder_int8": quantize_model(adder, calib, "minmax")[0],
              "edsr_int8_fx": edsr_int8.edsr_int8_fx(edsr, calib),
              "edsr_int8_fx_matched": edsr_int8.edsr_int8_fx(edsr, calib, float_layers=edsr_int8.MATCHED_FLOAT_LAYERS,
                                                             float_adds=True)}
    try:
        models["edsr_int8_pt2e"] = edsr_int8.edsr_int8_pt2e(edsr, calib, compile=True, example=lr)
    except edsr_int8.Unavailable as exc:
        print(f"PT2E skipped: {exc}", file=sys.stderr)
    return models


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def child_time(args) -> dict:
    import torch

    f, b = (int(v) for v in args.size.split("x"))
    lr = torch.rand(1, 3, 720 // SCALE, 1280 // SCALE)
    lr_cl = lr.contiguous(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    models = timing_models(f, b, lr_cl)
    setup = time.perf_counter() - t0
    slow = f * b >= 1024  # 64/16: the fp32 adder ~5x the others: one call per round, no warm-up
    repeat = min(args.repeat, 2) if slow else args.repeat  # keeps the run (trainings paused) short
    if slow:
        del models["edsr_fp32"]  # NCHW, ~2x its channels_last time here: not the baseline
    inputs = {k: (lr if k in ("edsr_fp32", "adder_fp32") else lr_cl) for k in models}
    load0 = loadavg()
    times = {}
    with torch.inference_mode():
        for rnd in range(args.rounds):
            for k, m in models.items():
                reps = 1 if (slow and k == "adder_fp32") else repeat
                if rnd == 0 and not (slow and k == "adder_fp32"):
                    m(inputs[k])  # warm-up (first-call allocations, oneDNN primitive creation)
                for _ in range(reps):
                    t = time.perf_counter()
                    m(inputs[k])
                    times.setdefault(k, []).append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = {k: {"seconds_median": s, "calls": len(times[k]), "speedup_vs_edsr_fp32_cl": med[BASE] / s}
            for k, s in med.items()}
    for k, row in rows.items():
        if "edsr_fp32" in med:
            row["speedup_vs_edsr_fp32_nchw"] = med["edsr_fp32"] / med[k]
    out = {"size": args.size, "rows": rows, "setup_seconds": setup, "rounds": args.rounds, "repeat": repeat,
           "threads": torch.get_num_threads(), "loadavg_before": load0, "loadavg_after": loadavg()}
    best_cnn = min((k for k in ("edsr_int8_fx", "edsr_int8_pt2e") if k in med), key=med.get)
    out["edsr_int8_best"] = best_cnn
    out["edsr_int8_best_speedup_vs_adder_int8"] = med["adder_int8"] / med[best_cnn]
    out["edsr_int8_matched_speedup_vs_adder_int8"] = med["adder_int8"] / med["edsr_int8_fx_matched"]
    return out


def pretrained_seen(names) -> dict:
    """Photos the shipped models trained or chose on (the photo split's manifest)."""
    import int8_photos

    manifest = int8_photos.find_manifest(os.path.join(ROOT, "datasets", "photos_split"))
    if manifest is None:
        raise int8_photos.PhotoSetError("datasets/photos_split has no manifest.json (run "
                                        f"{int8_photos.SPLIT_SCRIPT})")
    with open(manifest, encoding="utf-8") as fh:
        photos = json.load(fh)["photos"]
    return {os.path.splitext(p["file"])[0]: f"{p['split']} photo of the shipped models"
            for p in photos if p.get("split") in ("train", "heldout")}


def child_quality(args) -> dict:
    import numpy as np
    import torch
    from basicsr.utils import tensor2img

    import edsr_int8
    import int8_photos
    from addersr_plugin.data.images import read_image
    from addersr_plugin.loading import load_pretrained
    from addersr_plugin.quant import quantize_model
    from addersr_plugin.quant.images import image_tensor
    from addersr_plugin.scoring import y_psnr_ssim

    os.chdir(ROOT)
    scored, left_out, calib = int8_photos.choose(int8_photos.SCORE_DIR, int8_photos.CALIB_DIR, SCALE, pretrained_seen)
    crops = int8_photos.calibration_crops(calib, args.calib_crops, args.calib_size)
    images = {n: (read_image(h), read_image(lq)) for n, (h, lq) in sorted(scored.items())}

    def sr(net, lr):
        with torch.no_grad():
            return tensor2img(net(image_tensor(lr, None)), rgb2bgr=True, min_max=(0, 1))

    def psnr(net):
        return {n: y_psnr_ssim(sr(net, lr), hr, SCALE)[0] for n, (hr, lr) in images.items()}

    edsr, _, _ = load_pretrained("edsr-x2")
    adder, _, _ = load_pretrained("adder-edsr-x2")
    t0 = time.perf_counter()
    res = {"edsr_fp32": psnr(edsr), "adder_fp32": psnr(adder)}
    report = {"method": None, "psnr_vs_float": None}
    if args.adder_method != "none":
        qadder, report = quantize_model(adder, crops, args.adder_method)
        res["adder_int8"] = psnr(qadder)
    fx = edsr_int8.edsr_int8_fx(edsr, crops)
    res["edsr_int8_fx"] = psnr(fx)
    fx_mods = edsr_int8.quantized_modules(fx)
    # like for like: only the layers AdderEDSR-int8 runs in 8 bits (the body's) are int8 here too
    res["edsr_int8_fx_matched"] = psnr(edsr_int8.edsr_int8_fx(edsr, crops, float_layers=edsr_int8.MATCHED_FLOAT_LAYERS,
                                                              float_adds=True))
    if args.variants:  # the layers AdderEDSR-int8 keeps float, float here too
        res["edsr_int8_fx_head_tail_float"] = psnr(edsr_int8.edsr_int8_fx(edsr, crops,
                                                                          float_layers=("conv_first", "conv_last")))
        # 7-bit activations (torch's x86 default): AVX2's vpmaddubsw sums u8*s8 pairs in saturating int16
        res["edsr_int8_fx_reduce_range"] = psnr(edsr_int8.edsr_int8_fx(edsr, crops, reduce_range=True))
    extra = {}
    try:
        pt = edsr_int8.edsr_int8_pt2e(edsr, crops, compile=False)
        res["edsr_int8_pt2e"] = psnr(pt)
        name = min(images, key=lambda n: images[n][1].size)  # the smallest photo: one compile
        for rr in ([False, True] if args.variants else [False]):
            pe = edsr_int8.edsr_int8_pt2e(edsr, crops, compile=False, reduce_range=rr) if rr else pt
            ptc = edsr_int8.edsr_int8_pt2e(edsr, crops, compile=True, example=image_tensor(images[name][1], None),
                                           reduce_range=rr)
            a, b = sr(pe, images[name][1]), sr(ptc, images[name][1])
            diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
            extra["pt2e_compiled_vs_eager" + ("_reduce_range" if rr else "")] = {
                "photo": name, "max_abs_diff_grey_levels": int(diff.max()), "pixels_differing": float((diff > 0).mean()),
                "y_psnr_compiled": y_psnr_ssim(b, images[name][0], SCALE)[0],
                "y_psnr_eager": y_psnr_ssim(a, images[name][0], SCALE)[0]}
    except edsr_int8.Unavailable as exc:
        extra["pt2e_unavailable"] = str(exc)
    acts = {}
    for n in ("lomiri-wallpapers-20_04_Fossa_by_Jasper_Roks", "matplotlib_grace_hopper"):
        if n in images:
            acts[n] = edsr_int8.activation_report(edsr, fx, image_tensor(images[n][1], None))
    smooth = [n for n in images if "Fossa" in n]  # a rendered gradient: the study leaves it out of photo means

    def summary(per):
        return {"mean_all": float(np.mean(list(per.values()))),
                "mean_photos": float(np.mean([v for k, v in per.items() if k not in smooth]))}

    return {"psnr": res, "summary": {k: summary(v) for k, v in res.items()}, "scored_photos": sorted(images),
            "left_out_photos": left_out, "calibration_photos": sorted(calib),
            "calibration_crops": [args.calib_crops, args.calib_size], "adder_calibration": report["method"],
            "adder_psnr_vs_float_calib": report["psnr_vs_float"], "edsr_int8_fx_modules": fx_mods,
            "not_a_photo": smooth, "activation_report": acts, "seconds": time.perf_counter() - t0, **extra}


def child_probe(args) -> dict:
    """One small forward per model, each after a marker line; the parent reads ONEDNN_VERBOSE."""
    import torch

    info = {}
    try:
        from torch._inductor import cpu_vec_isa

        info["inductor_vec_isa"] = str(cpu_vec_isa.pick_vec_isa())
    except Exception as exc:  # noqa: BLE001
        info["inductor_vec_isa"] = f"unknown ({type(exc).__name__})"
    info["aten_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    info["quantized_engine"] = torch.backends.quantized.engine
    lr = torch.rand(1, 3, 48, 64).contiguous(memory_format=torch.channels_last)
    models = timing_models(32, 1, lr, calib_n=2)
    info["quantized_engine"] = torch.backends.quantized.engine
    with torch.inference_mode():
        for k, m in models.items():
            m(lr)
            print(f"=== probe {k}", flush=True)
            m(lr)
            print("=== probe end", flush=True)
    return info


def parse_verbose(text: str) -> dict:
    """{model: {convolution implementation: count}} from a probe child's stdout."""
    out, current = {}, None
    for line in text.splitlines():
        m = re.match(r"=== probe (\w+)", line)
        if m:
            current = None if m.group(1) == "end" else m.group(1)
            continue
        if current and line.startswith("onednn_verbose") and ",exec,cpu,convolution," in line:
            impl = line.split(",exec,cpu,convolution,")[1].split(",")[0]
            src = re.search(r"src:(\w+)", line)
            key = f"{impl} ({src.group(1) if src else '?'} in)"
            out.setdefault(current, {})
            out[current][key] = out[current].get(key, 0) + 1
    return out


# --------------------------------------------------------------------------- parent

def run_child(kind: str, isa: str, args, extra: list, wrap: list, verbose=False) -> dict:
    env = dict(os.environ, **ISAS[isa])
    if verbose:
        env["ONEDNN_VERBOSE"] = "1"
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = wrap + [sys.executable, os.path.abspath(__file__), "--child", kind, "--out", out] + extra
    print(f"[{isa}] {' '.join(shlex.quote(c) for c in cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child ({isa}) failed:\n{proc.stderr[-4000:]}")
    with open(out, encoding="utf-8") as fh:
        result = json.load(fh)
    os.unlink(out)
    if verbose:
        result["onednn_convolutions"] = parse_verbose(proc.stdout)
    return result


def environment() -> dict:
    import torch

    env = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
           "threads": torch.get_num_threads(), "python": platform.python_version()}
    try:
        import torchao

        env["torchao"] = torchao.__version__
    except ImportError:
        env["torchao"] = None
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
        env["cpu"] = re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
        flags = set(re.search(r"flags\s*:\s*(.*)", text).group(1).split())
        env["cpu_flags"] = sorted(flags & {"avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8",
                                           "amx_tile", "amx_bf16"})
    except (OSError, AttributeError):
        pass
    return env


def markdown(result: dict) -> str:
    lines = [f"{result['env']['date_utc']}, {result['env']['cpu']} ({', '.join(result['env'].get('cpu_flags', []))}),"
             f" torch {result['env']['torch']}, torchao {result['env']['torchao']}", ""]
    for isa, r in result["isa"].items():
        lines.append(f"### {isa}: {r['env'] or 'no limits'}")
        for model, impls in r.get("probe", {}).get("onednn_convolutions", {}).items():
            lines.append(f"- {NAMES.get(model, model)}: " + ", ".join(f"{k} ×{v}" for k, v in impls.items()))
        if "quality" in r:
            q = r["quality"]
            lines += ["", "| model | Y-PSNR mean, all | photos (without the gradient) |", "|---|---:|---:|"]
            for k, s in q["summary"].items():
                lines.append(f"| {NAMES.get(k, k)} | {s['mean_all']:.3f} | {s['mean_photos']:.3f} |")
        for size, t in r.get("time", {}).items():
            lines += ["", f"{size}: | model | s | × EDSR-fp32 channels_last speed |", "|---|---:|---:|"]
            for k, row in t["rows"].items():
                lines.append(f"| {NAMES[k]} | {row['seconds_median']:.3f} | {row['speedup_vs_edsr_fp32_cl']:.2f} |")
            lines.append(f"best EDSR-int8 is {t['edsr_int8_best_speedup_vs_adder_int8']:.2f}× AdderEDSR-int8's speed")
            if "edsr_int8_matched_speedup_vs_adder_int8" in t:
                lines.append(f"EDSR-int8 with AdderEDSR-int8's split is {t['edsr_int8_matched_speedup_vs_adder_int8']:.2f}×"
                             " AdderEDSR-int8's speed")
        lines.append("")
    return "\n".join(lines)


def new_path(folder: str, stem: str) -> str:
    path, i = os.path.join(folder, f"{stem}.json"), 2
    while os.path.exists(path):
        path, i = os.path.join(folder, f"{stem}_{i}.json"), i + 1
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--isa", default="default,avx512_vnni,avx2", help=f"settings, of {', '.join(ISAS)}")
    p.add_argument("--sizes", default="32x4,64x16", help="features x blocks to time ('' for none)")
    p.add_argument("--no-quality", dest="quality", action="store_false")
    p.add_argument("--quality-isa", default=None, help="the settings that get the quality child (default: all)")
    p.add_argument("--variants", action="store_true", help="also score FX with conv_first/conv_last float")
    p.add_argument("--wrap", default="", help="command the timing children run under, e.g. quiet")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--calib-crops", type=int, default=64)
    p.add_argument("--calib-size", type=int, default=64)
    p.add_argument("--adder-method", default="auto", help="AdderEDSR calibration ('none': not quantized)")
    p.add_argument("--json-dir", default=os.path.join(ROOT, "docs", "int8"))
    p.add_argument("--child", choices=["time", "quality", "probe"], help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        import addersr_plugin  # noqa: F401  (compat, ops, archs)

        result = {"time": child_time, "quality": child_quality, "probe": child_probe}[args.child](args)
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1)
        return 0
    isas = [s for s in args.isa.split(",") if s]
    unknown = [s for s in isas if s not in ISAS]
    if unknown:
        p.error(f"unknown --isa {unknown}; known: {list(ISAS)}")
    if args.calib_crops < 32:
        print("warning: fewer than 32 calibration crops", file=sys.stderr)
    result = {"env": environment(), "args": vars(args), "isa": {}}
    common = ["--calib-crops", str(args.calib_crops), "--calib-size", str(args.calib_size),
              "--adder-method", args.adder_method, "--repeat", str(args.repeat), "--rounds", str(args.rounds)]
    common += ["--variants"] if args.variants else []
    wrap = shlex.split(args.wrap)
    stem = "bench_int8_isa_" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d_%H%M")
    path = new_path(args.json_dir, stem)
    for isa in isas:
        r = result["isa"][isa] = {"env": ISAS[isa]}
        r["probe"] = run_child("probe", isa, args, common, [], verbose=True)
        if args.quality and (args.quality_isa is None or isa in args.quality_isa.split(",")):
            r["quality"] = run_child("quality", isa, args, common, [])
        r["time"] = {size: run_child("time", isa, args, common + ["--size", size], wrap)
                     for size in args.sizes.split(",") if size}
        with open(path, "w", encoding="utf-8") as fh:  # this run's file, rewritten as settings finish
            json.dump(result, fh, indent=1)
    print(markdown(result))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
