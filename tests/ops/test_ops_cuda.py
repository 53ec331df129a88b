"""The CUDA kernels of ``addersr::adder_conv2d`` against the float64 CPU reference.

Every test needs a CUDA device and skips without one (CI has none; the lent-GPU
script ``tests/gpu/run_gpu_checks.sh`` runs this file). The oracle is
``adder_conv2d_reference`` in float64 on the CPU, fed the very values the kernel
sees (already rounded to fp16/bf16 where those are tested), so the only
differences left are fp32 accumulation order and the final rounding.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import pytest
import torch

from addersr_plugin.ops import adder_conv2d, adder_conv2d_reference, extension_status
from addersr_plugin.ops.reference import packed_fp16_error_bound

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DEV = "cuda"
Pair = Tuple[int, int]


class Case(NamedTuple):
    n: int
    cin: int
    h: int
    w: int
    cout: int
    k: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1

    def out_hw(self) -> Pair:
        return tuple(  # type: ignore[return-value]
            (hw + 2 * p - d * (k - 1) - 1) // s + 1
            for hw, k, s, p, d in zip((self.h, self.w), self.k, self.stride, self.padding, self.dilation))


# Each shape targets an edge of the tiling: K = Cin/g·kh·kw not a multiple of the
# 16-deep stage (27 for an RGB 3×3 stem), Cout and pixel counts that are not tile
# multiples, several tiles along every GEMM dimension, and every geometry option.
CASES = {
    "rgb_stem_27_taps_batch3": Case(3, 3, 7, 7, 5, (3, 3), padding=(1, 1)),
    "cout70_stride2_nonsquare": Case(1, 3, 9, 6, 70, (3, 3), stride=(2, 2), padding=(1, 1)),
    "dilation2_groups2_pad2": Case(2, 8, 8, 10, 12, (3, 3), padding=(2, 2), dilation=(2, 2), groups=2),
    "k1x1_groups4": Case(3, 8, 5, 7, 8, (1, 1), groups=4),
    "k5x5_mixed_stride_pad": Case(1, 4, 9, 9, 6, (5, 5), stride=(1, 2), padding=(2, 1)),
    "k144_many_stages": Case(2, 16, 6, 6, 16, (3, 3), padding=(1, 1)),
    "stride3_kernel3x2": Case(1, 2, 13, 11, 3, (3, 2), stride=(3, 2), padding=(0, 1), dilation=(2, 1)),
    "cin130_ci_tiles": Case(1, 130, 3, 3, 2, (1, 1)),
    "odd_pixels_groups2": Case(5, 6, 11, 13, 4, (3, 3), padding=(1, 1), groups=2),
    "one_pixel_image": Case(1, 1, 1, 1, 3, (3, 3), padding=(1, 1)),
    "grad_weight_splits": Case(4, 5, 23, 29, 7, (3, 3), padding=(1, 1)),
    "groups3_dilation_w": Case(2, 3, 17, 9, 66, (3, 3), stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=3),
    "edsr_like_64ch": Case(2, 64, 20, 20, 64, (3, 3), padding=(1, 1)),
}

GRAD_MODE_PAIRS = [("full", "hardtanh"), ("sign", "sign")]  # covers all four modes


def _make(case: Case, dtype: torch.dtype, bias: bool, seed: int):
    """CPU float64 tensors already rounded to ``dtype``: x, w, b, grad_output."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case.n, case.cin, case.h, case.w, generator=g, dtype=torch.float64)
    w = torch.randn(case.cout, case.cin // case.groups, *case.k, generator=g, dtype=torch.float64)
    b = torch.randn(case.cout, generator=g, dtype=torch.float64) if bias else None
    gy = torch.randn(case.n, case.cout, *case.out_hw(), generator=g, dtype=torch.float64)
    rnd = lambda t: None if t is None else t.to(dtype).double()  # noqa: E731
    return rnd(x), rnd(w), rnd(b), rnd(gy)


def _layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values on the GPU in the requested memory layout, as a leaf."""
    if layout == "channels_last":
        out = t.to(DEV).contiguous(memory_format=torch.channels_last)
    elif layout == "non_contiguous":
        out = t.transpose(2, 3).contiguous().transpose(2, 3).to(DEV)  # NCWH storage, NCHW view
    else:
        out = t.to(DEV).contiguous()
    return out


def _tolerance(dtype: torch.dtype) -> float:
    # fp32 accumulation everywhere; what is left is the output rounding of the dtype.
    return {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str):
    actual = actual.detach().double().cpu()
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    tol = _tolerance(dtype)
    scale = max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol:.1g} x scale {scale:.3g}"


def _run_both(case: Case, dtype: torch.dtype, layout: str, bias: bool, weight_grad: str, input_grad: str,
              seed: int = 0):
    x, w, b, gy = _make(case, dtype, bias, seed)
    geom = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups,
                weight_grad=weight_grad, input_grad=input_grad)

    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    br = b.clone().requires_grad_() if b is not None else None
    yr = adder_conv2d_reference(xr, wr, br, **geom)
    yr.backward(gy)

    xc = _layout(x, layout).to(dtype).requires_grad_()
    wc = w.to(DEV, dtype).requires_grad_()
    bc = b.to(DEV, dtype).requires_grad_() if b is not None else None
    yc = adder_conv2d(xc, wc, bc, **geom)
    assert yc.dtype == dtype and yc.is_contiguous(), "output must be contiguous NCHW in the input dtype"
    yc.backward(_layout(gy, layout).to(dtype))

    _assert_close(yc, yr.detach(), dtype, "forward")
    _assert_close(xc.grad, xr.grad, dtype, f"grad_input[{input_grad}]")
    _assert_close(wc.grad, wr.grad, dtype, f"grad_weight[{weight_grad}]")
    if b is not None:
        _assert_close(bc.grad, br.grad, dtype, "grad_bias")


def test_cuda_kernels_are_compiled_not_the_reference():
    status = extension_status()
    assert status["extension_loaded"], f"compiled extension not loaded: {status['load_error']}"
    assert "CUDA" not in status["reference_backends"], (
        "CUDA tensors are served by the pure-PyTorch reference: rebuild with FORCE_CUDA=1")


@pytest.mark.parametrize("weight_grad,input_grad", GRAD_MODE_PAIRS)
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_float64_matches_reference(case, weight_grad, input_grad):
    _run_both(case, torch.float64, "contiguous", True, weight_grad, input_grad)


@pytest.mark.parametrize("layout,bias", [("contiguous", True), ("channels_last", False), ("non_contiguous", True)])
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_float32_layouts_match_reference(case, layout, bias):
    for seed, (weight_grad, input_grad) in enumerate(GRAD_MODE_PAIRS):
        _run_both(case, torch.float32, layout, bias, weight_grad, input_grad, seed=seed)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["rgb_stem_27_taps_batch3", "dilation2_groups2_pad2", "grad_weight_splits",
                                  "edsr_like_64ch"])
def test_half_precision_accumulates_in_fp32(name, dtype):
    for weight_grad, input_grad in GRAD_MODE_PAIRS:
        _run_both(CASES[name], dtype, "channels_last" if dtype == torch.bfloat16 else "contiguous", True,
                  weight_grad, input_grad)


def test_large_layer_fp32_sum_is_not_truncated():
    """K = 64·9 = 576 taps over 2·48² pixels: errors of dropped stages/splits would be large."""
    case = Case(2, 64, 48, 48, 64, (3, 3), padding=(1, 1))
    _run_both(case, torch.float32, "contiguous", False, "full", "hardtanh")


def test_grad_weight_is_deterministic():
    x = torch.randn(8, 16, 40, 40, device=DEV)
    w = torch.randn(32, 16, 3, 3, device=DEV)
    gy = torch.randn(8, 32, 40, 40, device=DEV)
    geom = ([1, 1], [1, 1], [1, 1], 1)
    first = torch.ops.addersr.adder_conv2d_grad_weight(gy, x, w, *geom, "full")
    for _ in range(3):
        again = torch.ops.addersr.adder_conv2d_grad_weight(gy, x, w, *geom, "full")
        assert torch.equal(first, again)


def test_expanded_grad_output_is_handled():
    """``y.sum().backward()`` hands the backward a stride-0 (expanded) gradient."""
    case = CASES["rgb_stem_27_taps_batch3"]
    x, w, _, _ = _make(case, torch.float32, False, 3)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    adder_conv2d_reference(xr, wr, None, padding=case.padding).sum().backward()
    xc, wc = x.float().to(DEV).requires_grad_(), w.float().to(DEV).requires_grad_()
    adder_conv2d(xc, wc, None, padding=case.padding).sum().backward()
    _assert_close(xc.grad, xr.grad, torch.float32, "grad_input")
    _assert_close(wc.grad, wr.grad, torch.float32, "grad_weight")


def test_empty_batch():
    x = torch.randn(0, 4, 6, 6, device=DEV, requires_grad=True)
    w = torch.randn(5, 4, 3, 3, device=DEV, requires_grad=True)
    y = adder_conv2d(x, w, padding=1)
    assert y.shape == (0, 5, 6, 6) and y.device.type == "cuda"
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert w.grad.shape == w.shape and torch.count_nonzero(w.grad) == 0


def test_runs_on_a_side_stream():
    """Kernels are enqueued on the current stream (no hidden sync with the default stream)."""
    case = CASES["k144_many_stages"]
    x, w, b, _ = _make(case, torch.float32, True, 5)
    expected = adder_conv2d_reference(x, w, b, padding=case.padding)
    stream = torch.cuda.Stream()
    xc, wc, bc = x.float().to(DEV), w.float().to(DEV), b.float().to(DEV)
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = adder_conv2d(xc, wc, bc, padding=case.padding)
    torch.cuda.current_stream().wait_stream(stream)
    _assert_close(y, expected, torch.float32, "forward on a side stream")


@pytest.mark.parametrize("weight_grad,input_grad", GRAD_MODE_PAIRS)
def test_opcheck_on_cuda(weight_grad, input_grad):
    x = torch.randn(2, 6, 7, 5, device=DEV, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, device=DEV, requires_grad=True)
    b = torch.randn(4, device=DEV, requires_grad=True)
    args = (x, w, b, [2, 1], [1, 1], [1, 1], 2, weight_grad, input_grad)
    torch.library.opcheck(torch.ops.addersr.adder_conv2d.default, args)
    gy = torch.randn(2, 4, 4, 5, device=DEV)
    geom = ([2, 1], [1, 1], [1, 1], 2)
    torch.library.opcheck(torch.ops.addersr.adder_conv2d_grad_input.default,
                          (gy, x.detach(), w.detach(), *geom, input_grad))
    torch.library.opcheck(torch.ops.addersr.adder_conv2d_grad_weight.default,
                          (gy, x.detach(), w.detach(), *geom, weight_grad))


def test_gradcheck_sign_modes_on_cuda():
    """With both modes "sign" the backward is the exact gradient (inputs kept away from ties)."""
    x = (torch.rand(2, 4, 5, 5, device=DEV, dtype=torch.float64) * 4 + 0.05).requires_grad_()
    w = (torch.rand(4, 2, 3, 3, device=DEV, dtype=torch.float64) * 4 - 8.0).requires_grad_()
    b = torch.randn(4, device=DEV, dtype=torch.float64, requires_grad=True)
    # x > 0 > w everywhere and padded taps read 0 > w: no |x - w| is near its kink.
    fn = lambda x, w, b: adder_conv2d(x, w, b, padding=1, groups=2, weight_grad="sign", input_grad="sign")  # noqa
    assert torch.autograd.gradcheck(fn, (x, w, b), eps=1e-6, atol=1e-7)


def test_direct_op_calls_reject_bad_arguments_with_named_errors():
    x = torch.randn(1, 4, 6, 6, device=DEV)
    w = torch.randn(5, 4, 3, 3, device=DEV)
    gy = torch.randn(1, 5, 4, 4, device=DEV)
    geom = ([1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(RuntimeError, match="weight is on cpu but input is on cuda"):
        torch.ops.addersr.adder_conv2d(x, w.cpu(), None, *geom, "full", "hardtanh")
    with pytest.raises(RuntimeError, match="unknown mode 'bogus'"):
        torch.ops.addersr.adder_conv2d_grad_input(gy, x, w, *geom, "bogus")
    with pytest.raises(RuntimeError, match="unknown mode 'hardtanh'"):
        torch.ops.addersr.adder_conv2d_grad_weight(gy, x, w, *geom, "hardtanh")
    with pytest.raises(RuntimeError, match=r"grad_output must have shape \(1, 5, 4, 4\), got \(1, 3, 4, 4\)"):
        torch.ops.addersr.adder_conv2d_grad_weight(gy[:, :3], x, w, *geom, "full")
    with pytest.raises(RuntimeError, match="does not match input dtype"):
        torch.ops.addersr.adder_conv2d(x, w.double(), None, *geom, "full", "hardtanh")
    # Each message that prints a shape: streaming an IntArrayRef into TORCH_CHECK in the nvcc-built
    # code crashed the process on the first GPU run (H200) instead of raising (shape_str fixes it).
    with pytest.raises(RuntimeError, match=r"bias must have shape \(5,\), got \(4,\)"):
        torch.ops.addersr.adder_conv2d(x, w, torch.zeros(4, device=DEV), *geom, "full", "hardtanh")
    with pytest.raises(RuntimeError, match="out channels 5 are not divisible by groups=2"):
        torch.ops.addersr.adder_conv2d(x, w, None, [1, 1], [0, 0], [1, 1], 2, "full", "hardtanh")
    with pytest.raises(RuntimeError, match=r"stride must be positive, got \(0, 1\)"):
        torch.ops.addersr.adder_conv2d(x, w, None, [0, 1], [0, 0], [1, 1], 1, "full", "hardtanh")
    with pytest.raises(RuntimeError, match=r"input must be 4-D \(N, C, H, W\), got \(4, 6, 6\)"):
        torch.ops.addersr.adder_conv2d(x[0], w, None, *geom, "full", "hardtanh")
    with pytest.raises(RuntimeError, match=r"output size would be non-positive for input \(1, 4, 6, 6\)"):
        torch.ops.addersr.adder_conv2d(x, torch.randn(5, 4, 7, 7, device=DEV), None, *geom, "full", "hardtanh")
    # Cin == 0 is rejected on CUDA as on the CPU and by the reference (shared geometry checks).
    zero = r"input has zero channels \(Cin == 0\)"
    with pytest.raises(RuntimeError, match="adder_conv2d: " + zero):
        torch.ops.addersr.adder_conv2d(x[:, :0], w[:, :0], torch.zeros(5, device=DEV), *geom, "full", "hardtanh")
    with pytest.raises(RuntimeError, match="adder_conv2d_grad_input: " + zero):
        torch.ops.addersr.adder_conv2d_grad_input(gy, x[:, :0], w[:, :0], *geom, "sign")
    with pytest.raises(RuntimeError, match="adder_conv2d_grad_weight: " + zero):
        torch.ops.addersr.adder_conv2d_grad_weight(gy, x[:, :0], w[:, :0], *geom, "full")
    with pytest.raises(ValueError, match="adder_conv2d: " + zero):
        adder_conv2d(x[:, :0], w[:, :0])


# --------------------------------------------------------------------------- autocast (docs/adder_op.md)

def _amp_bound(case: Case, abs_sum: torch.Tensor) -> torch.Tensor:
    return packed_fp16_error_bound(abs_sum, case.cin // case.groups * case.k[0] * case.k[1])


def _assert_amp_forward(y: torch.Tensor, case: Case, ref: torch.Tensor, bias: Optional[torch.Tensor], what: str):
    """The packed fp16 forward: float32, within its error bound of the float64 reference on the
    rounded operands (docs/adder_op.md, "Mixed precision")."""
    y = y.detach().double().cpu()
    assert y.dtype == torch.float64 and torch.isfinite(y).all(), f"{what}: non-finite values"
    abs_sum = (ref - (0 if bias is None else bias.view(1, -1, 1, 1))).abs()
    err, bound = (y - ref).abs(), _amp_bound(case, abs_sum)
    assert (err <= bound).all(), f"{what}: error {(err / bound).max().item():.3g}x the packed bound"


@pytest.mark.parametrize("amp_dtype", [torch.float16, torch.bfloat16])
def test_autocast_runs_the_packed_half_kernels_and_matches_reference(amp_dtype):
    """Under CUDA autocast the op runs adder_conv2d_amp: operands rounded to the autocast dtype,
    packed fp16 arithmetic, a float32 result within the packed bound of the float64 reference; the
    gradients (fp32 arithmetic on the rounded operands) arrive in each leaf's dtype."""
    case = CASES["dilation2_groups2_pad2"]
    x, w, b, gy = _make(case, torch.float32, True, 7)
    geom = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)
    xc = x.to(DEV, amp_dtype).requires_grad_()  # an activation of an autocast convolution
    wc, bc = w.float().to(DEV).requires_grad_(), b.float().to(DEV).requires_grad_()
    xr = xc.detach().cpu().double().requires_grad_()
    wr = wc.detach().cpu().to(amp_dtype).double().requires_grad_()  # the weight the op computes with
    br = bc.detach().cpu().double().requires_grad_()
    with torch.autocast("cuda", dtype=amp_dtype):
        yc = adder_conv2d(xc, wc, bc, **geom)
        direct = torch.ops.addersr.adder_conv2d(xc, wc, bc, list(case.stride), list(case.padding),
                                                list(case.dilation), case.groups, "full", "hardtanh")
    assert yc.dtype == direct.dtype == torch.float32
    torch.testing.assert_close(direct, yc, rtol=0, atol=0)
    yr = adder_conv2d_reference(xr, wr, br, **geom)
    _assert_amp_forward(yc, case, yr.detach(), br.detach(), "forward under autocast")
    yc.backward(gy.float().to(DEV))
    yr.backward(gy)
    assert (xc.grad.dtype, wc.grad.dtype, bc.grad.dtype) == (amp_dtype, torch.float32, torch.float32)
    _assert_close(wc.grad, wr.grad, torch.float32, "grad_weight under autocast")
    _assert_close(bc.grad, br.grad, torch.float32, "grad_bias under autocast")
    _assert_close(xc.grad, xr.grad, amp_dtype, "grad_input under autocast (in the leaf's dtype)")


