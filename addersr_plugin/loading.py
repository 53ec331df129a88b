"""The one loader: option files, the scale, and float or int8 generators and teachers from checkpoints.

Every command and library that reads an option file or a checkpoint comes here (``upscale``,
``quantize``, ``energy``, ``AdderSRModel``'s teacher, the benchmarks), so each problem has one
message and one error type, :class:`LoadError`:

* :func:`read_options`: the option dict as basicsr will see it (its YAML loader, ``--force_yml``);
* :func:`check_network`: ``network_g`` (or another network key) is there and its type registered;
* :func:`option_scale`: ``scale`` and ``network_g.upscale``, which must agree;
* :func:`read_checkpoint` / :func:`checkpoint_state` (from :mod:`.checkpoint_io`, the floor below,
  which the libraries use too): a BasicSR checkpoint's state dict (``params_ema`` when present,
  else ``params``; a DDP ``module.`` prefix stripped);
* :func:`load_network`: build a network and load a checkpoint into it, strictly;
* :func:`load_generator`: ``network_g`` of an option file with a float or an int8 checkpoint;
* :func:`load_pretrained`: a model that ships inside the package, by name.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from .checkpoint_io import LoadError, checkpoint_state, read_checkpoint, strict_load
from .quant.checkpoint import FORMAT as INT8_FORMAT
from .quant.checkpoint import is_int8_checkpoint as is_int8


# --------------------------------------------------------------------------- option files

def read_options(path: str, force_yml: Optional[list] = None) -> Dict[str, Any]:
    """The option dict as basicsr will see it, ``--force_yml`` overrides (``a:b:c=value``) included."""
    import yaml
    from basicsr.utils.options import _postprocess_yml_value, ordered_yaml

    if not os.path.isfile(path):
        raise LoadError(f"option file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            opt = yaml.load(f, Loader=ordered_yaml()[0])
    except yaml.YAMLError as exc:
        raise LoadError(f"option file {path} is not valid YAML: {exc}") from exc
    except OSError as exc:
        raise LoadError(f"cannot read option file {path}: {exc.strerror or exc}") from exc
    if not isinstance(opt, dict):
        raise LoadError(f"option file {path} does not hold a mapping of options")
    opt = copy.deepcopy(opt)
    for entry in force_yml or []:
        if "=" not in entry:
            raise LoadError(f"--force_yml entry must look like a:b:c=value, got {entry!r}")
        keys, value = (s.strip() for s in entry.split("=", 1))
        node = opt
        *parents, last = keys.split(":")
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise LoadError(f"--force_yml {entry!r}: {key!r} is not a section of {path}")
            node = node[key]
        node[last] = _postprocess_yml_value(value)
    return opt


def registered_archs() -> Tuple[list, list]:
    """(architectures of this plugin, architectures of basicsr and other plugins), sorted."""
    from basicsr.utils.registry import ARCH_REGISTRY

    ours, others = [], []
    for name, cls in ARCH_REGISTRY._obj_map.items():
        (ours if getattr(cls, "__module__", "").startswith("addersr_plugin.") else others).append(name)
    return sorted(ours), sorted(others)


def check_network(opt: Mapping[str, Any], path: str, key: str = "network_g") -> Dict[str, Any]:
    """``opt[key]`` with a registered ``type``; returns a copy of it."""
    net = opt.get(key)
    if not isinstance(net, dict) or "type" not in net:
        raise LoadError(f"{path}: {key!r} with a 'type' is required")
    ours, others = registered_archs()
    if net["type"] not in ours + others:
        raise LoadError(f"{path}: unknown architecture {net['type']!r} in {key}. Adder architectures of "
                        f"addersr-plugin: {', '.join(ours)}. BasicSR's own: {', '.join(others)}.")
    return dict(net)


def option_scale(opt: Mapping[str, Any], path: str) -> int:
    """The upscaling factor: ``scale`` and/or ``network_g.upscale``, which must agree."""
    top, net = opt.get("scale"), (opt.get("network_g") or {}).get("upscale")
    if top is not None and net is not None and top != net:
        raise LoadError(f"{path}: scale ({top}) and network_g.upscale ({net}) disagree; the network upscales by "
                        "network_g.upscale, so set both to the same value")
    scale = net if net is not None else top
    if scale is None:
        raise LoadError(f"{path}: neither 'scale' nor network_g.upscale is set")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise LoadError(f"{path}: the scale must be a positive int, got {scale!r}")
    return scale


def build_network(net_opt: Mapping[str, Any], where: str) -> torch.nn.Module:
    """BasicSR's ``build_network``, its failures as :class:`LoadError`."""
    from basicsr.archs import build_network as basicsr_build

    try:
        return basicsr_build(dict(net_opt))
    except KeyError as exc:
        raise LoadError(f"{where}: cannot build {net_opt.get('type')!r}: {exc.args[0] if exc.args else exc}") \
            from None
    except (TypeError, ValueError) as exc:
        raise LoadError(f"{where}: cannot build network of type {net_opt.get('type')!r}: {exc}") from None


def load_network(net_opt: Mapping[str, Any], model_path: str, where: str, param_key: Optional[str] = None,
                 device="cpu") -> Tuple[torch.nn.Module, str]:
    """Build ``net_opt`` and load ``model_path`` strictly; returns (net in eval mode on ``device``, key)."""
    state, key = checkpoint_state(read_checkpoint(model_path), model_path, param_key)
    net = strict_load(build_network(net_opt, where), state, model_path, where)
    return net.to(device).eval(), key


