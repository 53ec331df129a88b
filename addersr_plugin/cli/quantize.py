"""``addersr quantize``: a trained float network -> its integer-adder checkpoint.

    addersr quantize -opt OPT.yml --model net_g_X.pth --calib DIR --out net_int8.pth
                     [--method auto|minmax|percentile|mse] [--percentile 99.99]
                     [--calib-images 8] [--crop 128] [--param-key KEY]

Calibration images are network inputs (LR images, or any photos of the same kind); each is
centre-cropped to ``--crop`` pixels. An unreadable or damaged image is skipped with one
``addersr quantize: warning: ...`` line naming it (the next image takes its place); only a folder
with no usable image is an error. Progress bars on stderr show the calibration and each method
tried. The result names, per adder layer, the fraction of its input values on the calibration
images that the kept grid clamps, and warns about every layer above ``CLAMP_WARN`` (docs/int8.md).
Bad input exits with status 2 and one ``addersr quantize: error: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

# The parser must not import torch (`addersr quantize --help` in a fraction of a second): the
# library is imported in main(). METHODS mirrors quant.calibrate.METHODS (a test ties the two).
METHODS = ("minmax", "percentile", "mse")

PROG = "addersr quantize"
# A layer is reported as clamping too much above this fraction of its calibration inputs: 10× what
# `percentile` clamps by design at its default 99.99 (0.01 % on each side), so a warning means
# real activations, not outliers, fall off the grid (shrinking the range 4× costs 30+ dB).
CLAMP_WARN = 0.002


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _percent(text: str) -> float:
    value = float(text)
    if not 50 < value <= 100:
        raise argparse.ArgumentTypeError(f"must be in (50, 100], got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Quantize a trained adder network's adder layers to 8 bits "
                                                       "(integer SAD kernel, CPU); see docs/int8.md.")
    p.add_argument("-opt", "--opt", required=True, dest="opt", help="option YAML with the network_g of the model")
    p.add_argument("--model", required=True, help="trained float checkpoint (net_g_*.pth)")
    p.add_argument("--calib", required=True, help="folder of calibration images (network inputs)")
    p.add_argument("--out", required=True, help="output int8 checkpoint (.pth)")
    p.add_argument("--method", default="auto", choices=("auto",) + METHODS,
                   help="activation range: auto (best PSNR vs float on the calibration images; default), "
                        "minmax, percentile or mse")
    p.add_argument("--percentile", type=_percent, default=99.99, help="for --method percentile (default 99.99)")
    p.add_argument("--calib-images", type=_positive, default=8, help="images used (default 8)")
    p.add_argument("--crop", type=_positive, default=128, help="centre crop of each image in pixels (default 128)")
    p.add_argument("--param-key", default=None, help="checkpoint key (default: params_ema if present, else params)")
    return p


def _already_int8(model: str):
    """The error for an int8 checkpoint given as --model, naming its float source when recorded."""
    from ..checkpoint_io import read_checkpoint
    from ..loading import LoadError
    from ..quant.checkpoint import QuantCheckpointError

    try:
        source = read_checkpoint(model).get("report", {}).get("source")
    except (LoadError, AttributeError):
        source = None
    where = f" ({source})" if isinstance(source, str) else ""
    return QuantCheckpointError(f"{model} is already an int8 checkpoint (made by `addersr quantize`); quantize the "
                                f"float checkpoint it was made from{where} instead")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..data.errors import DatasetError
    from ..loading import LoadError, load_generator, read_options
    from ..quant.calibrate import CalibrationError
    from ..quant.checkpoint import QuantCheckpointError, save_int8
    from ..quant.convert import quantize_model
    from ..quant.images import read_calibration_images

    try:
        if os.path.isdir(args.out):
            raise QuantCheckpointError(f"--out must be a file path, got a folder: {args.out}")
        calib = read_calibration_images(args.calib, args.calib_images, args.crop)
        for name, why in calib.skipped:
            print(f"{PROG}: warning: skipped calibration image {name}: {why}", file=sys.stderr)
        net, scale, key = load_generator(args.opt, args.model, args.param_key, "cpu")
        if key == "int8":
            raise _already_int8(args.model)
        qnet, report = quantize_model(net, calib.batches, args.method, args.percentile, progress=True)
        report.update(source=os.path.abspath(args.model), param_key=key, calibration_images=calib.names,
                      skipped_images=[name for name, _ in calib.skipped])
        save_int8(qnet, args.out, read_options(args.opt)["network_g"], scale, report)
    except (LoadError, DatasetError, CalibrationError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    scores = ", ".join(f"{m} {v:.2f} dB" for m, v in report["psnr_vs_float"].items())
    skipped = f" ({len(calib.skipped)} unreadable skipped)" if calib.skipped else ""
    print(f"{len(report['layers'])} adder layers quantized, {len(report['folded_norms'])} BatchNorms folded; "
          f"PSNR vs float on {len(calib.batches)} calibration images{skipped}: {scores}; kept {report['method']}")
    print(f"activations clamped by the {report['method']} grids on the calibration images (fraction per layer):")
    width = max(map(len, report["clamped"]))
    for name, frac in report["clamped"].items():
        print(f"  {name:<{width}}  {100 * frac:8.4f} %")
    for name, frac in report["clamped"].items():
        if frac > CLAMP_WARN:
            print(f"{PROG}: warning: layer {name} clamps {100 * frac:.3f} % of its calibration inputs (more than "
                  f"{100 * CLAMP_WARN:g} %); try --method minmax or more --calib-images", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
