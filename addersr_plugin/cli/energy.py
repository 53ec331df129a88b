"""``addersr energy``: count a network's operations and energy from its option file.

    addersr energy -opt ADDER.yml [--vs CNN.yml] [--hr-size 1280x720] [--precision fp32|fp16|int32|int8]
                   [--bn folded|unfolded] [--convention paper|exact] [--set KEY=VALUE ...]
                   [--vs-set KEY=VALUE ...] [--per-layer] [--json OUT.json]

Also ``python -m addersr_plugin.energy``. Bad input exits with status 2 and one
``addersr energy: error: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

if TYPE_CHECKING:
    from ..energy.network import NetworkCount

PROG = "addersr energy"
# The choices the help text lists. The energy library (floor 2) imports torch, which --help must not
# wait for, so they are spelled out here; tests/energy/test_energy_cli.py checks they are the
# library's own (BN_MODES, CONVENTIONS, PRECISIONS). Every function imports what it uses.
PRECISION_CHOICES = ("fp32", "fp16", "int32", "int8")
BN_CHOICES = ("folded", "unfolded")
CONVENTION_CHOICES = ("paper", "exact")


def load_option_file(path: str) -> Dict[str, Any]:
    """Read a BasicSR option file (the one option loader, :func:`addersr_plugin.loading.read_options`)."""
    from ..energy.errors import OptionFileError
    from ..loading import LoadError, read_options

    try:
        opt = read_options(path)
    except LoadError as e:
        raise OptionFileError(f"cannot read option file: {e}") from None
    if not isinstance(opt.get("network_g"), dict) or "type" not in opt["network_g"]:
        raise OptionFileError(f"option file {path!r} has no network_g with a type")
    return opt


def network_scale(opt: Mapping[str, Any], where: str) -> int:
    """The upscaling factor (:func:`addersr_plugin.loading.option_scale`, as an energy error)."""
    from ..energy.errors import OptionFileError
    from ..loading import LoadError, option_scale

    try:
        return option_scale(opt, where)
    except LoadError as e:
        raise OptionFileError(str(e)) from None


def parse_override(text: str) -> Tuple[str, Any]:
    """``"power_act=false"`` -> ("power_act", False); the value is read as YAML, like the option file."""
    import yaml

    from ..energy.errors import OptionFileError

    key, sep, value = text.partition("=") if isinstance(text, str) else ("", "", "")
    if not sep or not key.strip() or key.strip() == "type":
        raise OptionFileError(f"--set expects KEY=VALUE for a network_g key other than type, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise OptionFileError(f"--set {text!r}: the value is not valid YAML: {e}") from None


def count_option_file(path: str, hr_size: Tuple[int, int], *, convention: str = "paper", bn: str = "folded",
                      overrides: Optional[List[str]] = None) -> NetworkCount:
    """Count the ``network_g`` of the option file at ``path``, with ``KEY=VALUE`` overrides applied."""
    from ..energy.network import count_network

    opt = load_option_file(path)
    pairs = [parse_override(o) for o in overrides or []]
    opt["network_g"].update(pairs)
    scale = network_scale(opt, path)
    label = f"{opt['network_g']['type']} ({path})"
    if pairs:
        label += " [" + ", ".join(f"{k}={v}" for k, v in pairs) + "]"
    return count_network(opt["network_g"], scale, hr_size, convention=convention, bn=bn, label=label, where=path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Count the multiplications, additions and energy of an option file's network_g for one "
                    "image, without running real compute (meta device), and compare an adder network with its CNN.")
    parser.add_argument("-opt", "--opt", required=True, dest="opt", metavar="FILE",
                        help="BasicSR option file (the adder network)")
    parser.add_argument("--vs", metavar="CNN.yml", help="option file of the network to compare against")
    parser.add_argument("--hr-size", default="1280x720", metavar="WxH",
                        help="output (HR) size; the LR input is this divided by the scale (default 1280x720)")
    parser.add_argument("--precision", default="fp32", metavar="P",
                        help=f"arithmetic precision for the energy table: {', '.join(PRECISION_CHOICES)} (default fp32)")
    parser.add_argument("--bn", default="folded", metavar="MODE",
                        help=f"batch norm pricing: {', '.join(BN_CHOICES)} (default folded, i.e. inference)")
    parser.add_argument("--convention", default="paper", metavar="C",
                        help=f"dot-product counting: {', '.join(CONVENTION_CHOICES)} (default paper: MAC = 1 mul + 1 add, "
                             "adder MAC = 2 adds)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override network_g.KEY of -opt (value read as YAML), e.g. --set power_act=false; "
                             "repeatable")
    parser.add_argument("--vs-set", action="append", default=[], metavar="KEY=VALUE",
                        help="the same for the --vs network")
    parser.add_argument("--per-layer", action="store_true", help="also print a per-layer breakdown")
    parser.add_argument("--json", metavar="OUT.json", help="write the full report (per layer included) as JSON")
    return parser


def run(args: argparse.Namespace, out=None) -> None:
    from ..energy.counter import check_bn_mode
    from ..energy.errors import OptionFileError
    from ..energy.network import parse_hr_size
    from ..energy.report import comparison, comparison_text, conventions_text, network_text, per_layer_text, report_json
    from ..energy.rules import check_convention
    from ..energy.table import energy_table

    out = sys.stdout if out is None else out
    table = energy_table(args.precision)
    check_convention(args.convention)
    check_bn_mode(args.bn)
    hr_size = parse_hr_size(args.hr_size)
    counted = count_option_file(args.opt, hr_size, convention=args.convention, bn=args.bn, overrides=args.set)
    networks = [counted]
    cnn = None
    if args.vs_set and not args.vs:
        raise OptionFileError("--vs-set needs --vs")
    if args.vs:
        cnn = count_option_file(args.vs, hr_size, convention=args.convention, bn=args.bn, overrides=args.vs_set)
        if cnn.scale != counted.scale:
            raise OptionFileError(f"cannot compare a x{counted.scale} network ({args.opt}) with a x{cnn.scale} "
                                  f"one ({args.vs})")
        networks.append(cnn)
    for nc in networks:
        print(network_text(nc, table), file=out)
        print(file=out)
    comp = None
    if cnn is not None:
        comp = comparison(counted, cnn, table)
        print(comparison_text(counted, cnn, table), file=out)
        print(file=out)
    if args.per_layer:
        for nc in networks:
            print(per_layer_text(nc, table), file=out)
            print(file=out)
    print(conventions_text(table, args.convention, args.bn), file=out)
    if args.json:
        doc = report_json(networks, table, comp)
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, args.json)  # never leave a half-written report under the real name
        print(f"wrote {args.json}", file=out)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``addersr energy`` and ``python -m addersr_plugin.energy``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
        return int(e.code or 0)
    from ..energy.errors import EnergyError

    try:
        run(args)
    except EnergyError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    return 0
