"""Upscale images with a trained BasicSR generator: ``addersr upscale``.

    addersr upscale --opt OPT.yml --model net_g_X.pth --input IMG_OR_DIR --output DIR [--tile N --tile-pad P]

The network is built from ``network_g`` of the option file (any arch in BasicSR's registry,
the AdderSR ones included) and loads ``params_ema`` when the checkpoint has it, else
``params``. Large images are processed in tiles of N×N LR pixels, each with P pixels of
context on every side that are cut away after upscaling, so tiles join without seams as long
as P covers the network's receptive field. P defaults to that receptive-field radius
(:func:`receptive_radius`); a smaller ``--tile-pad`` is allowed with a warning.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings

import numpy as np
import torch

from .data.errors import DatasetError
from .data.images import IMAGE_EXTENSIONS, read_image, scan_images, write_png


class UpscaleError(ValueError):
    """The model, option file or input cannot be used for upscaling."""


class TileSeamWarning(UserWarning):
    """The tile context is smaller than the network's receptive field: tiles may show seams."""


def option_scale(opt: dict, opt_path: str) -> int:
    """The upscaling factor of an option file: ``scale`` and/or ``network_g.upscale``, which must agree."""
    top, net = opt.get("scale"), opt["network_g"].get("upscale")
    if top is not None and net is not None and top != net:
        raise UpscaleError(f"{opt_path}: scale ({top}) and network_g.upscale ({net}) disagree; "
                           "the network upscales by network_g.upscale, so set both to the same value")
    scale = net if net is not None else top
    if scale is None:
        raise UpscaleError(f"{opt_path}: neither 'scale' nor network_g.upscale is set")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise UpscaleError(f"{opt_path}: the scale must be a positive int, got {scale!r}")
    return scale


def load_generator(opt_path: str, model_path: str, param_key: str | None = None, device="cpu"):
    """Build ``network_g`` of ``opt_path`` and load ``model_path``; returns (net, scale, key used)."""
    from basicsr.archs import build_network

    from .cli.preflight import OptionError, check_arch, load_options

    try:
        opt = load_options(opt_path)
        check_arch(opt, opt_path)
    except OptionError as exc:
        raise UpscaleError(str(exc)) from exc
    net_opt = dict(opt["network_g"])
    scale = option_scale(opt, opt_path)
    if not os.path.isfile(model_path):
        raise UpscaleError(f"model file not found: {model_path}")
    try:
        ckpt = torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UpscaleError(f"cannot load {model_path}: {exc}") from exc
    if not isinstance(ckpt, dict):
        raise UpscaleError(f"{model_path} is not a BasicSR checkpoint (a dict of state dicts)")
    if ckpt.get("format") == "addersr-int8":  # made by `addersr quantize` (docs/int8.md)
        from .quant.checkpoint import int8_generator
        try:
            return int8_generator(ckpt, net_opt, model_path, device)
        except ValueError as exc:
            raise UpscaleError(str(exc)) from exc
    if param_key is None:
        param_key = "params_ema" if "params_ema" in ckpt else "params"
    if param_key not in ckpt:
        raise UpscaleError(f"{model_path} has no {param_key!r}; it holds: {', '.join(map(str, ckpt))}")
    state = {k[7:] if k.startswith("module.") else k: v for k, v in ckpt[param_key].items()}
    net = build_network(net_opt)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UpscaleError(f"{model_path} does not match network_g of {opt_path}: {exc}") from exc
    return net.to(device).eval(), scale, param_key


# Reach, in input pixels, of F.interpolate's kernels when upsampling (align_corners=False):
# bicubic reads 2 pixels either side, bilinear 1, nearest none; other modes are counted as 1.
_INTERPOLATION_REACH = {"bicubic": 2, "bilinear": 1, "nearest": 0, "nearest-exact": 0}


