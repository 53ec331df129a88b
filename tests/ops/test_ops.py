"""``adder_conv2d`` (compiled kernel when built) and ``adder_conv2d_reference`` against an
independent float64 oracle, over a curated shape matrix, every backward mode, and random shapes.

The oracle below deliberately shares no code with ``addersr_plugin.ops.reference``: it pads
explicitly with ``F.pad`` and loops over (out channel, in channel, tap), reading the input values
each tap sees through a strided slice, with each backward mode written out as its formula
(docs/adder_op.md). It is slow, so shapes stay tiny.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from addersr_plugin.ops import adder_conv2d, adder_conv2d_reference

IMPLS = {"op": adder_conv2d, "reference": adder_conv2d_reference}
GRAD_MODES = [(wg, ig) for wg in ("full", "sign") for ig in ("hardtanh", "sign")]


# --------------------------------------------------------------------------- the oracle

def _pair(v) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _geometry(x, w, stride, padding, dilation):
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    kh, kw = w.shape[2:]
    ho = (x.shape[2] + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    wo = (x.shape[3] + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    return s, p, d, ho, wo


def _tap(xp, c, i, j, s, d, ho, wo):
    """The (N, Ho, Wo) values of padded channel ``c`` that tap (i, j) reads at every output pixel."""
    r0, c0 = i * d[0], j * d[1]
    return xp[:, c, r0 : r0 + s[0] * (ho - 1) + 1 : s[0], c0 : c0 + s[1] * (wo - 1) + 1 : s[1]]


def _loops(w, groups):
    """(out channel, absolute in channel, weight in-channel index, i, j) for every weight entry."""
    cout, cin_g, kh, kw = w.shape
    for co in range(cout):
        g = co // (cout // groups)
        for ci in range(cin_g):
            for i in range(kh):
                for j in range(kw):
                    yield co, g * cin_g + ci, ci, i, j


def oracle_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Y[n, co] = -Σ_{ci,i,j} |Xpad[n, tap] - W[co, ci, i, j]| (+ b[co]), in float64."""
    x, w = x.double(), w.double()
    s, p, d, ho, wo = _geometry(x, w, stride, padding, dilation)
    xp = F.pad(x, (p[1], p[1], p[0], p[0]))  # zero padding: padded taps read 0
    y = x.new_zeros(x.shape[0], w.shape[0], ho, wo)
    for co, c, ci, i, j in _loops(w, groups):
        y[:, co] = y[:, co] - (_tap(xp, c, i, j, s, d, ho, wo) - w[co, ci, i, j]).abs()
    if b is not None:
        y = y + b.double().view(1, -1, 1, 1)
    return y


def oracle_backward(x, w, gy, stride, padding, dilation, groups, weight_grad, input_grad):
    """(dX, dW, db) by the formulas of docs/adder_op.md, in float64."""
    x, w, gy = x.double(), w.double(), gy.double()
    s, p, d, ho, wo = _geometry(x, w, stride, padding, dilation)
    xp = F.pad(x, (p[1], p[1], p[0], p[0]))
    gxp = torch.zeros_like(xp)
    gw = torch.zeros_like(w)
    for co, c, ci, i, j in _loops(w, groups):
        xv = _tap(xp, c, i, j, s, d, ho, wo)
        g = gy[:, co]
        x_minus_w = xv - w[co, ci, i, j]
        if weight_grad == "full":
            gw[co, ci, i, j] = (g * x_minus_w).sum()
        else:
            gw[co, ci, i, j] = (g * torch.sign(x_minus_w)).sum()
        w_minus_x = -x_minus_w
        if input_grad == "hardtanh":
            contribution = g * torch.clamp(w_minus_x, -1.0, 1.0)
        else:
            contribution = g * torch.sign(w_minus_x)
        _tap(gxp, c, i, j, s, d, ho, wo).add_(contribution)  # strided view: writes into gxp
    # Taps that read padding carry no gradient to X: crop the padded border away.
    gx = gxp[:, :, p[0] : p[0] + x.shape[2], p[1] : p[1] + x.shape[3]]
    return gx, gw, gy.sum((0, 2, 3))


# --------------------------------------------------------------------------- oracle self-checks

