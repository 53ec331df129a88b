"""The int8 checkpoint format (``docs/int8.md``), version 1.

A ``torch.save``'d dict, loadable with ``weights_only=True``::

    {"format": "addersr-int8", "version": 1,
     "network_g": {...},            # the float network's options (BasicSR network_g)
     "scale": 2,                    # upscaling factor
     "quant_layers": {name: {"folded_norm": bn_name or None}},   # every integer adder layer
     "params": state_dict,          # of the integer network (float layers + integer buffers)
     "report": {...}}               # how it was calibrated (method, PSNR vs float, ...)

Loading rebuilds the float network from ``network_g``, puts empty integer layers (and
Identity for folded BNs) where ``quant_layers`` says, and loads ``params`` strictly.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Tuple

import torch
from torch import nn

from ..checkpoint_io import LoadError, read_checkpoint
from .calibrate import adder_layers
from .block import InferenceResidualBlock, InferenceShortcutBlock, replaceable, residual_replaceable
from .convert import _set_child, channels_last, skeleton
from .layer import QuantAdderConv2d

FORMAT = "addersr-int8"
VERSION = 1


class QuantCheckpointError(LoadError):
    """An int8 checkpoint is missing, corrupt, of another format/version, or does not fit its network."""


def is_int8_checkpoint(ckpt: Any) -> bool:
    """True for a loaded checkpoint dict in this format (any version)."""
    return isinstance(ckpt, dict) and ckpt.get("format") == FORMAT


def save_int8(model: nn.Module, path: str, network_g: Dict[str, Any], scale: int, report: Dict[str, Any]) -> None:
    """Write an integer network made by :func:`~addersr_plugin.quant.quantize_model`."""
    layers = {name: {"folded_norm": report.get("folded_norms", {}).get(name)}
              for name, m in model.named_modules() if isinstance(m, QuantAdderConv2d)}
    if not layers:
        raise QuantCheckpointError("the model has no integer adder layers; quantize it first")
    ckpt = {"format": FORMAT, "version": VERSION, "network_g": dict(network_g), "scale": int(scale),
            "quant_layers": layers, "params": model.state_dict(), "report": report}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name


def read_int8(path: str) -> Dict[str, Any]:
    """Load and validate the checkpoint dict (format, version, fields)."""
    return check_int8(read_checkpoint(path, "int8 checkpoint", QuantCheckpointError), path)


def check_int8(ckpt: Any, path: str) -> Dict[str, Any]:
    if not is_int8_checkpoint(ckpt):
        raise QuantCheckpointError(f"{path} is not an int8 checkpoint (no format={FORMAT!r}); "
                                   "make one with `addersr quantize`")
    if ckpt.get("version") != VERSION:
        raise QuantCheckpointError(f"{path} has int8 format version {ckpt.get('version')!r}; this addersr-plugin "
                                   f"reads version {VERSION}")
    for key, kind in (("network_g", dict), ("scale", int), ("quant_layers", dict), ("params", dict)):
        if not isinstance(ckpt.get(key), kind):
            raise QuantCheckpointError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    return ckpt


def build_int8(ckpt: Dict[str, Any], path: str = "<checkpoint>") -> Tuple[nn.Module, int]:
    """The integer network of a validated checkpoint dict (eval mode, CPU); returns (net, scale)."""
    from basicsr.archs import build_network  # basicsr after addersr_plugin's compat fixes

    try:
        net = build_network(dict(ckpt["network_g"]))
    except Exception as exc:
        raise QuantCheckpointError(f"{path}: cannot build network_g {ckpt['network_g']}: {exc}") from exc
    present = set(adder_layers(net))
    wanted = set(ckpt["quant_layers"])
    if present != wanted:
        raise QuantCheckpointError(f"{path}: integer layers {sorted(wanted ^ present)} do not match the adder "
                                   "layers of network_g")
    folds = {name: info["folded_norm"] for name, info in ckpt["quant_layers"].items() if info.get("folded_norm")}
    net = skeleton(net, folds)
    try:
        net.load_state_dict(ckpt["params"], strict=True)
    except RuntimeError as exc:
        raise QuantCheckpointError(f"{path}: params do not fit network_g: {exc}") from exc
    # Blocks that `quantize_model` verified and made fused/in-place (same function, faster).
    report = ckpt.get("report") if isinstance(ckpt.get("report"), dict) else {}
    for name in report.get("inplace_blocks", []):
        try:
            block = net.get_submodule(name)
        except AttributeError:
            continue
        if replaceable(block):
            _set_child(net, name, InferenceShortcutBlock(block))
        elif residual_replaceable(block):  # listed after its units, which are replaced by now
            _set_child(net, name, InferenceResidualBlock(block))
    return channels_last(net), int(ckpt["scale"])


def load_int8(path: str) -> Tuple[nn.Module, int, Dict[str, Any]]:
    """Read an int8 checkpoint file; returns (integer network, scale, calibration report)."""
    ckpt = read_int8(path)
    net, scale = build_int8(ckpt, path)
    return net, scale, ckpt.get("report", {})


def int8_generator(ckpt: Dict[str, Any], net_opt: Dict[str, Any], path: str, device="cpu") -> Tuple[nn.Module, int, str]:
    """For ``addersr upscale``: the integer network of a loaded checkpoint, checked against the
    option file's ``network_g``; returns (net, scale, "int8")."""
    ckpt = check_int8(ckpt, path)
    if torch.device(device).type != "cpu":
        raise QuantCheckpointError(f"{path} is an int8 model: it runs on the CPU only (no CUDA kernel); "
                                   "pass --device cpu")
    if dict(net_opt) != dict(ckpt["network_g"]):
        raise QuantCheckpointError(f"{path} was quantized from network_g {ckpt['network_g']}, but the option file "
                                   f"has {dict(net_opt)}")
    net, scale = build_int8(ckpt, path)
    return net, scale, "int8"
