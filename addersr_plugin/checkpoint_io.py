"""Reading BasicSR checkpoints: the one place a ``.pth`` is opened and a state dict picked and loaded.

The bottom floor of the package beside ``ops`` (it imports torch only), so every library can use
it: the int8 format (``quant.checkpoint``), ``AdderSRModel``'s teacher and :mod:`..loading`, which
builds generators on top of it. Every failure is a :class:`LoadError`.
"""

from __future__ import annotations

import os
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
        raise error(f"cannot read {what} {path} (corrupt or not a torch file): {exc}") from exc
    if not isinstance(ckpt, dict):
        raise error(f"{path} is not a BasicSR checkpoint (a dict of state dicts)")
    return ckpt


def checkpoint_state(ckpt: Mapping[str, Any], path: str, param_key: Optional[str] = None) -> Tuple[dict, str]:
    """(state dict, key used): ``param_key``, else ``params_ema`` when present, else ``params``;
    a DDP ``module.`` prefix is stripped."""
    if param_key is None:
        param_key = "params_ema" if "params_ema" in ckpt else "params"
    if param_key not in ckpt:
        raise LoadError(f"{path} has no {param_key!r}; it holds: {', '.join(map(str, ckpt))}")
    state = {k[7:] if k.startswith("module.") else k: v for k, v in ckpt[param_key].items()}
    return state, param_key


def strict_load(net: torch.nn.Module, state: Mapping[str, Any], path: str, where: str) -> torch.nn.Module:
    """``net.load_state_dict(state, strict=True)``; a mismatch names the checkpoint and ``where``."""
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise LoadError(f"{path} does not match {where}: {exc}") from exc
    return net


__all__ = ["LoadError", "read_checkpoint", "checkpoint_state", "strict_load"]