@pytest.mark.parametrize("x_dtype,compute", [(torch.float32, torch.float16), (torch.float16, torch.float16),
                                             (torch.float32, torch.bfloat16), (torch.bfloat16, torch.bfloat16)],
                         ids=str)
@pytest.mark.parametrize("name", ["rgb_stem_27_taps_batch3", "cout70_stride2_nonsquare", "groups3_dilation_w",
                                  "edsr_like_64ch"])
def test_amp_op_matches_reference(name, x_dtype, compute):
    """adder_conv2d_amp called directly, float32 weights (as autocast passes a parameter): forward
    within the packed bound, gradients in the input's / weight's dtype."""
    case = CASES[name]
    x, w, b, gy = _make(case, x_dtype, True, 3)
    w, b, gy = w.float().double(), b.float().double(), gy.float().double()
    geom = (list(case.stride), list(case.padding), list(case.dilation), case.groups)
    xc = x.to(DEV, x_dtype).requires_grad_()
    wc, bc = w.to(DEV, torch.float32).requires_grad_(), b.to(DEV, torch.float32).requires_grad_()
    yc = torch.ops.addersr.adder_conv2d_amp(xc, wc, bc, *geom, "full", "hardtanh", compute)
    xr = x.to(compute).double().requires_grad_()
    wr, br = w.to(compute).double().requires_grad_(), b.clone().requires_grad_()
    yr = adder_conv2d_reference(xr, wr, br, *geom)
    _assert_amp_forward(yc, case, yr.detach(), b, "forward")
    yc.backward(gy.float().to(DEV))
    yr.backward(gy)
    assert (xc.grad.dtype, wc.grad.dtype) == (x_dtype, torch.float32)
    _assert_close(xc.grad, xr.grad, x_dtype, "grad_input")
    _assert_close(wc.grad, wr.grad, torch.float32, "grad_weight")


