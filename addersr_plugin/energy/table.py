"""Energy per arithmetic operation, 45 nm, from Horowitz (ISSCC 2014), plus our stated estimates.

Cited: M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
Figure 1.1.9 (45 nm, 0.9 V): the add and multiply energies below. AdderNet, AdderSR and AdderDet
price their networks with the same figures (fp32 and int32 rows).

Estimates (ours, not in the paper):
- a comparison (ReLU, clamp) costs one add: a comparator is a subtractor whose sign bit is kept;
- a transcendental (exp or log, as in the power activation's ``exp(alpha * log|y|)``) costs
  ``TRANSCENDENTAL_MULS`` multiplies plus ``TRANSCENDENTAL_ADDS`` adds at the same precision: range
  reduction and a degree-6 minimax polynomial evaluated by Horner's rule, the usual software
  or fixed-function way to compute them. Real hardware (lookup tables, CORDIC) may differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from .errors import UnknownPrecisionError

HOROWITZ_2014 = ('M. Horowitz, "Computing\'s energy problem (and what we can do about it)", '
                 "ISSCC 2014, Fig. 1.1.9 (45 nm, 0.9 V)")

# precision -> (add pJ, multiply pJ), all cited from HOROWITZ_2014.
_CITED_PJ: Dict[str, Tuple[float, float]] = {
    "fp32": (0.9, 3.7),
    "fp16": (0.4, 1.1),
    "int32": (0.1, 3.1),
    "int8": (0.03, 0.2),
}
PRECISIONS = tuple(_CITED_PJ)

# Estimate (see module docstring): one exp or log = 8 multiplies + 8 adds.
TRANSCENDENTAL_MULS = 8
TRANSCENDENTAL_ADDS = 8


@dataclass(frozen=True)
class EnergyTable:
    """Picojoules per operation at one precision."""

    precision: str
    add_pj: float  # cited
    mul_pj: float  # cited
    cmp_pj: float  # estimate: = add
    trans_pj: float  # estimate: TRANSCENDENTAL_MULS multiplies + TRANSCENDENTAL_ADDS adds

    def energy_pj(self, mul: int, add: int, cmp: int, trans: int) -> float:
        return mul * self.mul_pj + add * self.add_pj + cmp * self.cmp_pj + trans * self.trans_pj


def energy_table(precision: str) -> EnergyTable:
    """The per-op table for ``precision`` (one of ``PRECISIONS``)."""
    if precision not in _CITED_PJ:
        raise UnknownPrecisionError(
            f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    add_pj, mul_pj = _CITED_PJ[precision]
    return EnergyTable(precision=precision, add_pj=add_pj, mul_pj=mul_pj, cmp_pj=add_pj,
                       trans_pj=TRANSCENDENTAL_MULS * mul_pj + TRANSCENDENTAL_ADDS * add_pj)


def table_markdown() -> str:
    """The table as Markdown, each entry marked cited or estimate."""
    lines = ["| precision | add (pJ) | multiply (pJ) | compare (pJ) | exp/log (pJ) |",
             "|---|---|---|---|---|"]
    for name in PRECISIONS:
        t = energy_table(name)
        lines.append(f"| {name} | {t.add_pj:g} (cited) | {t.mul_pj:g} (cited) | {t.cmp_pj:g} (estimate) "
                     f"| {t.trans_pj:.4g} (estimate) |")
    lines.append("")
    lines.append(f"Cited: {HOROWITZ_2014}. Estimates: a compare costs one add; an exp or log costs "
                 f"{TRANSCENDENTAL_MULS} multiplies + {TRANSCENDENTAL_ADDS} adds at the same precision "
                 "(range reduction + degree-6 polynomial).")
    return "\n".join(lines)
