"""Integer adder inference benchmark (docs/benchmarks.md): per layer and end to end, ratios in one process.

    python benchmarks/bench_int8.py [--opt OPT.yml --model net_g.pth] [--json out.json]
    python benchmarks/bench_int8.py --quick [...]     # quality only (no timing): a smoke run

Per layer (EDSR body layer: N=16, 64->64, 48x48, 3x3): the int8 adder op (uint8 in, int32 out),
the whole integer layer (float in: quantize, SAD kernel, per-channel affine), fp32 ``F.conv2d``
(oneDNN), fp32 ``adder_conv2d`` and PyTorch's own int8 convolution (``torch.ao`` quantized
conv, x86/fbgemm engine) where it runs.

End to end: x2 upscale to a 1280x720 output (640x360 input) with AdderEDSR-int8,
AdderEDSR-fp32, EDSR-fp32 of the same size and EDSR-int8 (``edsr_int8.py``: FX post-training
quantization of its convolutions, mean shift in float) where it works; Y-PSNR (border 2) for the two AdderEDSRs and bicubic on photos
outside every measured model's training, calibration and selection (``int8_photos.py``: by
default the photo split's test/ photos the models' dataset manifests do not list; the output
names them), calibrated on ``--calib-crops`` (32) crops of other photos (the split's heldout/).

EDSR's timing uses untrained weights of the same size; pass ``--edsr-opt/--edsr-model`` (the
trained twin) for its Y-PSNR, fp32 and torch.ao int8.
Without ``--opt/--model`` a small AdderEDSR (32 features, 4 blocks) is trained here for
``--iters`` Adam steps on the demo's training photos (a quick stand-in, not a good model).
Prints one self-contained markdown table and writes JSON. Time only on a quiet machine:
the load average is printed with the results. ``--quick`` measures the quality part only (no
timing, no torch.ao model): a smoke run, and the way to score on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import addersr_plugin  # noqa: E402,F401  (compat, ops, archs)
import edsr_int8  # noqa: E402  (the int8 CNN baseline)
import int8_photos  # noqa: E402  (which photos are scored and calibrated on)
from addersr_plugin.checkpoint_io import LoadError  # noqa: E402
from addersr_plugin.data.demo_set import TRAIN_PHOTOS, load_photo  # noqa: E402
from addersr_plugin.data.errors import DatasetError  # noqa: E402
from addersr_plugin.data.images import bicubic_downscale, modcrop, read_image  # noqa: E402
from addersr_plugin.ops import adder_conv2d, adder_conv2d_u8  # noqa: E402
from addersr_plugin.quant import QuantAdderConv2d, grid_for_range, quantize, quantize_model  # noqa: E402
from addersr_plugin.quant.images import image_tensor  # noqa: E402

SCALE = 2


def bench(fn, repeat: int, warmup: int = 1) -> float:
    """Median seconds of ``repeat`` calls after ``warmup``."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --------------------------------------------------------------------------- per layer

def torch_ao_conv(x: torch.Tensor, w: torch.Tensor):
    """PyTorch's int8 conv (quantized input prepared outside the timed call), or None."""
    try:
        torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
        qconv = torch.ao.nn.quantized.Conv2d(64, 64, 3, padding=1)
        qw = torch.quantize_per_channel(w, w.abs().amax((1, 2, 3)) / 127, torch.zeros(64, dtype=torch.long), 0,
                                        torch.qint8)
        qconv.set_weight_bias(qw, None)
        qconv.scale, qconv.zero_point = float(x.abs().max() / 64), 64
        qx = torch.quantize_per_tensor(x, float((x.max() - x.min()) / 255), 128, torch.quint8)
        qconv(qx)
        return lambda: qconv(qx)
    except Exception as exc:  # pragma: no cover - depends on the build
        print(f"torch.ao int8 conv unavailable: {exc}", file=sys.stderr)
        return None


