"""From an option file to a counted network: read ``network_g``, size the input, count on meta."""

from __future__ import annotations

import logging
import re
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from .counter import count_operations, total
from .counts import CATEGORIES, PAPER_RULE_CATEGORIES, UNPRICED, OpCount, Record
from .errors import BadSizeError, OptionFileError

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_hr_size(text: str) -> Tuple[int, int]:
    """``"1280x720"`` -> (width, height) of the high-resolution output."""
    match = _SIZE.match(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise BadSizeError(f"--hr-size must be WIDTHxHEIGHT with positive integers, e.g. 1280x720; got {text!r}")
    return int(match.group(1)), int(match.group(2))


def lr_size(hr_size: Tuple[int, int], scale: int) -> Tuple[int, int]:
    """The LR input (width, height) whose ×``scale`` output is ``hr_size``; both sides must divide."""
    width, height = hr_size
    if width % scale or height % scale:
        down = f"{width // scale * scale}x{height // scale * scale}"
        up = f"{-(-width // scale) * scale}x{-(-height // scale) * scale}"
        raise BadSizeError(
            f"--hr-size {width}x{height} is not divisible by the scale {scale} (the LR input would be "
            f"{width / scale:g}x{height / scale:g}); use e.g. {down} or {up}")
    return width // scale, height // scale


def input_channels(network_opt: Mapping[str, Any], where: str) -> int:
    for key in ("num_in_ch", "in_chans", "in_channels"):
        if key in network_opt:
            return int(network_opt[key])
    raise OptionFileError(f"{where}: network_g gives no input channel count (num_in_ch)")


def build_on_meta(network_opt: Mapping[str, Any], where: str) -> torch.nn.Module:
    """BasicSR's ``build_network`` under the meta device: parameters take no memory."""
    from basicsr.archs import build_network
    from basicsr.utils import get_root_logger

    logger = get_root_logger()  # initialise first so the level below sticks
    level = logger.level
    logger.setLevel(logging.WARNING)  # "Network [...] is created." is noise in a report
    try:
        with torch.device("meta"):
            return build_network(dict(network_opt))
    except KeyError as e:
        raise OptionFileError(f"{where}: cannot build network_g: {e.args[0] if e.args else e}") from None
    except (TypeError, ValueError) as e:
        raise OptionFileError(f"{where}: cannot build network_g of type {network_opt.get('type')!r}: {e}") from None
    finally:
        logger.setLevel(level)


@dataclass
class NetworkCount:
    """The counted operations of one network at one output size."""

    label: str
    arch: str
    scale: int
    hr_size: Tuple[int, int]
    lr_size: Tuple[int, int]
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    convention: str
    bn: str
    records: List[Record] = field(repr=False)

    def total(self, categories=None) -> OpCount:
        return total(self.records, categories)

    def paper_rule(self) -> OpCount:
        return self.total(PAPER_RULE_CATEGORIES)

    def by_category(self) -> Dict[str, OpCount]:
        """Non-empty categories, in ``CATEGORIES`` order."""
        cats = {c: self.total((c,)) for c in CATEGORIES}
        present = {r.category for r in self.records}
        return {c: v for c, v in cats.items() if c in present}

    def layers(self) -> List[Tuple[str, str, str, OpCount]]:
        """(module, type, category, count) merged per module and category, in execution order."""
        merged: Dict[Tuple[str, str, str], OpCount] = {}
        for r in self.records:
            key = (r.module, r.module_type, r.category)
            merged[key] = merged.get(key, OpCount()) + r.count
        return [(m, t, c, v) for (m, t, c), v in merged.items()]

    def unpriced_ops(self) -> List[str]:
        return sorted({r.op for r in self.records if r.category == UNPRICED})


def count_network(network_opt: Mapping[str, Any], scale: int, hr_size: Tuple[int, int], *,
                  convention: str = "paper", bn: str = "folded", label: Optional[str] = None,
                  where: str = "network_g") -> NetworkCount:
    """Count ``network_opt`` (a ``network_g`` dict) for one image whose output is ``hr_size``."""
    lr = lr_size(hr_size, scale)
    channels = input_channels(network_opt, where)
    net = build_on_meta(deepcopy(dict(network_opt)), where)
    x = torch.empty(1, channels, lr[1], lr[0], device="meta")
    records, out_shape = count_operations(net, x, convention=convention, bn=bn)
    expected = (hr_size[1], hr_size[0])
    if tuple(out_shape[-2:]) != expected:
        raise OptionFileError(f"{where}: the network maps {lr[0]}x{lr[1]} to {out_shape[-1]}x{out_shape[-2]}, "
                              f"not to {hr_size[0]}x{hr_size[1]}: is its scale really {scale}?")
    return NetworkCount(label=label or str(network_opt["type"]), arch=str(network_opt["type"]), scale=scale,
                        hr_size=hr_size, lr_size=lr, input_shape=tuple(x.shape), output_shape=tuple(out_shape),
                        convention=convention, bn=bn, records=records)


