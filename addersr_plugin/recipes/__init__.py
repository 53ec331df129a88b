"""Training recipes: the keys of a BasicSR option file that make an architecture train well.

A recipe is a small YAML file in this folder (installed with the package): ``adder_edsr`` (the
quality studies' recommendation), ``adder_edsr_paper`` (the paper's AdderEDSR) and ``adder_vdsr``
(AdderVDSR as the depth study measured it, its learning-rate rule included). It holds only
what the recipe decides (``model_type``, ``network_g`` options, ``train`` options); sizes, data
and run lengths stay in each option file. :func:`apply` merges a recipe into an option dict.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Dict

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


class RecipeError(ValueError):
    """An unknown recipe name, or a recipe file that is not a mapping."""


def names() -> list:
    return sorted(f[:-4] for f in os.listdir(HERE) if f.endswith(".yml"))


def load(name: str) -> Dict[str, Any]:
    """The recipe ``name`` as a dict (a fresh copy each call)."""
    path = os.path.join(HERE, f"{name}.yml")
    if not os.path.isfile(path):
        raise RecipeError(f"unknown recipe {name!r}; known: {', '.join(names())}")
    with open(path, encoding="utf-8") as f:
        recipe = yaml.safe_load(f)
    if not isinstance(recipe, dict):
        raise RecipeError(f"{path} does not hold a mapping")
    return recipe


def merge(dst: Dict[str, Any], src: Dict[str, Any]) -> Dict[str, Any]:
    """``dst`` updated by ``src`` recursively (``src`` wins); returns ``dst``."""
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            merge(dst[key], value)
        else:
            dst[key] = copy.deepcopy(value)
    return dst


def apply(opt: Dict[str, Any], name: str) -> Dict[str, Any]:
    """``opt`` with the recipe's keys merged in (the recipe wins); returns ``opt``."""
    return merge(opt, load(name))


def network_options(name: str) -> Dict[str, Any]:
    """The recipe's ``network_g`` options without ``type``."""
    net = dict(load(name).get("network_g") or {})
    net.pop("type", None)
    return net


__all__ = ["load", "apply", "merge", "names", "network_options", "RecipeError"]