def layer_bench(repeat: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 64, 48, 48, generator=g)
    w = torch.randn(64, 64, 3, 3, generator=g) * 0.5
    grid = grid_for_range(float(x.min()), float(x.max()))
    qx, qw = quantize(x, grid), quantize(w.clamp(grid.lo, grid.hi), grid)
    from addersr_plugin.nn import AdderConv2d

    layer = AdderConv2d(64, 64, 3, padding=1, eta=None)
    layer.weight.data = w
    qlayer = QuantAdderConv2d.from_float(layer, grid)
    cl = torch.channels_last
    xc, wc, qxc = x.contiguous(memory_format=cl), w.contiguous(memory_format=cl), qx.contiguous(memory_format=cl)
    cases = {
        "fp32 F.conv2d (oneDNN)": lambda: F.conv2d(x, w, None, 1, 1),
        "fp32 F.conv2d (oneDNN), channels_last": lambda: F.conv2d(xc, wc, None, 1, 1),
        "int8 adder op (uint8 in, int32 out)": lambda: adder_conv2d_u8(qx, qw, grid.zero_point, 1, 1),
        "int8 adder op, channels_last": lambda: adder_conv2d_u8(qxc, qw, grid.zero_point, 1, 1),
        "int8 adder layer (float in/out: quantize + op + affine)": lambda: qlayer(x),
        "int8 adder layer, channels_last": lambda: qlayer(xc),
        "int8 adder unit, channels_last (+ shortcut + ReLU fused)": lambda: qlayer(xc, residual=xc, relu=True),
        "fp32 adder_conv2d": lambda: adder_conv2d(x, w, None, 1, 1),
    }
    ao = torch_ao_conv(x, w)
    if ao is not None:
        cases["int8 conv, torch.ao (x86/fbgemm, quint8 in/out)"] = ao
    times = {}
    # Interleave rounds so that a load change hits every case alike.
    for _ in range(3):
        for name, fn in cases.items():
            t = bench(fn, repeat)
            times[name] = min(times.get(name, t), t)
    base = times["fp32 F.conv2d (oneDNN)"]
    best = min(base, times["fp32 F.conv2d (oneDNN), channels_last"])  # the faster conv layout
    return {name: {"seconds": t, "vs_conv": t / base, "vs_best_conv": t / best} for name, t in times.items()}


# --------------------------------------------------------------------------- networks

def photo_tensor(bgr: np.ndarray) -> torch.Tensor:
    return image_tensor(bgr, None)


