"""Text, Markdown and JSON renderings of counted networks and of an adder-vs-CNN comparison."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .counts import CATEGORIES, PAPER_RULE_CATEGORIES, OpCount
from .network import NetworkCount
from .table import HOROWITZ_2014, TRANSCENDENTAL_ADDS, TRANSCENDENTAL_MULS, EnergyTable

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_ENERGY_UNITS = ((1e12, "J"), (1e9, "mJ"), (1e6, "uJ"), (1e3, "nJ"))

CATEGORY_LABELS = {
    "conv": "convolution MACs",
    "adder": "adder MACs",
    "bn": "batch norm",
    "norm": "group / layer norm",
    "power": "power activation",
    "activation": "ReLU / activations",
    "elementwise": "shortcuts, scalings, mean shift",
    "resample": "bicubic / bilinear resampling",
    "reduction": "sums / means",
    "unpriced": "UNPRICED ops",
}


def format_count(n: float) -> str:
    for factor, prefix in _PREFIXES:
        if abs(n) >= factor:
            return f"{n / factor:.4g} {prefix}"
    return f"{n:.4g}"


def format_energy(pj: float) -> str:
    for factor, unit in _ENERGY_UNITS:
        if abs(pj) >= factor:
            return f"{pj / factor:.4g} {unit}"
    return f"{pj:.4g} pJ"


def ratio(numerator: float, denominator: float) -> Optional[float]:
    return numerator / denominator if denominator else None


def _fmt_ratio(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}x"


def conventions_text(table: EnergyTable, convention: str, bn: str) -> str:
    rule = ("a conv MAC = 1 multiply + 1 add, an adder MAC = 2 adds (subtract, accumulate; |.| is a free "
            "sign-bit clear); biases not priced" if convention == "paper" else
            "K multiplies and K-1 adds per conv output, K subtractions and K-1 adds per adder output, "
            "+1 add for a bias")
    bn_text = ("folded for inference: free after a conv (into its weights/bias), a per-channel multiply + add "
               "per element after an adder layer (its scale cannot enter -sum|x-w|)" if bn == "folded" else
               "unfolded, (x-mean)*rsqrt(var+eps)*gamma+beta: 2 multiplies + 2 adds per element")
    return "\n".join([
        f"counting convention '{convention}': {rule}.",
        f"batch norm: {bn_text}.",
        "power activation sgn(y)|y|^a = sgn(y)exp(a*log|y|): 1 log + 1 exp + 1 multiply + 1 compare per element.",
        "ReLU/clamp: 1 compare per element; bicubic: separable 4-tap passes; PixelShuffle: data movement, 0 ops.",
        f"energy per op ({table.precision}, 45 nm): add {table.add_pj:g} pJ, multiply {table.mul_pj:g} pJ "
        f"(cited: {HOROWITZ_2014}); compare = 1 add, exp/log = {TRANSCENDENTAL_MULS} mul + "
        f"{TRANSCENDENTAL_ADDS} add = {table.trans_pj:.4g} pJ (our estimates).",
    ])


def _row(name: str, c: OpCount, table: EnergyTable, width: int) -> str:
    return (f"{name:<{width}} {format_count(c.macs):>10} {format_count(c.mul):>10} {format_count(c.add):>10} "
            f"{format_count(c.cmp):>10} {format_count(c.trans):>10} {format_energy(c.energy_pj(table)):>11}")


def _header(first: str, width: int) -> str:
    return (f"{first:<{width}} {'MACs':>10} {'mul':>10} {'add':>10} {'compare':>10} {'exp/log':>10} "
            f"{'energy':>11}")


def network_text(nc: NetworkCount, table: EnergyTable) -> str:
    width = 34
    lines = [f"{nc.label}: x{nc.scale}, LR {nc.lr_size[0]}x{nc.lr_size[1]} -> HR {nc.hr_size[0]}x{nc.hr_size[1]}, "
             f"input {tuple(nc.input_shape)}",
             _header("  category", width)]
    for cat, c in nc.by_category().items():
        lines.append(_row(f"  {CATEGORY_LABELS[cat]}", c, table, width))
    lines.append(_row("  total", nc.total(), table, width))
    lines.append(_row("  paper's rule (conv + adder MACs)", nc.paper_rule(), table, width))
    unpriced = nc.unpriced_ops()
    if unpriced:
        lines.append(f"  WARNING: ops not priced (0 energy counted; their output elements are listed under "
                     f"'elements' in --json): {', '.join(unpriced)}")
    return "\n".join(lines)


def per_layer_text(nc: NetworkCount, table: EnergyTable) -> str:
    width = max([len("  module (type) category")] + [len(f"  {m or '(network)'} ({t}) {c}") for m, t, c, _ in nc.layers()])
    lines = [f"{nc.label}: per layer", _header("  module (type) category", width)]
    for module, kind, cat, c in nc.layers():
        lines.append(_row(f"  {module or '(network)'} ({kind}) {cat}", c, table, width))
    return "\n".join(lines)


def comparison(adder: NetworkCount, cnn: NetworkCount, table: EnergyTable) -> Dict[str, Any]:
    """Energy ratios CNN / adder network, overall and by the paper's rule, and what that rule leaves out."""
    left_out = {}
    for cat in CATEGORIES:
        if cat in PAPER_RULE_CATEGORIES:
            continue
        a, c = adder.total((cat,)).energy_pj(table), cnn.total((cat,)).energy_pj(table)
        if a or c:
            left_out[cat] = {"adder_pj": a, "cnn_pj": c}
    return {
        "ratio_all": ratio(cnn.total().energy_pj(table), adder.total().energy_pj(table)),
        "ratio_paper_rule": ratio(cnn.paper_rule().energy_pj(table), adder.paper_rule().energy_pj(table)),
        "left_out_by_paper_rule": left_out,
    }