def test_amp_forward_survives_fp16_overflow():
    """Differences of ~4·10^4 overflow every fp16 run: the kernel recomputes those outputs in fp32."""
    case = CASES["edsr_like_64ch"]
    x, w, _, _ = _make(case, torch.float32, False, 4)
    x = (x.abs() * 1.5e4 + 1.5e4).clamp(max=6e4).half().double()
    w = -(w.abs() * 1.5e4 + 1.5e4).clamp(max=6e4).half().double()
    y = torch.ops.addersr.adder_conv2d_amp(x.to(DEV, torch.float16), w.to(DEV, torch.float16), None, [1, 1], [1, 1],
                                           [1, 1], 1, "full", "hardtanh", torch.float16)
    ref = adder_conv2d_reference(x, w, None, padding=1)
    assert torch.isfinite(y).all()
    _assert_close(y, ref, torch.float32, "overflowed outputs, recomputed in fp32")


def test_opcheck_amp_on_cuda():
    x = torch.randn(2, 6, 7, 5, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, device=DEV, requires_grad=True)
    b = torch.randn(4, device=DEV, requires_grad=True)
    geom = ([2, 1], [1, 1], [1, 1], 2)
    torch.library.opcheck(torch.ops.addersr.adder_conv2d_amp.default,
                          (x, w, b, *geom, "full", "hardtanh", torch.bfloat16))
    gy = torch.randn(2, 4, 4, 5, device=DEV)
    torch.library.opcheck(torch.ops.addersr.adder_conv2d_amp_grad_input.default,
                          (gy, x.detach(), w.detach(), *geom, "sign", torch.bfloat16))
    torch.library.opcheck(torch.ops.addersr.adder_conv2d_amp_grad_weight.default,
                          (gy, x.detach(), w.detach(), *geom, "sign", torch.bfloat16))