def train_quick(num_feat: int, num_block: int, iters: int, seed: int = 0):
    """A small AdderEDSR trained with Adam on HR crops of the demo's training photos."""
    from addersr_plugin.archs import AdderEDSR

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    hrs = [modcrop(load_photo(n), SCALE) for n in TRAIN_PHOTOS]
    net = AdderEDSR(3, 3, num_feat=num_feat, num_block=num_block, upscale=SCALE)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters, eta_min=1e-5)
    net.train()
    gt = 64
    for _ in range(iters):
        lr_b, hr_b = [], []
        for _ in range(8):
            hr = hrs[rng.integers(len(hrs))]
            top, left = rng.integers(0, hr.shape[0] - gt) // 2 * 2, rng.integers(0, hr.shape[1] - gt) // 2 * 2
            crop = hr[top:top + gt, left:left + gt]
            lr_b.append(photo_tensor(bicubic_downscale(crop, SCALE)))
            hr_b.append(photo_tensor(crop))
        loss = (net(torch.cat(lr_b)) - torch.cat(hr_b)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval(), dict(type="AdderEDSR", num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_block=num_block,
                            upscale=SCALE)


# The photo selection of this run (set by main from --score-dir/--calib-dir and the models' data):
# PHOTOS["scored"] and PHOTOS["calib"] are {name: (HR path, LR path)}.
PHOTOS: dict = {}


def calibration_crops(n: int | None = None, size: int | None = None, seed: int = 1):
    """Crops of the calibration photos (never a scored one): --calib-crops of --calib-size² by default."""
    return int8_photos.calibration_crops(PHOTOS["calib"], n or PHOTOS["calib_crops"], size or PHOTOS["calib_size"],
                                         seed)


def y_psnr(net, scale: int) -> float:
    """Mean Y-PSNR (border ``scale``) on the scored photos; ``net=None``: MATLAB bicubic."""
    from basicsr.utils import tensor2img

    from addersr_plugin.scoring import bicubic_upscale, y_psnr_ssim

    vals = []
    for _name, (hr_path, lr_path) in sorted(PHOTOS["scored"].items()):
        hr, lr = read_image(hr_path), read_image(lr_path)
        if net is None:
            sr = bicubic_upscale(lr, scale)
        else:
            with torch.inference_mode():
                sr = tensor2img(net(photo_tensor(lr)), rgb2bgr=True, min_max=(0, 1))
        vals.append(y_psnr_ssim(sr, hr, scale)[0])
    return float(np.mean(vals))


def edsr_int8_model(edsr):
    """EDSR-int8 as ``edsr_int8.py`` builds it (FX, the convolutions quantized between stubs, the
    mean shift float, per-channel weights, x86 engine), calibrated on the calibration crops; or None."""
    try:
        return edsr_int8.edsr_int8_fx(edsr, calibration_crops())
    except Exception as exc:  # pragma: no cover - depends on the torch build
        print(f"torch.ao EDSR-int8 unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def load_or_train(args):
    """The float AdderEDSR to measure: --opt/--model, else the quick model (cached in --cache)."""
    if args.opt and args.model:
        from addersr_plugin.loading import load_generator, read_options

        net, scale, _ = load_generator(args.opt, args.model, None, "cpu")
        return net, dict(read_options(args.opt)["network_g"]), scale, f"{args.model} ({args.opt})"
    from addersr_plugin.archs import AdderEDSR

    desc = (f"AdderEDSR {args.num_feat} feats / {args.num_block} blocks trained here for {args.iters} Adam steps "
            "on the demo training photos")
    if args.cache and os.path.isfile(args.cache):
        saved = torch.load(args.cache, weights_only=True)
        if saved.get("key") == [args.num_feat, args.num_block, args.iters]:
            net = AdderEDSR(3, 3, num_feat=args.num_feat, num_block=args.num_block, upscale=SCALE)
            net.load_state_dict(saved["params"])
            return net.eval(), saved["network_g"], SCALE, desc + f" (cached in {args.cache})"
    net, net_g = train_quick(args.num_feat, args.num_block, args.iters)
    if args.cache:
        torch.save({"key": [args.num_feat, args.num_block, args.iters], "params": net.state_dict(),
                    "network_g": net_g}, args.cache)
    return net, net_g, SCALE, desc


def time_models(adder_net, net_g, scale, repeat, with_ao=True) -> dict:
    """Seconds per 1280x720 output for AdderEDSR int8/fp32, EDSR fp32 (and int8 by torch.ao) of
    the same size, interleaved rounds, best round's median."""
    from basicsr.archs.edsr_arch import EDSR

    qnet, _ = quantize_model(adder_net, calibration_crops(), "minmax")  # the method does not change the time
    edsr = EDSR(3, 3, num_feat=net_g.get("num_feat", 64), num_block=net_g.get("num_block", 16),
                upscale=scale).eval()
    import copy

    edsr_cl = copy.deepcopy(edsr).to(memory_format=torch.channels_last)  # oneDNN's faster layout
    lr = torch.rand(1, 3, 720 // scale, 1280 // scale)
    # the integer network runs channels_last (quantize_model's result): NHWC end to end
    models = {"AdderEDSR-int8 (ours)": qnet, "AdderEDSR-fp32": adder_net, "EDSR-fp32": edsr,
              "EDSR-fp32, channels_last": edsr_cl}
    eq = edsr_int8_model(edsr) if with_ao else None
    if eq is not None:
        models["EDSR-int8 (FX)"] = eq
    times = {}
    for _ in range(2):
        for name, m in models.items():
            t = bench(lambda m=m: m(lr), repeat)
            times[name] = min(times.get(name, t), t)
    base = times["EDSR-fp32"]
    best = min(base, times["EDSR-fp32, channels_last"])  # EDSR-fp32 in its faster layout
    return {name: {"seconds": t, "vs_edsr_fp32": t / base, "speedup_vs_edsr_fp32": base / t,
                   "speedup_vs_best_edsr_fp32": best / t} for name, t in times.items()}


def select_photos(args) -> None:
    """Fill PHOTOS: scored photos outside every measured model's training and selection, and
    calibration photos disjoint from them (int8_photos)."""
    def seen(names):
        out = int8_photos.seen_by(args.opt, names) if args.opt else int8_photos.quick_model_photos(TRAIN_PHOTOS)
        if args.edsr_opt:  # EDSR is scored on the same photos, so they must be new to it as well
            out = {**int8_photos.seen_by(args.edsr_opt, names), **out}
        return out

    scored, left_out, calib = int8_photos.choose(args.score_dir, args.calib_dir, SCALE, seen)
    PHOTOS.update(scored=scored, left_out=left_out, calib=calib, calib_crops=args.calib_crops,
                  calib_size=args.calib_size)


def end_to_end(args) -> dict:
    t0 = time.perf_counter()
    net, net_g, scale, source = load_or_train(args)
    if scale != SCALE:
        raise int8_photos.PhotoSetError(f"the model is x{scale}; this benchmark scores x{SCALE} photos")
    prep_s = time.perf_counter() - t0
    qnet, report = quantize_model(net, calibration_crops(), args.method)
    psnr = {"AdderEDSR-int8 (ours)": y_psnr(qnet, scale), "AdderEDSR-fp32": y_psnr(net, scale),
            "bicubic": y_psnr(None, scale)}
    if args.edsr_opt:
        from addersr_plugin.loading import load_generator

        edsr, _, _ = load_generator(args.edsr_opt, args.edsr_model, None, "cpu")
        psnr["EDSR-fp32"] = y_psnr(edsr, scale)
        eq = None if args.quick else edsr_int8_model(edsr)
        if eq is not None:
            psnr["EDSR-int8 (FX)"] = y_psnr(eq, scale)
    rows = {name: {} for name in psnr if name != "bicubic"} if args.quick else \
        time_models(net, net_g, scale, args.e2e_repeat)
    for name, r in rows.items():
        r["y_psnr"] = psnr.get(name)
    rows["bicubic"] = {"y_psnr": psnr["bicubic"]}
    out = {"source": source, "prepare_seconds": prep_s, "network_g": net_g, "scale": scale,
           "calibration": report["method"], "psnr_vs_float_calib": report["psnr_vs_float"], "rows": rows,
           "y_psnr_loss_int8_db": psnr["AdderEDSR-fp32"] - psnr["AdderEDSR-int8 (ours)"],
           "scored_photos": sorted(PHOTOS["scored"]), "left_out_photos": dict(PHOTOS["left_out"]),
           "calibration_photos": sorted(PHOTOS["calib"]),
           "calibration_crops": [PHOTOS["calib_crops"], PHOTOS["calib_size"]], "quick": bool(args.quick)}
    if args.baseline_size and not args.quick and (net_g.get("num_feat"), net_g.get("num_block")) != (64, 16):
        from addersr_plugin.archs import AdderEDSR

        big = AdderEDSR(3, 3, num_feat=64, num_block=16, upscale=scale).eval()
        big_g = dict(type="AdderEDSR", num_feat=64, num_block=16, upscale=scale)
        out["baseline_size_rows"] = time_models(big, big_g, scale, args.e2e_repeat)
    return out


# --------------------------------------------------------------------------- report

def markdown(result: dict) -> str:
    env = result["env"]
    lines = [(f"Measured {env['date']}. " if env.get("date") else "")
             + f"Machine: {env['cpu']}, {env['threads']} threads, torch {env['torch']}, "
             f"load average {env['loadavg_before']} before / {env['loadavg_after']} after.", ""]
    if "layer" in result:
        lines += ["EDSR body layer, N=16, 64->64, 48x48, 3x3 (median of repeats, best of 3 interleaved rounds):", "",
                  "| layer forward | ms | × fp32 F.conv2d (NCHW) | × fp32 F.conv2d, faster layout |",
                  "|---|---:|---:|---:|"]
        for name, r in result["layer"].items():
            lines.append(f"| {name} | {r['seconds'] * 1e3:.1f} | {r['vs_conv']:.2f} | {r['vs_best_conv']:.2f} |")
        lines.append("")
    if "e2e" in result:
        e = result["e2e"]
        what = (f"x{e['scale']}, quality only (--quick: nothing timed)" if e.get("quick") else
                f"x{e['scale']} upscale to 1280x720 (input {1280 // e['scale']}x{720 // e['scale']})")
        crops, size = e["calibration_crops"]
        lines += [f"{what}, model: {e['source']}; calibration {e['calibration']} on {crops} crops of {size}² from "
                  f"{', '.join(e['calibration_photos'])} (PSNR vs float on them: "
                  + ", ".join(f"{k} {v:.2f} dB" for k, v in e["psnr_vs_float_calib"].items()) + ").", "",
                  "| model | s / image | speed-up vs EDSR-fp32 (NCHW) | speed-up vs EDSR-fp32, faster layout "
                  "| Y-PSNR scored photos (dB) |", "|---|---:|---:|---:|---:|"]
        for name, r in e["rows"].items():
            t = f"{r['seconds']:.2f}" if "seconds" in r else "–"
            sp = f"{r['speedup_vs_edsr_fp32']:.2f}×" if "seconds" in r else "–"
            sb = f"{r['speedup_vs_best_edsr_fp32']:.2f}×" if "seconds" in r else "–"
            ps = f"{r['y_psnr']:.2f}" if r.get("y_psnr") is not None else "–"
            lines.append(f"| {name} | {t} | {sp} | {sb} | {ps} |")
        lines += ["", f"Y-PSNR loss of int8 vs fp32 AdderEDSR: {e['y_psnr_loss_int8_db']:.3f} dB.", "",
                  f"Scored photos ({len(e['scored_photos'])}, outside the models' training, calibration and "
                  f"selection): {', '.join(e['scored_photos'])}."]
        if e["left_out_photos"]:
            lines.append("Left out of scoring: " + "; ".join(f"{k} ({v})" for k, v in e["left_out_photos"].items())
                         + ".")
        if "baseline_size_rows" in e:
            lines += ["", "Same timing at EDSR-baseline size (64 feats, 16 blocks; untrained weights, calibrated "
                          "on the calibration crops: the speed does not depend on the weights):", "",
                      "| model (64/16) | s / image | speed-up vs EDSR-fp32 (NCHW) | speed-up vs EDSR-fp32, faster "
                      "layout |", "|---|---:|---:|---:|"]
            for name, r in e["baseline_size_rows"].items():
                lines.append(f"| {name} | {r['seconds']:.2f} | {r['speedup_vs_edsr_fp32']:.2f}× | "
                             f"{r['speedup_vs_best_edsr_fp32']:.2f}× |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--opt", help="option file of a trained AdderEDSR (with --model)")
    p.add_argument("--model", help="trained float checkpoint (with --opt)")
    p.add_argument("--edsr-opt", help="option file of the trained EDSR twin, for its Y-PSNR (with --edsr-model)")
    p.add_argument("--edsr-model", help="trained EDSR checkpoint (with --edsr-opt)")
    p.add_argument("--method", default="auto", help="calibration method (default auto)")
    p.add_argument("--num-feat", type=int, default=32)
    p.add_argument("--num-block", type=int, default=4)
    p.add_argument("--iters", type=int, default=300, help="training steps of the quick model (default 300)")
    p.add_argument("--repeat", type=int, default=5, help="timed calls per layer case per round")
    p.add_argument("--e2e-repeat", type=int, default=3, help="timed calls per model per round")
    p.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "addersr_bench_int8_model.pth"),
                   help="where the quick model is kept between runs ('' to retrain)")
    p.add_argument("--no-baseline-size", dest="baseline_size", action="store_false",
                   help="skip the 64-feature/16-block timing")
    p.add_argument("--skip-layer", action="store_true")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", default=None,
                   help="output JSON, which must not exist yet: one file per run, never an earlier one "
                        "overwritten (default bench_int8_<UTC date_time>.json)")
    p.add_argument("--score-dir", default=int8_photos.SCORE_DIR,
                   help=f"photos scored, HR/ + LR_bicubic/X2/ (default {int8_photos.SCORE_DIR}); those the models "
                        "were trained or validated on are left out")
    p.add_argument("--calib-dir", default=int8_photos.CALIB_DIR,
                   help=f"photos calibration crops come from (default {int8_photos.CALIB_DIR})")
    p.add_argument("--calib-crops", type=int, default=32, help="calibration crops (default 32)")
    p.add_argument("--calib-size", type=int, default=64, help="calibration crop size, LR pixels (default 64)")
    p.add_argument("--quick", action="store_true",
                   help="quality only: no timing, no torch.ao model, no layer benchmark (a smoke run)")
    args = p.parse_args(argv)
    if args.calib_crops < 1 or args.calib_size < 8:
        p.error("--calib-crops must be at least 1 and --calib-size at least 8")
    if bool(args.opt) != bool(args.model):
        p.error("--opt and --model go together")
    if bool(args.edsr_opt) != bool(args.edsr_model):
        p.error("--edsr-opt and --edsr-model go together")
    started = time.gmtime()
    if args.json is None:
        args.json = time.strftime("bench_int8_%Y-%m-%d_%H%M%S.json", started)
    if os.path.exists(args.json):
        p.error(f"--json {args.json}: the file exists; a results file is never overwritten (one file per run): "
                "give a new name, e.g. with the date and time")
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {"env": {"date": time.strftime("%Y-%m-%d %H:%M UTC", started),
                      "command": "python benchmarks/bench_int8.py " + " ".join(sys.argv[1:] if argv is None else argv),
                      "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "loadavg_before": open("/proc/loadavg").read().split()[0]}}
    try:
        with open("/proc/cpuinfo") as f:
            result["env"]["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        if not args.skip_e2e:
            select_photos(args)
        if not args.skip_layer and not args.quick:
            result["layer"] = layer_bench(args.repeat)
        if not args.skip_e2e:
            result["e2e"] = end_to_end(args)
    except (int8_photos.PhotoSetError, LoadError, DatasetError) as exc:
        print(f"bench_int8: error: {exc}", file=sys.stderr)
        return 2
    result["env"]["loadavg_after"] = open("/proc/loadavg").read().split()[0]
    print(markdown(result))
    try:
        with open(args.json, "x") as f:  # "x": never an earlier run's file overwritten
            json.dump(result, f, indent=2)
    except FileExistsError:
        print(json.dumps(result, indent=2))
        print(f"bench_int8: error: {args.json} appeared during the run; not overwritten (the JSON is above)",
              file=sys.stderr)
        return 2
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
