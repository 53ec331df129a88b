"""What a count is: arithmetic operations by kind, grouped by what produced them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .table import EnergyTable

# Categories of counted work. The paper's rule prices only CONV and ADDER multiply-accumulates.
CONV = "conv"            # convolution / matrix-multiply MACs
ADDER = "adder"          # adder-convolution MACs
BN = "bn"                # batch normalisation (folded or unfolded, see counter.BN_MODES)
NORM = "norm"            # group / layer normalisation (statistics computed per sample: nothing folds)
POWER = "power"          # AdderSR power activation sgn(y)|y|^alpha
ACTIVATION = "activation"  # ReLU, clamps and other activations
ELEMENTWISE = "elementwise"  # residual/self-shortcut adds, scalings, mean shift
RESAMPLE = "resample"    # bicubic/bilinear interpolation (pixel shuffle is free data movement)
REDUCTION = "reduction"  # sums and means
UNPRICED = "unpriced"    # ops this counter does not know: listed, never silently dropped

CATEGORIES = (CONV, ADDER, BN, NORM, POWER, ACTIVATION, ELEMENTWISE, RESAMPLE, REDUCTION, UNPRICED)
PAPER_RULE_CATEGORIES = (CONV, ADDER)


@dataclass
class OpCount:
    """Operations of one kind each: ``add`` includes subtractions, ``cmp`` comparisons,
    ``trans`` exp/log evaluations; ``macs`` is the multiply-accumulates (or adder
    accumulates) the mul/add figures came from, 0 for other work; ``elements`` counts the
    output elements of unpriced ops."""

    mul: int = 0
    add: int = 0
    cmp: int = 0
    trans: int = 0
    macs: int = 0
    elements: int = 0

    def __add__(self, other: "OpCount") -> "OpCount":
        return OpCount(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple())))

    def as_tuple(self):
        return (self.mul, self.add, self.cmp, self.trans, self.macs, self.elements)

    def energy_pj(self, table: EnergyTable) -> float:
        return table.energy_pj(self.mul, self.add, self.cmp, self.trans)

    def to_dict(self):
        return asdict(self)


@dataclass
class Record:
    """One counted operator call, attributed to the innermost module that was running."""

    module: str       # qualified module name; "" is the network itself
    module_type: str  # class name of that module
    category: str
    op: str           # aten/addersr operator name, or the module rule that priced it
    count: OpCount
