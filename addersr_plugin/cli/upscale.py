"""``addersr upscale``: upscale images with a trained BasicSR generator (float or int8).

    addersr upscale --opt OPT.yml --model net_g_X.pth --input IMG_OR_DIR --output DIR [--tile N --tile-pad P]

The network is built from ``network_g`` of the option file (any arch in BasicSR's registry, the
AdderSR ones included) and loads ``params_ema`` when the checkpoint has it, else ``params``
(:func:`~addersr_plugin.loading.load_generator`). ``--tile`` runs large images tile by tile with
the network's receptive field as context (:mod:`addersr_plugin.inference`).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from ..data.errors import DatasetError
from ..data.images import IMAGE_EXTENSIONS, read_image, scan_images, write_png
from ..inference import UpscaleError, resolve_tile_pad, upscale_image
from ..loading import LoadError, load_generator


def _inputs(path: str) -> list[str]:
    if os.path.isdir(path):
        return [os.path.join(path, n) for n in scan_images(path)]
    if os.path.isfile(path):
        if not path.lower().endswith(IMAGE_EXTENSIONS):
            raise UpscaleError(f"not an image file ({', '.join(IMAGE_EXTENSIONS)}): {path}")
        return [path]
    raise UpscaleError(f"input does not exist: {path}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="addersr upscale", description=__doc__.split("\n\n")[0])
    p.add_argument("--opt", required=True, help="option YAML with the network_g used for training")
    p.add_argument("--model", required=True, help="trained checkpoint, e.g. experiments/NAME/models/net_g_latest.pth")
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--output", required=True, help="output folder (created); files are <name>_x<scale>.png")
    p.add_argument("--tile", type=int, default=None, help="tile size in LR pixels (default: whole image)")
    p.add_argument("--tile-pad", type=int, default=None,
                   help="context LR pixels around each tile (default: the network's receptive-field radius)")
    p.add_argument("--param-key", default=None, help="checkpoint key (default: params_ema if present, else params)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        files = _inputs(args.input)
        net, scale, key = load_generator(args.opt, args.model, args.param_key, args.device)
        print(f"Loaded {key!r} weights from {args.model} (x{scale})")
        tile_pad = args.tile_pad
        if args.tile:
            tile_pad = resolve_tile_pad(net, tile_pad)
            print(f"Tiles of {args.tile}x{args.tile} LR pixels with {tile_pad} pixels of context")
        os.makedirs(args.output, exist_ok=True)
        for path in files:
            img = read_image(path)
            sr = upscale_image(net, img, scale, args.tile, tile_pad, args.device)
            out = os.path.join(args.output, f"{os.path.splitext(os.path.basename(path))[0]}_x{scale}.png")
            write_png(out, sr)
            print(f"{path} ({img.shape[1]}x{img.shape[0]}) -> {out} ({sr.shape[1]}x{sr.shape[0]})")
    except (LoadError, DatasetError) as exc:
        print(f"addersr upscale: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