def _device_name(device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise LoadError(f"device {device!r} is not a device name; use cpu, cuda or cuda:N") from None


def resolve_device(device: Optional[str], int8: bool = False) -> torch.device:
    """``device`` checked (a name torch knows, a GPU that is there), or the default when it is None:
    the CPU for an int8 network (it has CPU kernels only), else CUDA when a GPU is visible."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() and not int8 else "cpu")
    dev = _device_name(device)
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise LoadError(f"device {device!r}: no CUDA GPU is visible (torch.cuda.is_available() is False); "
                            "use cpu")
        if dev.index is not None and dev.index >= count:
            raise LoadError(f"device {device!r}: only {count} CUDA GPU(s) are visible (cuda:0 to cuda:{count - 1})")
    elif dev.type != "cpu":
        raise LoadError(f"device {device!r} is not supported here; use cpu, cuda or cuda:N")
    return dev


@dataclass
class Generator:
    """A loaded generator: ``net`` (eval mode, on ``device``), its ``scale``, the checkpoint ``key``
    used (``"int8"`` for an integer network) and the float ``network_g`` options it was built from."""

    net: torch.nn.Module
    scale: int
    key: str
    network_g: Dict[str, Any]
    device: torch.device

    def shape_network(self) -> torch.nn.Module:
        """A network of the same layers for shape probes (:func:`addersr_plugin.inference.receptive_radius`):
        the net itself, or for an int8 net, whose integer layers read values, the float ``network_g``
        built on the meta device (the same receptive field, no memory)."""
        if self.key != "int8":
            return self.net
        with torch.device("meta"):
            return build_network(self.network_g, "network_g of the int8 checkpoint")


def open_generator(opt_path: Optional[str], model_path: str, param_key: Optional[str] = None,
                   device: Optional[str] = None, force_yml: Optional[list] = None) -> Generator:
    """``network_g`` of ``opt_path`` with ``model_path`` loaded: a float checkpoint (BasicSR's, or a bare
    state dict) or an int8 one made by ``addersr quantize``, which carries its own ``network_g``, so
    ``opt_path`` may be None for it. ``device`` None picks one (:func:`resolve_device`); ``force_yml``
    overrides options as in :func:`read_options`."""
    net_opt = scale = None
    if opt_path is not None:
        opt = read_options(opt_path, force_yml)
        net_opt = check_network(opt, opt_path)
        scale = option_scale(opt, opt_path)
    elif force_yml:
        raise LoadError("--force_yml changes an option file, and none was given")
    ckpt = read_checkpoint(model_path)
    if is_int8(ckpt):
        from .quant.checkpoint import check_int8, int8_generator

        try:
            if net_opt is None:
                net_opt = dict(check_int8(ckpt, model_path)["network_g"])
            # A device that is not the CPU is int8_generator's to refuse (it says why).
            dev = resolve_device(device, int8=True) if device is None else _device_name(device)
            net, scale, key = int8_generator(ckpt, net_opt, model_path, dev)
        except ValueError as exc:
            raise LoadError(str(exc)) from exc
        return Generator(net, scale, key, net_opt, dev)
    if net_opt is None:
        raise LoadError(f"{model_path} holds float weights only: give the option file whose network_g they "
                        "were trained with (only an int8 checkpoint of `addersr quantize` carries its own)")
    dev = resolve_device(device)
    state, key = checkpoint_state(ckpt, model_path, param_key)
    net = strict_load(build_network(net_opt, opt_path), state, model_path, f"network_g of {opt_path}")
    return Generator(net.to(dev).eval(), scale, key, net_opt, dev)


def load_generator(opt_path: str, model_path: str, param_key: Optional[str] = None, device="cpu"):
    """``network_g`` of ``opt_path`` with ``model_path`` loaded (a float checkpoint, or an int8 one made
    by ``addersr quantize``); returns (net, scale, key used; ``"int8"`` for an integer network)."""
    gen = open_generator(opt_path, model_path, param_key, device)
    return gen.net, gen.scale, gen.key


def load_pretrained(name: str, device="cpu"):
    """A model that ships with the package (:mod:`addersr_plugin.pretrained`): returns
    (net in eval mode, scale, its card)."""
    gen, info = open_pretrained(name, device)
    return gen.net, gen.scale, info


def open_pretrained(name: str, device: Optional[str] = None) -> Tuple[Generator, Dict[str, Any]]:
    """:func:`load_pretrained` as a :class:`Generator` (what ``addersr upscale --pretrained`` runs)."""
    from . import pretrained

    try:
        info = pretrained.card(name)
    except KeyError as exc:
        raise LoadError(exc.args[0]) from None
    path = pretrained.weights_path(name)
    state = read_checkpoint(path, f"pretrained model {name}")
    net = strict_load(build_network(info["network_g"], f"pretrained model {name}"), state, path,
                      f"the network_g of its card {name}.json")
    dev = resolve_device(device)
    return Generator(net.to(dev).eval(), int(info["scale"]), "pretrained", dict(info["network_g"]), dev), info


__all__ = ["LoadError", "load_pretrained", "read_options", "registered_archs", "check_network", "option_scale", "read_checkpoint",
           "checkpoint_state", "strict_load", "build_network", "load_network", "load_generator", "open_generator",
           "Generator", "resolve_device", "is_int8",
           "INT8_FORMAT"]
