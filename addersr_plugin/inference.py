"""Running a trained generator on images: whole or tile by tile, seamless by the receptive field.

Large images are processed in tiles of N×N LR pixels, each with P pixels of context on every side
that are cut away after upscaling, so tiles join without seams as long as P covers the network's
receptive field. P defaults to that receptive-field radius (:func:`receptive_radius`); a smaller
one is allowed with a :class:`TileSeamWarning`. ``addersr upscale`` (``cli/upscale.py``) is the
command; the study scripts and the demo call these functions directly.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from .checkpoint_io import LoadError


class UpscaleError(LoadError):
    """The model, option file or input cannot be used for upscaling (a :class:`LoadError`)."""


class TileSeamWarning(UserWarning):
    """The tile context is smaller than the network's receptive field: tiles may show seams."""


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


# --precision of `addersr upscale`: the autocast dtype of the forward (None: plain float32).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def precision_dtype(precision: str, device_type: str):
    """The autocast dtype of ``precision`` on ``device_type`` (None for fp32); UpscaleError if unusable.

    fp16 on the CPU is refused: CPU autocast is meaningful in bfloat16 only (no fast float16
    kernels). The adder layers run in float32 under autocast either way (docs/adder_op.md).
    """
    if precision not in PRECISIONS:
        raise UpscaleError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device_type == "cpu":
        raise UpscaleError("precision fp16 needs a GPU: on the CPU use bf16 (CPU autocast has no fast float16 kernels)")
    if PRECISIONS[precision] is not None and device_type not in ("cpu", "cuda"):
        raise UpscaleError(f"precision {precision} is supported on cpu and cuda, not {device_type}")
    return PRECISIONS[precision]


def _forward(net, x: torch.Tensor, dtype) -> torch.Tensor:
    if dtype is None:
        return net(x)
    with torch.autocast(x.device.type, dtype=dtype):
        return net(x).float()  # the tiles and the image conversion work in float32


@torch.inference_mode()
def upscale_tensor(net, lq: torch.Tensor, scale: int, tile: int | None = None,
                   tile_pad: int | None = None, progress: bool = False, precision: str = "fp32") -> torch.Tensor:
    """``net(lq)`` for an (N, C, H, W) tensor, optionally tile by tile with ``tile_pad`` context.

    ``tile_pad=None`` uses the network's receptive-field radius (:func:`resolve_tile_pad`),
    with which tiles join exactly; an explicit value is used as given. ``progress`` shows a
    bar over the tiles (on a terminal only: tqdm's ``disable=None``). ``precision`` ``"bf16"``
    or ``"fp16"`` runs the forward under ``torch.autocast`` (:func:`precision_dtype`); the
    result is float32 either way.
    """
    dtype = precision_dtype(precision, lq.device.type)
    if not tile or (lq.shape[-2] <= tile and lq.shape[-1] <= tile):
        return _forward(net, lq, dtype)
    if tile_pad is None:
        tile_pad = resolve_tile_pad(net, None, lq.shape[1])
    if tile < 1 or tile_pad < 0:
        raise UpscaleError(f"tile must be >= 1 and tile_pad >= 0, got {tile} and {tile_pad}")
    n, _, h, w = lq.shape
    out = None
    corners = [(top, left) for top in range(0, h, tile) for left in range(0, w, tile)]
    if progress:
        from tqdm import tqdm

        corners = tqdm(corners, unit="tile", desc="tiles", leave=False, disable=None)
    for top, left in corners:
        bottom, right = min(top + tile, h), min(left + tile, w)
        t0, l0 = max(top - tile_pad, 0), max(left - tile_pad, 0)
        t1, l1 = min(bottom + tile_pad, h), min(right + tile_pad, w)
        sr = _forward(net, lq[:, :, t0:t1, l0:l1], dtype)
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


def is_grey(img: np.ndarray) -> bool:
    """One channel, or three identical ones (a grey photo saved as RGB)."""
    return img.shape[2] == 1 or (img.shape[2] == 3 and bool((img[:, :, :1] == img[:, :, 1:]).all()))


def upscale_image(net, img: np.ndarray, scale: int, tile: int | None = None, tile_pad: int | None = None,
                  device="cpu", alpha: np.ndarray | None = None, progress: bool = False,
                  precision: str = "fp32") -> np.ndarray:
    """Upscale a uint8 HWC BGR image (as read by OpenCV); returns uint8 HWC BGR.

    A grey image (one channel, or three equal ones) comes back grey with as many channels: the
    RGB network sees it as R = G = B and its small colour differences are averaged away, so no
    tint appears. ``alpha`` (H×W uint8, an RGBA image's transparency) is upscaled with bicubic
    interpolation and returned as a fourth channel (BGRA).
    """
    from basicsr.utils import img2tensor, tensor2img

    grey = is_grey(img)
    channels = img.shape[2]
    if channels == 1:
        img = np.repeat(img, 3, axis=2)
    lq = img2tensor(img.astype(np.float32) / 255.0, bgr2rgb=True, float32=True).unsqueeze(0).to(device)
    sr = upscale_tensor(net, lq, scale, tile, tile_pad, progress, precision)
    if not torch.isfinite(sr).all():
        raise UpscaleError("the network produced NaN/Inf; the checkpoint is probably broken")
    if grey:
        sr = sr.mean(dim=1, keepdim=True).expand(-1, channels, -1, -1).contiguous()
    out = tensor2img(sr[0], rgb2bgr=channels == 3, min_max=(0, 1))  # 3-D: one channel stays one
    if out.ndim == 2:
        out = out[:, :, None]
    if alpha is not None:
        import cv2

        size = (out.shape[1], out.shape[0])
        big = np.clip(cv2.resize(alpha, size, interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)
        out = np.concatenate([np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out, big[:, :, None]], axis=2)
    return out


__all__ = ["UpscaleError", "TileSeamWarning", "PRECISIONS", "precision_dtype", "receptive_radius",
           "resolve_tile_pad", "upscale_tensor", "upscale_image", "is_grey"]