def _pair_of(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def receptive_radius(net: torch.nn.Module, in_channels: int = 3, probe: int = 16) -> int:
    """How many LR pixels either side of a pixel ``net``'s output there depends on.

    ``net`` runs once on a meta-device ``probe``×``probe`` input (shapes only: no compute, no
    memory, the weights untouched). Every module with a kernel (``nn.Conv2d``, ``AdderConv2d``,
    pooling) reaches ``dilation·(k−1)/2`` pixels at its own input resolution, which counts
    1/s LR pixel per pixel after a ×s upsampler; ``F.interpolate`` adds its kernel's reach.
    The sum over all layers is exact for a chain of layers (EDSR: residual shortcuts add
    nothing) and an upper bound where branches run side by side. Rounded up.
    """
    reach = [0.0]

    def add(extent: float, in_hw) -> None:
        reach[0] += max(extent / in_hw[0] * probe, extent / in_hw[1] * probe)

    def pre_hook(module, args):
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.dim() < 3:
            return
        ks, dil = _pair_of(module.kernel_size), _pair_of(getattr(module, "dilation", 1))
        extent = max((d * (k - 1)) / 2 for k, d in zip(ks, dil))
        add(extent, x.shape[-2:])

    class _Interpolations(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.nn.functional.interpolate:
                x = args[0] if args else kwargs["input"]
                mode = kwargs.get("mode", args[3] if len(args) > 3 else "nearest")
                add(_INTERPOLATION_REACH.get(mode, 1), x.shape[-2:])
            return func(*args, **kwargs)

    handles = [m.register_forward_pre_hook(pre_hook) for m in net.modules()
               if hasattr(m, "kernel_size") and not isinstance(m, torch.nn.ModuleList)]
    state = {k: torch.empty_like(v, device="meta") for k, v in
             [*net.named_parameters(remove_duplicate=False), *net.named_buffers(remove_duplicate=False)]}
    try:
        with torch.no_grad(), _Interpolations():
            torch.func.functional_call(net, state, (torch.empty(1, in_channels, probe, probe, device="meta"),))
    finally:
        for h in handles:
            h.remove()
    return math.ceil(reach[0] - 1e-9)


def resolve_tile_pad(net: torch.nn.Module, tile_pad: int | None, in_channels: int = 3) -> int:
    """``tile_pad``, or the network's receptive-field radius when it is None.

    A ``tile_pad`` below that radius is used as given, with a :class:`TileSeamWarning`.
    """
    if tile_pad is not None and tile_pad < 0:
        raise UpscaleError(f"tile_pad must be >= 0, got {tile_pad}")
    try:
        radius = receptive_radius(net, in_channels)
    except Exception as exc:  # an arch the shape probe cannot run; say so rather than guess silently
        fallback = 10 if tile_pad is None else tile_pad
        warnings.warn(f"cannot derive the network's receptive field ({type(exc).__name__}: {exc}); "
                      f"using a tile context of {fallback} LR pixels, tiles may show seams", TileSeamWarning,
                      stacklevel=2)
        return fallback
    if tile_pad is None:
        return radius
    if tile_pad < radius:
        warnings.warn(f"tile context {tile_pad} is below the network's receptive-field radius of {radius} LR "
                      f"pixels: tiles may show seams (leave --tile-pad unset to use {radius})", TileSeamWarning,
                      stacklevel=2)
    return tile_pad


@torch.inference_mode()
def upscale_tensor(net, lq: torch.Tensor, scale: int, tile: int | None = None,
                   tile_pad: int | None = None) -> torch.Tensor:
    """``net(lq)`` for an (N, C, H, W) tensor, optionally tile by tile with ``tile_pad`` context.

    ``tile_pad=None`` uses the network's receptive-field radius (:func:`resolve_tile_pad`),
    with which tiles join exactly; an explicit value is used as given.
    """
    if not tile or (lq.shape[-2] <= tile and lq.shape[-1] <= tile):
        return net(lq)
    if tile_pad is None:
        tile_pad = resolve_tile_pad(net, None, lq.shape[1])
    if tile < 1 or tile_pad < 0:
        raise UpscaleError(f"tile must be >= 1 and tile_pad >= 0, got {tile} and {tile_pad}")
    n, _, h, w = lq.shape
    out = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - tile_pad, 0), max(left - tile_pad, 0)
            t1, l1 = min(bottom + tile_pad, h), min(right + tile_pad, w)
            sr = net(lq[:, :, t0:t1, l0:l1])
            if tuple(sr.shape[-2:]) != ((t1 - t0) * scale, (l1 - l0) * scale):
                raise UpscaleError(
                    f"the network turns a {l1 - l0}x{t1 - t0} tile into {sr.shape[-1]}x{sr.shape[-2]}, "
                    f"not x{scale}: the scale does not match the network")
            if out is None:
                out = sr.new_empty(n, sr.shape[1], h * scale, w * scale)
            y, x = (top - t0) * scale, (left - l0) * scale
            out[:, :, top * scale:bottom * scale, left * scale:right * scale] = \
                sr[:, :, y:y + (bottom - top) * scale, x:x + (right - left) * scale]
    return out


def upscale_image(net, img: np.ndarray, scale: int, tile: int | None = None, tile_pad: int | None = None,
                  device="cpu") -> np.ndarray:
    """Upscale a uint8 HWC BGR image (as read by OpenCV); returns uint8 HWC BGR."""
    from basicsr.utils import img2tensor, tensor2img

    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    lq = img2tensor(img.astype(np.float32) / 255.0, bgr2rgb=True, float32=True).unsqueeze(0).to(device)
    sr = upscale_tensor(net, lq, scale, tile, tile_pad)
    if not torch.isfinite(sr).all():
        raise UpscaleError("the network produced NaN/Inf; the checkpoint is probably broken")
    return tensor2img(sr, rgb2bgr=True, min_max=(0, 1))


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
    except (UpscaleError, DatasetError) as exc:
        print(f"addersr upscale: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