@pytest.mark.parametrize("amp_dtype", [torch.float16, torch.bfloat16])
def test_adder_edsr_under_cuda_autocast_is_finite_and_close_to_float32(amp_dtype):
    """The whole network: float16 must not overflow (the adder sums pass 65504; the outputs are
    float32 and overflowed fp16 runs are recomputed), and the output stays within the CPU bf16
    test's tolerance (tests/models/test_adder_sr_model_amp.py)."""
    from addersr_plugin.archs.adder_edsr_arch import AdderEDSR

    torch.manual_seed(0)
    net = AdderEDSR(3, 3, num_feat=32, num_block=4, upscale=2).to(DEV)
    torch.nn.init.normal_(net.conv_last.weight, 0, 0.05)  # a non-zero residual to compare
    x = torch.rand(2, 3, 24, 24, device=DEV)
    with torch.no_grad():
        ref = net(x)
        with torch.autocast("cuda", dtype=amp_dtype):
            out = net(x).float()
    up = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic")
    assert torch.isfinite(out).all()
    assert ((out - ref).abs().max() / (ref - up).abs().max()).item() < 0.04
    with torch.autocast("cuda", dtype=amp_dtype):
        net(x).float().mean().backward()
    assert all(p.grad is None or (p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all())
               for p in net.parameters())
