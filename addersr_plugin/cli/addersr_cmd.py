"""The ``addersr`` console command: dataset tools, upscaling, the demo and energy counts.

    addersr data div2k --hr DIR [--lr-root DIR] [--out datasets/DIV2K] [--scales 2 3 4]
    addersr data benchmark --hr DIR --name Set5 [--out datasets/benchmark] [--scales 2 3 4]
    addersr data demo [--out demo_output/datasets] [--scale 2]
    addersr data photos SRC [SRC ...] --out DIR [--reduce 4] [--holdout-per-source 2]
    addersr upscale --opt OPT --model PTH --input IMG_OR_DIR --output DIR [--tile N]
    addersr demo [...]
    addersr energy ...
    addersr quantize -opt OPT --model PTH --calib DIR --out INT8.pth

``upscale``, ``demo``, ``energy`` and ``quantize`` own their argument parsers; they are imported only
when used. Arguments are parsed before the package is loaded (:func:`addersr_plugin.load`, torch and
basicsr), so ``--help``, ``--version`` and usage errors answer at once through the console script.
"""

from __future__ import annotations

import argparse
import os
import sys

from .._version import __version__
from ..data.errors import DatasetError

PROG = "addersr"
_HELP = ("-h", "--help")
SCALES_HELP = "upscaling factors to make LR images for (default: 2 3 4)"
_DELEGATED = {
    "upscale": ("addersr_plugin.cli.upscale", "upscale images with a trained net_g_*.pth"),
    "demo": ("addersr_plugin.cli.demo", "build the photo demo set, train AdderEDSR and EDSR x2 on CPU, compare"),
    "energy": ("addersr_plugin.cli.energy", "count multiplications/additions and energy of a model"),
    "quantize": ("addersr_plugin.cli.quantize", "8-bit integer adder layers for a trained model (CPU, docs/int8.md)"),
}


def _data_parser(sub) -> None:
    data = sub.add_parser("data", help="build BasicSR datasets (LMDBs, benchmark folders)")
    kinds = data.add_subparsers(dest="kind", metavar="{div2k,benchmark,demo,photos}", required=True)

    d = kinds.add_parser("div2k", help="DIV2K HR (+LR) -> sub-image LMDBs for training")
    d.add_argument("--hr", required=True, help="folder of HR images, e.g. DIV2K_train_HR")
    d.add_argument("--lr-root", default=None,
                   help="folder with X2/, X3/, X4/ of DIV2K's LR images (0001x2.png ...); "
                        "default: make LR with MATLAB bicubic")
    d.add_argument("--out", default="datasets/DIV2K", help="output folder (default datasets/DIV2K)")
    d.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4], help=SCALES_HELP)
    d.add_argument("--crop", type=int, default=480, help="HR sub-image size (default 480)")
    d.add_argument("--step", type=int, default=240, help="HR sub-image stride (default 240)")
    d.add_argument("--workers", type=int, default=1, help="processes for cropping (default 1)")

    b = kinds.add_parser("benchmark", help="a benchmark test set (Set5, Set14, B100, Urban100) from HR images")
    b.add_argument("--hr", required=True, help="folder of the set's HR images")
    b.add_argument("--name", required=True, help="set name, e.g. Set5")
    b.add_argument("--out", default="datasets/benchmark", help="output root (default datasets/benchmark)")
    b.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4], help=SCALES_HELP)

    m = kinds.add_parser("demo", help="the real-photo demo set from scikit-image's photos")
    m.add_argument("--out", default="demo_output/datasets", help="output folder (default demo_output/datasets)")
    m.add_argument("--scale", type=int, default=2, help="upscaling factor of the LR images (default 2)")

    p = kinds.add_parser("photos", help="folders of photographs -> train LMDBs + held-out whole photos",
                         description="Each SRC folder is one photo collection ('skimage' = scikit-image's "
                                     "photos). JPEG photos are reduced by --reduce with MATLAB bicubic; whole "
                                     "photos are held out per source; see docs/quality.md.")
    p.add_argument("sources", nargs="+", metavar="SRC", help="photo folder, or 'skimage'")
    p.add_argument("--out", required=True, help="output folder (must not hold a finished dataset)")
    p.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4], help=SCALES_HELP)
    p.add_argument("--reduce", type=int, default=4, help="integer reduction of JPEG photos (default 4)")
    p.add_argument("--holdout-per-source", type=int, default=2,
                   help="whole photos held out of every source (default 2; stable choice by name hash)")
    p.add_argument("--holdout", nargs="+", default=None, metavar="NAME",
                   help="hold out these photos instead (file stem, or <source>_<stem>)")
    p.add_argument("--test", nargs="+", default=None, metavar="NAME",
                   help="put these photos in the test split (test/): never trained on, not for choosing")
    p.add_argument("--test-source", nargs="+", default=None, metavar="SRC",
                   help="whole collections for the test split only (a folder, 'skimage' or 'matplotlib')")
    p.add_argument("--crop", type=int, default=192,
                   help="HR training sub-image size (default 192); every photo must be at least this large "
                        "after reduction")
    p.add_argument("--step", type=int, default=96, help="HR sub-image stride (default 96)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="AdderSR tools. Training and testing go through `basicsr train|test -opt FILE`.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s (addersr-plugin) {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{data,upscale,demo,energy,quantize}", required=True)
    _data_parser(sub)
    for name, (_module, help_text) in _DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _run_data(args: argparse.Namespace) -> None:
    if args.kind == "div2k":
        from ..data.div2k import prepare_div2k

        paths = prepare_div2k(args.hr, args.out, scales=args.scales, lr_root=args.lr_root,
                              crop=args.crop, step=args.step, workers=args.workers)
    elif args.kind == "benchmark":
        from ..data.benchmark import prepare_benchmark

        paths = {args.name: prepare_benchmark(args.hr, args.out, args.name, args.scales)}
    elif args.kind == "photos":
        from ..data.photos import prepare_photos

        manifest = prepare_photos(args.sources, args.out, scales=args.scales, reduce=args.reduce,
                                  holdout_per_source=args.holdout_per_source, holdout=args.holdout,
                                  test=args.test, test_sources=args.test_source, crop=args.crop, step=args.step)
        held = [p["file"] for p in manifest["photos"] if p["split"] == "heldout"]
        tested = [p["file"] for p in manifest["photos"] if p["split"] == "test"]
        print(f"{len(manifest['photos']) - len(held) - len(tested)} training photos -> "
              f"{manifest['train_sub_images']} sub-images; held out (validation): {', '.join(held)}"
              + (f"; test: {', '.join(tested)}" if tested else ""))
        paths = {"dataset": os.path.abspath(args.out)}
    else:
        from ..data.demo_set import prepare_demo_set

        paths = prepare_demo_set(args.out, args.scale)
    for label, path in paths.items():
        print(f"{label}: {path}")


def load_plugin() -> None:
    """What ``import addersr_plugin`` does, deferred by the console scripts until a command runs."""
    import addersr_plugin

    addersr_plugin.load()


def addersr_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in _DELEGATED:
        import importlib

        options = argv[1:argv.index("--")] if "--" in argv else argv[1:]
        if not any(a in _HELP for a in options):  # the command's own parser answers --help unloaded
            load_plugin()
        module = importlib.import_module(_DELEGATED[argv[0]][0])
        return int(module.main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    load_plugin()
    try:
        _run_data(args)
    except DatasetError as exc:
        print(f"{PROG} data {args.kind}: error: {exc}", file=sys.stderr)
        return 2
    return 0
