"""``addersr upscale``: upscale images with a trained BasicSR generator (float or int8).

    addersr upscale -opt OPT.yml --model net_g_X.pth --input IMG_OR_DIR --output DIR [--tile N --tile-pad P]
                    [--force_yml K=V ...] [--device cpu|cuda] [--param-key KEY]

The network is built from ``network_g`` of the option file (any arch in BasicSR's registry, the
AdderSR ones included) and loads ``params_ema`` when the checkpoint has it, else ``params``, or a
bare state dict (:func:`~addersr_plugin.loading.open_generator`); an int8 checkpoint of ``addersr
quantize`` carries its ``network_g`` and needs no option file. ``--tile`` runs large images tile by
tile with the network's receptive field as context (:mod:`addersr_plugin.inference`). An image that
cannot be read or upscaled is named and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys

PROG = "addersr upscale"


def _inputs(path: str) -> list[str]:
    from ..data.images import IMAGE_EXTENSIONS, scan_images
    from ..inference import UpscaleError

    if os.path.isdir(path):
        return [os.path.join(path, n) for n in scan_images(path)]
    if os.path.isfile(path):
        if not path.lower().endswith(IMAGE_EXTENSIONS):
            raise UpscaleError(f"not an image file ({', '.join(IMAGE_EXTENSIONS)}): {path}")
        return [path]
    raise UpscaleError(f"input does not exist: {path}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("-opt", "--opt", default=None, dest="opt",
                   help="option YAML with the network_g used for training (not needed for an int8 checkpoint)")
    p.add_argument("--force_yml", nargs="+", default=None, metavar="K=V",
                   help="override options of -opt as basicsr train|test do, e.g. network_g:num_block=4")
    p.add_argument("--model", default=None,
                   help="trained checkpoint, e.g. experiments/NAME/models/net_g_latest.pth (or --pretrained)")
    p.add_argument("--pretrained", default=None, metavar="NAME",
                   help="a model that ships with the package instead of --opt/--model (see --list-pretrained)")
    p.add_argument("--list-pretrained", action="store_true", help="list the shipped models with their test scores")
    p.add_argument("--input", default=None, help="an image file or a folder of images (required)")
    p.add_argument("--output", default=None, help="output folder (created; required); files are <name>_x<scale>.png")
    p.add_argument("--tile", type=int, default=None, help="tile size in LR pixels (default: whole image)")
    p.add_argument("--tile-pad", type=int, default=None,
                   help="context LR pixels around each tile (default: the network's receptive-field radius)")
    p.add_argument("--param-key", default=None,
                   help="checkpoint key (default: params_ema if present, else params, else a bare state dict)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: cuda when a GPU is visible, else cpu; always cpu for an "
                        "int8 checkpoint, which has CPU kernels only)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="float models: run the forward under autocast in bf16 or fp16 (fp16 needs a GPU; the adder "
                        "layers stay float32, docs/adder_op.md). Default fp32")
    return p


def _check_args(args) -> None:
    from ..inference import UpscaleError

    if args.tile is not None and args.tile < 1:
        raise UpscaleError(f"--tile must be a positive number of LR pixels, got {args.tile}")
    path = args.output
    if os.path.exists(path) and not os.path.isdir(path):
        raise UpscaleError(f"--output must be a folder, but {path} is a file (outputs are <name>_x<scale>.png "
                           "inside it)")


def _check_precision(precision: str, gen) -> None:
    """Refuse --precision before any image: an int8 network has integer kernels (no autocast), and
    fp16 needs a GPU (:func:`~addersr_plugin.inference.precision_dtype`)."""
    import torch

    from ..inference import UpscaleError, precision_dtype

    if precision != "fp32" and gen.key == "int8":
        raise UpscaleError(f"--precision {precision} is for float models; an int8 checkpoint runs its own integer "
                           "kernels: leave --precision at fp32")
    precision_dtype(precision, torch.device(gen.device).type)


def _upscale_all(gen, files: list[str], args) -> list[str]:
    """Upscale every file; returns the ones that failed (each named on stderr as it fails)."""
    from tqdm import tqdm

    from ..data.errors import DatasetError
    from ..data.images import read_image_alpha, write_png
    from ..inference import UpscaleError, upscale_image

    failed = []
    # disable=None: bars on a terminal only, so logs and pipes get the plain lines
    bar = tqdm(files, unit="image", desc="upscale", disable=True if len(files) < 2 else None)
    for path in bar:
        try:
            img, alpha = read_image_alpha(path)
            sr = upscale_image(gen.net, img, gen.scale, args.tile, args.tile_pad, gen.device, alpha=alpha,
                               progress=True, precision=args.precision)
            out = os.path.join(args.output, f"{os.path.splitext(os.path.basename(path))[0]}_x{gen.scale}.png")
            write_png(out, sr)
        except (DatasetError, UpscaleError, RuntimeError) as exc:  # RuntimeError: e.g. out of memory
            failed.append(path)
            bar.write(f"{PROG}: skipped {path}: {exc}", file=sys.stderr)
            continue
        bar.write(f"{path} ({img.shape[1]}x{img.shape[0]}) -> {out} ({sr.shape[1]}x{sr.shape[0]})", file=sys.stdout)
    return failed


def _list_pretrained() -> int:
    from .. import pretrained

    for name in pretrained.names():
        card = pretrained.card(name)
        test = card["test_scores"]
        print(f"{name}: {card['network_g']['type']} x{card['scale']}, {card['iterations']} iterations; test photos "
              f"{test['mean_y_psnr']:.2f} dB Y-PSNR (bicubic {test['bicubic_mean_y_psnr']:.2f})")
    if not pretrained.names():
        print("no pretrained model ships with this installation")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_pretrained:
        return _list_pretrained()
    if args.pretrained and (args.model or args.opt):
        parser.error("--pretrained replaces --opt/--model: give one or the other")
    if not args.pretrained and not args.model:
        parser.error("give --model (with --opt) or --pretrained NAME")
    for flag in ("input", "output"):
        if getattr(args, flag) is None:
            parser.error(f"the following arguments are required: --{flag}")
    from ..data.errors import DatasetError
    from ..inference import resolve_tile_pad
    from ..loading import LoadError, open_generator, open_pretrained

    try:
        files = _inputs(args.input)
        _check_args(args)
        if args.pretrained:
            gen, _card = open_pretrained(args.pretrained, args.device)
            source = f"the shipped model {args.pretrained}"
        else:
            gen = open_generator(args.opt, args.model, args.param_key, args.device, args.force_yml)
            source = args.model
        print(f"Loaded {gen.key!r} weights from {source} (x{gen.scale}) on {gen.device}")
        _check_precision(args.precision, gen)
        if args.tile:
            args.tile_pad = resolve_tile_pad(gen.shape_network(), args.tile_pad)
            print(f"Tiles of {args.tile}x{args.tile} LR pixels with {args.tile_pad} pixels of context")
        os.makedirs(args.output, exist_ok=True)
        failed = _upscale_all(gen, files, args)
    except (LoadError, DatasetError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if failed:
        print(f"{PROG}: {len(failed)} of {len(files)} images failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