def comparison_text(adder: NetworkCount, cnn: NetworkCount, table: EnergyTable) -> str:
    comp = comparison(adder, cnn, table)
    width = max(len(adder.arch), len(cnn.arch), 5) + 2
    lines = [f"{'model':<{width}} {'scale':>5} {'#mul':>10} {'#add':>10} {'energy':>11} {'energy (paper rule)':>20}"]
    for nc in (cnn, adder):
        t, p = nc.total(), nc.paper_rule()
        lines.append(f"{nc.arch:<{width}} {'x' + str(nc.scale):>5} {format_count(t.mul):>10} {format_count(t.add):>10} "
                     f"{format_energy(t.energy_pj(table)):>11} {format_energy(p.energy_pj(table)):>20}")
    lines.append(f"energy ratio {cnn.arch} / {adder.arch}: {_fmt_ratio(comp['ratio_all'])} with everything counted, "
                 f"{_fmt_ratio(comp['ratio_paper_rule'])} by the paper's rule (conv + adder MACs only)")
    if comp["left_out_by_paper_rule"]:
        lines.append("the paper's rule leaves out:")
        for cat, e in comp["left_out_by_paper_rule"].items():
            lines.append(f"  {CATEGORY_LABELS[cat]}: {format_energy(e['adder_pj'])} in {adder.arch}, "
                         f"{format_energy(e['cnn_pj'])} in {cnn.arch}")
    return "\n".join(lines)


def _count_json(c: OpCount, table: EnergyTable) -> Dict[str, Any]:
    d = c.to_dict()
    d["energy_pj"] = c.energy_pj(table)
    return d


def network_json(nc: NetworkCount, table: EnergyTable) -> Dict[str, Any]:
    return {
        "label": nc.label, "arch": nc.arch, "scale": nc.scale,
        "hr_size": list(nc.hr_size), "lr_size": list(nc.lr_size),
        "input_shape": list(nc.input_shape), "output_shape": list(nc.output_shape),
        "total": _count_json(nc.total(), table),
        "paper_rule": _count_json(nc.paper_rule(), table),
        "categories": {cat: _count_json(c, table) for cat, c in nc.by_category().items()},
        "unpriced_ops": nc.unpriced_ops(),
        "layers": [{"module": m, "type": t, "category": cat, **_count_json(c, table)} for m, t, cat, c in nc.layers()],
    }


def report_json(networks: List[NetworkCount], table: EnergyTable,
                comp: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    first = networks[0]
    doc = {
        "precision": table.precision,
        "energy_table_pj": {"add": table.add_pj, "mul": table.mul_pj, "cmp": table.cmp_pj, "trans": table.trans_pj},
        "energy_table_sources": {"add": HOROWITZ_2014, "mul": HOROWITZ_2014,
                                 "cmp": "estimate: one add",
                                 "trans": f"estimate: {TRANSCENDENTAL_MULS} mul + {TRANSCENDENTAL_ADDS} add"},
        "convention": first.convention,
        "bn": first.bn,
        "conventions": conventions_text(table, first.convention, first.bn),
        "networks": [network_json(nc, table) for nc in networks],
    }
    if comp is not None:
        doc["comparison"] = comp
    return doc