def test_oracle_forward_matches_cdist_formulation():
    """A second independent formulation: -cdist_L1(unfolded patches, flattened weights)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 6, generator=g, dtype=torch.float64)
    w = torch.randn(5, 3, 3, 3, generator=g, dtype=torch.float64)
    cols = F.unfold(x, (3, 3), padding=1, stride=2, dilation=1)  # (N, 27, L)
    expected = -torch.cdist(cols.transpose(1, 2), w.view(1, 5, 27).expand(2, 5, 27), p=1)
    y = oracle_forward(x, w, None, 2, 1, 1, 1)
    torch.testing.assert_close(y.flatten(2), expected.transpose(1, 2), rtol=1e-12, atol=1e-12)


def test_oracle_sign_backward_is_autograd_of_oracle_forward():
    """With both modes "sign" the oracle's backward formulas are the exact gradient."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    geom = ((2, 1), (1, 2), (1, 2), 2)
    y = oracle_forward(x, w, b, *geom)
    gy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    auto = torch.autograd.grad(y, (x, w, b), gy)
    mine = oracle_backward(x.detach(), w.detach(), gy, *geom, "sign", "sign")
    for a, m in zip(auto, mine):
        torch.testing.assert_close(m, a, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- shape matrix

class Case(NamedTuple):
    n: int
    cin: int
    cout: int
    hw: Tuple[int, int]
    k: Tuple[int, int]
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1
    bias: bool = False
    x_layout: str = "contiguous"  # contiguous | channels_last | strided (a non-contiguous view)
    w_layout: str = "contiguous"

    def id(self) -> str:
        parts = [f"n{self.n}", f"{self.cin}to{self.cout}", f"{self.hw[0]}x{self.hw[1]}",
                 f"k{self.k[0]}x{self.k[1]}", f"s{self.stride}", f"p{self.padding}",
                 f"d{self.dilation}", f"g{self.groups}"]
        if self.bias:
            parts.append("bias")
        if self.x_layout != "contiguous":
            parts.append(f"x-{self.x_layout}")
        if self.w_layout != "contiguous":
            parts.append(f"w-{self.w_layout}")
        return "-".join(str(p).replace(" ", "").replace("(", "").replace(")", "").replace(",", "_")
                        for p in parts)


K1, K3, K5 = (1, 1), (3, 3), (5, 5)
CASES = [
    # Cin·k² = 27: the RGB 3×3 stem, which tile-based kernels get wrong.
    Case(1, 3, 8, (9, 7), K3, padding=1, bias=True),
    Case(3, 3, 8, (9, 7), K3, padding=1),
    Case(3, 3, 5, (10, 13), K3, stride=2),
    Case(1, 3, 7, (8, 11), K3, padding=1, x_layout="channels_last", w_layout="channels_last"),
    Case(3, 3, 4, (7, 9), K3, padding=2, dilation=2, bias=True, x_layout="strided"),
    Case(1, 3, 6, (12, 10), K3, stride=2, padding=1, dilation=2, w_layout="strided"),
    # Cin·k² = 24: a 1×1 layer with 24 channels, and 4 channels under a 2×3 kernel.
    Case(1, 24, 6, (5, 7), K1),
    Case(3, 24, 8, (6, 5), K1, stride=2, bias=True, x_layout="channels_last"),
    Case(3, 24, 6, (4, 9), K1, padding=1, x_layout="strided", w_layout="strided"),
    Case(1, 4, 5, (7, 8), (2, 3), padding=(0, 1)),
    Case(3, 4, 6, (9, 6), (2, 3), stride=(2, 1), dilation=(1, 2), bias=True),
    # groups 2 and 4 (Cin·k² per group 18 and 9).
    Case(1, 4, 6, (8, 9), K3, padding=1, groups=2),
    Case(3, 4, 4, (9, 8), K3, stride=2, padding=1, groups=2, bias=True, x_layout="channels_last"),
    Case(1, 8, 8, (7, 10), K3, padding=2, dilation=2, groups=4),
    Case(3, 8, 4, (10, 7), K3, stride=2, padding=1, dilation=2, groups=4, bias=True,
         x_layout="strided", w_layout="channels_last"),
    Case(1, 4, 8, (6, 6), K1, groups=4, w_layout="strided"),
    Case(3, 6, 6, (5, 8), K3, padding=1, groups=2, x_layout="channels_last", w_layout="strided"),
    # 5×5 kernels.
    Case(1, 3, 4, (9, 11), K5, padding=2, bias=True),
    Case(3, 2, 3, (11, 9), K5, stride=2),
    Case(1, 2, 4, (12, 13), K5, stride=2, padding=2, dilation=2, x_layout="channels_last"),
    Case(3, 4, 4, (8, 7), K5, padding=1, groups=2, x_layout="strided"),
    Case(1, 2, 2, (5, 5), K5),  # 1×1 output
    # padding wider than needed, so whole output rows read only padding for some taps.
    Case(1, 2, 3, (4, 6), K3, padding=2, bias=True),
    Case(3, 2, 3, (3, 3), K1, padding=2, stride=2),
    # degenerate spatial sizes.
    Case(3, 3, 5, (1, 9), (1, 3), padding=(0, 1)),
    Case(1, 3, 2, (9, 1), (3, 1), stride=2),
    # mixed per-axis geometry.
    Case(3, 4, 5, (11, 9), K3, stride=(1, 2), padding=(2, 0), dilation=(2, 1), bias=True),
    Case(1, 6, 6, (10, 12), (3, 5), stride=(2, 1), padding=(1, 2), groups=3, x_layout="channels_last"),
]
CASE_IDS = [c.id() for c in CASES]
FLOAT32_CASES = [CASES[i] for i in (0, 2, 4, 8, 10, 14, 17, 19, 26, 27)]
FLOAT32_IDS = [c.id() for c in FLOAT32_CASES]


def _layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        # Every other element of a wider buffer along W: a view no kernel can treat as dense.
        wide = t.new_zeros(*t.shape[:3], 2 * t.shape[3])
        wide[..., ::2] = t
        view = wide[..., ::2]
        assert not view.is_contiguous()
        return view
    raise AssertionError(layout)


def make_inputs(case: Case, dtype=torch.float64, seed=0):
    """Random N(0,1) input and weight (AdderNet's init), laid out as the case says."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case.n, case.cin, *case.hw, generator=g, dtype=dtype)
    w = torch.randn(case.cout, case.cin // case.groups, *case.k, generator=g, dtype=dtype)
    b = torch.randn(case.cout, generator=g, dtype=dtype) if case.bias else None
    return _layout(x, case.x_layout), _layout(w, case.w_layout), b


def geometry(case: Case):
    return dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)


def assert_matches(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str):
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype} != {dtype}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    if dtype == torch.float64:
        rtol, atol = 1e-9, 1e-9
    else:  # float32: sums of up to a few hundred terms, possibly via conv identities
        rtol, atol = 1e-4, 1e-4 * (1.0 + expected.abs().max().item())
    torch.testing.assert_close(actual.double(), expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def check_case(impl, case: Case, dtype, weight_grad, input_grad, seed=0):
    """Forward, then dX, dW, db for one (weight_grad, input_grad) mode, against the oracle."""
    x, w, b = make_inputs(case, dtype, seed)
    geom = geometry(case)
    x.requires_grad_(True)
    w.requires_grad_(True)
    if b is not None:
        b.requires_grad_(True)
    y = impl(x, w, b, **geom, weight_grad=weight_grad, input_grad=input_grad)
    assert_matches(y.detach(), oracle_forward(x.detach(), w.detach(), b, **geom), dtype, "forward")
    assert y.is_contiguous(), "output must be contiguous NCHW"

    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=dtype)
    wanted = [x, w] + ([b] if b is not None else [])
    grads = torch.autograd.grad(y, wanted, gy)
    ex_gx, ex_gw, ex_gb = oracle_backward(x.detach(), w.detach(), gy, case.stride, case.padding,
                                          case.dilation, case.groups, weight_grad, input_grad)
    assert_matches(grads[0], ex_gx, dtype, f"grad input ({input_grad})")
    assert_matches(grads[1], ex_gw, dtype, f"grad weight ({weight_grad})")
    if b is not None:
        assert_matches(grads[2], ex_gb, dtype, "grad bias")


@pytest.mark.parametrize("impl_name", list(IMPLS))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_float64(impl_name, case):
    x, w, b = make_inputs(case)
    y = IMPLS[impl_name](x, w, b, **geometry(case))
    assert_matches(y, oracle_forward(x, w, b, **geometry(case)), torch.float64, "forward")
    assert y.is_contiguous()


@pytest.mark.parametrize("impl_name", list(IMPLS))
@pytest.mark.parametrize("weight_grad,input_grad", GRAD_MODES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_backward_float64(impl_name, case, weight_grad, input_grad):
    check_case(IMPLS[impl_name], case, torch.float64, weight_grad, input_grad)


@pytest.mark.parametrize("impl_name", list(IMPLS))
@pytest.mark.parametrize("weight_grad,input_grad", GRAD_MODES)
@pytest.mark.parametrize("case", FLOAT32_CASES, ids=FLOAT32_IDS)
def test_float32(impl_name, case, weight_grad, input_grad):
    check_case(IMPLS[impl_name], case, torch.float32, weight_grad, input_grad, seed=7)


def test_modes_really_differ():
    """Guard against an op that ignores its grad-mode arguments: the four modes give four results."""
    case = CASES[1]
    results = []
    for wg, ig in GRAD_MODES:
        x, w, _ = make_inputs(case)
        x.requires_grad_(True)
        w.requires_grad_(True)
        y = adder_conv2d(x, w, None, **geometry(case), weight_grad=wg, input_grad=ig)
        results.append(torch.autograd.grad(y.sum(), (x, w)))
    (gx_fh, gw_fh), (gx_fs, gw_fs), (gx_sh, gw_sh), _ = results
    assert not torch.allclose(gx_fh, gx_fs), "input_grad='sign' gave the hardtanh gradient"
    assert not torch.allclose(gw_fh, gw_sh), "weight_grad='sign' gave the full gradient"
    torch.testing.assert_close(gw_fh, gw_fs)  # the input mode must not change dW
    torch.testing.assert_close(gx_fh, gx_sh)  # nor the weight mode dX


# --------------------------------------------------------------------------- exact gradient

def _off_grid(shape, offset, g):
    """Values on a 0.5 grid shifted by ``offset``: x (offset 0.25) and w (offset 0.125) then
    differ by at least 0.125, and w is never 0, so neither |x - w| nor a padded |0 - w| is near
    the kink that finite differences would straddle."""
    return (torch.randint(-6, 6, shape, generator=g).double() + offset) * 0.5


GRADCHECK_CASES = [
    Case(1, 3, 4, (5, 4), K3, padding=1, bias=True),
    Case(2, 4, 4, (6, 5), K3, stride=2, padding=2, dilation=2, groups=2),
    Case(1, 2, 3, (4, 5), (2, 3), stride=(1, 2), padding=(1, 0), bias=True, x_layout="channels_last"),
    Case(2, 4, 2, (3, 4), K1, padding=1, groups=2, x_layout="strided"),
]


@pytest.mark.parametrize("impl_name", list(IMPLS))
@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=[c.id() for c in GRADCHECK_CASES])
def test_gradcheck_sign_modes(impl_name, case):
    g = torch.Generator().manual_seed(3)
    x = _layout(_off_grid((case.n, case.cin, *case.hw), 0.5, g), case.x_layout).requires_grad_(True)
    w = _layout(_off_grid((case.cout, case.cin // case.groups, *case.k), 0.25, g),
                case.w_layout).requires_grad_(True)
    b = torch.randn(case.cout, generator=g, dtype=torch.float64).requires_grad_(True) if case.bias else None
    impl = IMPLS[impl_name]

    def fn(x, w, b):
        return impl(x, w, b, **geometry(case), weight_grad="sign", input_grad="sign")

    assert torch.autograd.gradcheck(fn, (x, w, b), eps=1e-6, atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------- random shapes

@st.composite
def random_cases(draw):
    groups = draw(st.integers(1, 3))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    # the smallest image with a positive output, plus up to 5 extra pixels per axis
    hw = tuple(max(1, dilation[a] * (k[a] - 1) + 1 - 2 * padding[a]) + draw(st.integers(0, 5)) for a in range(2))
    return Case(
        n=draw(st.integers(1, 3)),
        cin=groups * draw(st.integers(1, 3)),
        cout=groups * draw(st.integers(1, 3)),
        hw=hw, k=k, stride=stride, padding=padding, dilation=dilation, groups=groups,
        bias=draw(st.booleans()),
        x_layout=draw(st.sampled_from(["contiguous", "channels_last", "strided"])),
        w_layout=draw(st.sampled_from(["contiguous", "channels_last", "strided"])),
    )


@settings(max_examples=40, deadline=None)
@given(case=random_cases(), modes=st.sampled_from(GRAD_MODES), impl_name=st.sampled_from(list(IMPLS)),
       seed=st.integers(0, 2**16))
def test_random_shapes_match_oracle(case, modes, impl_name, seed):
    check_case(IMPLS[impl_name], case, torch.float64, *modes, seed=seed)


# --------------------------------------------------------------------------- empty batch

@pytest.mark.parametrize("impl_name", list(IMPLS))
def test_empty_batch(impl_name):
    x = torch.randn(0, 4, 7, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    y = IMPLS[impl_name](x, w, b, stride=2, padding=1, groups=2)
    assert y.shape == (0, 6, 4, 3)
    gx, gw, gb = torch.autograd.grad(y, (x, w, b), torch.ones_like(y))
    assert gx.shape == x.shape
    assert gw.shape == w.shape and torch.equal(gw, torch.zeros_like(w))
    assert torch.equal(gb, torch.zeros_like(b))


def test_empty_batch_registered_ops():
    """The backward ops themselves, as the autograd formula calls them."""
    x = torch.randn(0, 3, 5, 5)
    w = torch.randn(4, 3, 3, 3)
    gy = torch.randn(0, 4, 5, 5)
    geom = ([1, 1], [1, 1], [1, 1], 1)
    assert torch.ops.addersr.adder_conv2d(x, w, None, *geom, "full", "hardtanh").shape == (0, 4, 5, 5)
    assert torch.ops.addersr.adder_conv2d_grad_input(gy, x, w, *geom, "hardtanh").shape == x.shape
    gw = torch.ops.addersr.adder_conv2d_grad_weight(gy, x, w, *geom, "full")
    assert torch.equal(gw, torch.zeros_like(w))

