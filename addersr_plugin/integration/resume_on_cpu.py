"""``--auto_resume`` that works on CPU machines and survives a state file cut short by a kill.

basicsr 1.4.2's ``load_resume_state`` calls ``torch.cuda.current_device()`` unconditionally (a
crash without a GPU), looks for states under ``./experiments`` rather than where the run saved
them (``opt['path']['training_states']``), and crashes on a truncated ``.state`` file. The
replacement scans the run's own state folder newest first and skips unusable states.
"""

from __future__ import annotations

import importlib
import os
import warnings

from .preimport import PATCHED


def _state_files_newest_first(state_dir: str) -> list[str]:
    if not os.path.isdir(state_dir):
        return []
    iters = []
    for name in os.listdir(state_dir):
        stem, ext = os.path.splitext(name)
        if ext == ".state" and stem.isdigit():
            iters.append(int(stem))
    return [os.path.join(state_dir, f"{it}.state") for it in sorted(iters, reverse=True)]


def _map_location(opt: dict):
    import torch

    if opt.get("num_gpu", 0) != 0 and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    # Optimizer.load_state_dict moves state onto the parameters' device anyway.
    return torch.device("cpu")


def load_resume_state(opt: dict):
    """CPU-safe replacement of ``basicsr.train.load_resume_state``.

    With ``--auto_resume`` it scans ``opt['path']['training_states']`` and takes the newest
    state that loads and whose ``net_g_<iter>.pth`` exists; a file a kill cut short is
    skipped with a warning instead of crashing the resume.
    """
    import torch
    from basicsr.utils.misc import check_resume

    location = _map_location(opt)
    if opt.get("auto_resume"):
        state_dir = opt["path"]["training_states"]
        models_dir = opt["path"].get("models", "")
        for path in _state_files_newest_first(state_dir):
            iteration = os.path.splitext(os.path.basename(path))[0]
            net_path = os.path.join(models_dir, f"net_g_{iteration}.pth")
            if models_dir and not os.path.isfile(net_path):
                warnings.warn(f"skipping resume state {path}: {net_path} is missing", stacklevel=2)
                continue
            try:
                state = torch.load(path, map_location=location)
            except Exception as exc:  # truncated by a kill, or otherwise unreadable
                warnings.warn(f"skipping unreadable resume state {path}: {exc}", stacklevel=2)
                continue
            opt["path"]["resume_state"] = path
            check_resume(opt, state["iter"])
            return state
        return None
    path = opt["path"].get("resume_state")
    if not path:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"resume_state does not exist: {path}")
    state = torch.load(path, map_location=location)
    check_resume(opt, state["iter"])
    return state


setattr(load_resume_state, PATCHED, True)


def patch_resume() -> bool:
    """Install :func:`load_resume_state` into ``basicsr.train``; True if it was installed."""
    train_mod = importlib.import_module("basicsr.train")
    if getattr(train_mod.load_resume_state, PATCHED, False):
        return False
    train_mod.load_resume_state = load_resume_state
    return True


__all__ = ["load_resume_state", "patch_resume"]
