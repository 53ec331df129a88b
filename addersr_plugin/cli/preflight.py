"""Checks an option file must pass before ``basicsr train``/``test`` hands it to basicsr.

basicsr 1.4.2 reports an unknown architecture as a bare ``KeyError`` after 8 s of imports,
and bad data only inside dataloader workers; here each problem is one clear sentence.
"""

from __future__ import annotations

import os

from ..loading import LoadError, check_network, read_options


# Every option problem is a LoadError (one type for options and checkpoints, loading.py); the old name stays.
OptionError = LoadError


# Keys of train.optim_g that AdderSRModel reads itself; every other one goes to the optimizer.
_MODEL_KEYS = ("type", "lr", "adder_lr_mult")


def check_optimizer_keys(optim_g: dict, optimizer: type, path: str) -> None:
    """Every key of ``optim_g`` is one the optimizer takes: switching Adam -> SGD with
    ``--force_yml train:optim_g:type=SGD`` leaves Adam's ``betas``, which SGD would reject with a
    TypeError deep in basicsr's start-up."""
    import inspect

    accepted = set(inspect.signature(optimizer).parameters) - {"params"}
    extra = [k for k in optim_g if k not in _MODEL_KEYS and k not in accepted]
    if extra:
        keys = ", ".join(repr(k) for k in extra)
        raise OptionError(f"{path}: train.optim_g has {keys}, which {optimizer.__name__} does not take (it takes "
                          f"{', '.join(sorted(accepted - {'lr'}))}); remove {'them' if len(extra) > 1 else 'it'} from "
                          "the option file (--force_yml can change a value but not delete a key)")


def check_runtime(opt: dict, path: str, is_train: bool) -> None:
    import torch

    num_gpu = opt.get("num_gpu", "auto")
    if num_gpu not in ("auto", 0) and (not torch.cuda.is_available() or torch.cuda.device_count() < int(num_gpu)):
        raise OptionError(
            f"{path}: num_gpu is {num_gpu} but {torch.cuda.device_count()} CUDA device(s) are visible; "
            "set num_gpu: auto (or 0 for CPU)"
        )
    if is_train:
        optim = ((opt.get("train") or {}).get("optim_g") or {}).get("type")
        if opt.get("model_type") == "AdderSRModel":
            from ..models import OPTIMIZERS

            if optim is not None and optim not in OPTIMIZERS:
                raise OptionError(f"{path}: train.optim_g.type {optim!r} is not supported by AdderSRModel "
                                  f"(use one of {', '.join(OPTIMIZERS)})")
            teacher = (opt.get("path") or {}).get("pretrain_network_t")
            if opt.get("network_t") and (not teacher or not os.path.isfile(os.path.expanduser(teacher))):
                raise OptionError(f"{path}: network_t is set but path.pretrain_network_t is missing or does not "
                                  f"exist: {teacher}")
            if optim is not None:
                check_optimizer_keys(opt["train"]["optim_g"], OPTIMIZERS[optim], path)
        elif optim is not None and optim != "Adam":
            raise OptionError(f"{path}: train.optim_g.type {optim!r} is not supported by basicsr 1.4.2's "
                              "SRModel (only Adam); model_type: AdderSRModel also takes AdamW and SGD")
    else:
        weights = (opt.get("path") or {}).get("pretrain_network_g")
        if not weights:
            raise OptionError(f"{path}: path.pretrain_network_g (the trained net_g_*.pth) is required for test")
        if not os.path.isfile(os.path.expanduser(weights)):
            raise OptionError(f"{path}: path.pretrain_network_g does not exist: {weights}")
        val = opt.get("val")
        if not isinstance(val, dict) or "save_img" not in val:
            raise OptionError(f"{path}: basicsr test needs a 'val' section with save_img (and metrics)")
        if val["save_img"] and "suffix" not in val:
            # basicsr 1.4.2 reads opt['val']['suffix'] unguarded when it saves test images.
            raise OptionError(f"{path}: val.suffix is required when val.save_img is true (use 'suffix: ~')")


def preflight(path: str, force_yml: list[str] | None, is_train: bool) -> dict:
    """Run every check; returns the option dict. Raises OptionError or DatasetError."""
    from ..data.checks import check_datasets

    opt = read_options(path, force_yml)
    check_network(opt, path)
    check_runtime(opt, path, is_train)
    check_datasets(opt)
    return opt
