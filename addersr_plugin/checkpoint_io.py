"""Reading BasicSR checkpoints: the one place a ``.pth`` is opened and a state dict picked and loaded.

The bottom floor of the package beside ``ops`` (it imports torch only), so every library can use
it: the int8 format (``quant.checkpoint``), ``AdderSRModel``'s teacher and :mod:`..loading`, which
builds generators on top of it. Every failure is a :class:`LoadError`.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Dict, Mapping, Optional, Tuple

import torch


class LoadError(ValueError):
    """An option file, checkpoint or network that cannot be loaded as asked."""


def read_checkpoint(path: str, what: str = "model file", error: type = LoadError) -> Dict[str, Any]:
    """``torch.load`` of a checkpoint dict without unpickling code (``weights_only``).

    ``what`` names the file in messages; ``error`` (a :class:`LoadError` subclass) is raised.
    """
    if not os.path.isfile(path):
        raise error(f"{what} not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        why = damage(path)
        if why:  # torch's own words for these are "[Errno 22] Invalid argument" or a miniz internal
            raise error(f"cannot read {what} {path}: {why}") from exc
        raise error(f"cannot read {what} {path} (corrupt or not a torch file): {exc}") from exc
    if not isinstance(ckpt, dict):
        raise error(f"{path} is not a BasicSR checkpoint (a dict of state dicts)")
    return ckpt


BARE = "state dict"  # the "key" reported for a checkpoint that is a state dict itself


def is_bare_state_dict(ckpt: Mapping[str, Any]) -> bool:
    """A plain ``torch.save(net.state_dict())`` (what other tools write): every value a tensor."""
    return bool(ckpt) and all(isinstance(v, torch.Tensor) for v in ckpt.values())


_ZIP_HEAD = b"PK\x03\x04"  # a torch.save file is a zip archive: its first local header...
_ZIP_END = b"PK\x05\x06"  # ...and its end-of-directory record, within the last 64 KiB + 22 bytes


def damage(path: str) -> Optional[str]:
    """What is visibly wrong with a file ``torch.load`` refused, in words, or None when nothing
    is: empty, truncated (a zip archive whose closing directory is missing: an interrupted copy or
    save), or not a torch file at all (neither a zip archive nor a legacy pickle)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(max(0, size - (1 << 16) - 22))
            tail = f.read()
    except OSError:
        return None
    if size == 0:
        return "the file is empty (0 bytes)"
    if head == _ZIP_HEAD:
        if _ZIP_END not in tail:
            return (f"the file is truncated ({size} bytes): it starts as a torch.save zip archive but its closing "
                    "directory is missing (an interrupted copy or save); copy or save it again")
        return None
    if head[:1] != b"\x80":  # a legacy (non-zip) torch file is a pickle, which starts with 0x80
        return "not a torch file: a torch.save file is a zip archive (or a legacy pickle), this one is neither"
    return None


def checkpoint_state(ckpt: Mapping[str, Any], path: str, param_key: Optional[str] = None) -> Tuple[dict, str]:
    """(state dict, key used): ``param_key``, else ``params_ema`` when present, else ``params``, else
    the checkpoint itself when it is a bare state dict (key :data:`BARE`); a DDP ``module.`` prefix
    is stripped."""
    if param_key is None:
        if "params_ema" not in ckpt and "params" not in ckpt and is_bare_state_dict(ckpt):
            param_key = BARE
        else:
            param_key = "params_ema" if "params_ema" in ckpt else "params"
    if param_key == BARE:
        state = ckpt
    elif param_key not in ckpt:
        raise LoadError(f"{path} has no {param_key!r}; it holds: {', '.join(map(str, ckpt))}")
    else:
        state = ckpt[param_key]
    if not isinstance(state, Mapping):
        raise LoadError(f"{path}: {param_key!r} is not a state dict (a {type(state).__name__})")
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    return state, param_key


_BLOCK = re.compile(r"^body\.(\d+)\.")
_UPSAMPLER = re.compile(r"^upsample\.\d+\.weight$")


def describe_state(state: Mapping[str, Any]) -> Optional[str]:
    """"64 features / 16 blocks / ×4" for an EDSR-like state dict (features: the first convolution's
    outputs; blocks: ``body.<i>``; scale: each pixel-shuffle convolution of ``upsample`` makes
    r²·C channels from C); the parts that cannot be read from the keys are left out."""
    weights = [(k, v) for k, v in state.items() if isinstance(v, torch.Tensor) and v.dim() == 4]
    if not weights:
        return None
    parts = [f"{weights[0][1].shape[0]} features"]
    blocks = {int(m.group(1)) for m in map(_BLOCK.match, state) if m}
    parts.append(f"{len(blocks)} block{'s' * (len(blocks) != 1)}" if blocks else f"{len(weights)} convolutions")
    scale = 1
    for k, v in weights:
        if _UPSAMPLER.match(k) and v.shape[1]:
            scale *= round(math.sqrt(v.shape[0] / v.shape[1]))
    if any(_UPSAMPLER.match(k) for k, _ in weights):
        parts.append(f"×{scale}")
    return " / ".join(parts)


def _names(keys, limit: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def mismatch(state: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """What differs between a checkpoint's state dict and a network's, in one line (not every key)."""
    ours, theirs = describe_state(state), describe_state(expected)
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    reshaped = sorted(k for k in set(state) & set(expected)
                      if getattr(state[k], "shape", None) != getattr(expected[k], "shape", None))
    found = []
    if ours and theirs and ours != theirs:
        found.append(f"the checkpoint is {ours}, the network {theirs}")
    if missing:
        found.append(f"{len(missing)} keys missing from the checkpoint: {_names(missing)}")
    if unexpected:
        found.append(f"{len(unexpected)} unexpected keys: {_names(unexpected)}")
    if reshaped:
        k = reshaped[0]
        found.append(f"{len(reshaped)} tensors of another shape, e.g. {k} {tuple(state[k].shape)} in the "
                     f"checkpoint, {tuple(expected[k].shape)} in the network")
    return "; ".join(found)


def strict_load(net: torch.nn.Module, state: Mapping[str, Any], path: str, where: str) -> torch.nn.Module:
    """``net.load_state_dict(state, strict=True)``; a mismatch names the checkpoint and ``where`` and says
    what differs (sizes where the keys tell them, else counts and a few key names)."""
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = mismatch(state, net.state_dict()) or str(exc)
        raise LoadError(f"{path} does not match {where}: {detail}") from exc
    return net


__all__ = ["LoadError", "BARE", "is_bare_state_dict", "read_checkpoint", "checkpoint_state", "describe_state",
           "mismatch", "strict_load"]
