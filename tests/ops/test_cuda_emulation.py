"""The CUDA device code, run thread by thread on the CPU, against the float64 reference.

No GPU is needed: ``tests/cuda_emulation/emulate_adder_conv2d.cpp`` host-compiles the real
``csrc/cuda/adder_conv2d_kernels.cuh`` (and the launch plans of
``csrc/cuda/adder_conv2d_launch.h``) with g++ and the CUDA shim ``cuda_emu.h``: every CUDA
thread is a fiber, ``__syncthreads`` a checked barrier, ``__shared__`` per-block storage
poisoned before each block, device buffers fenced by inaccessible pages. The program is
compiled once per session into a temporary folder and run once per (case, dtype, thread
order) — float64 and float32 on every case, float16 and bfloat16 (emulated types, fp32
accumulation) on a few; each run does the forward and all four backward modes (grad_input hardtanh/sign,
grad_weight full/sign) exactly as ``adder_conv2d_cuda.cu`` launches them.

``addersr::adder_conv2d_amp`` (the op CUDA autocast runs: operands rounded to fp16/bf16, packed
fp16 arithmetic, float32 output) runs its packed forward kernel and the mixed-dtype backward on
the stand-ins of cuda_fp16.h in cuda_emu.h, whose rounding is checked here bit for bit against
PyTorch's; its forward is held to the error bound of the packed accumulation (docs/adder_op.md,
"Mixed precision"), which the test derives from the kernel's run length.

Every case runs with the threads of a block scheduled in thread order and in reverse
order: a missing barrier makes one of the two read stale shared memory (see cuda_emu.h).
The self-tests show that the emulator stops divergent barriers and catches races,
unwritten shared memory and out-of-bounds reads, so a pass here means something.
"""

from __future__ import annotations

import functools
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple, Optional, Tuple

import pytest
import torch

from addersr_plugin.ops.reference import (
    PACKED_FP16_RUN,
    output_size,
    packed_fp16_error_bound,
    reference_forward,
    reference_grad_input,
    reference_grad_weight,
)

ROOT = Path(__file__).resolve().parents[2]
EMU_DIR = ROOT / "tests" / "cuda_emulation"
SOURCE = EMU_DIR / "emulate_adder_conv2d.cpp"
KERNEL_DIR = ROOT / "csrc" / "cuda"
MAGIC = 0x414444455255  # "ADDERU", as in emulate_adder_conv2d.cpp
RUN_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the CUDA emulation uses Linux ucontext fibers and mmap guard pages")

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
    sms: int = 132  # multiprocessor count the grad_weight split-K plan assumes (an H100)


# Tiles: fp32 forward/grad_input 64x128x16, fp64 64x64x8; grad_weight 64x64 (x16 fp32, x8 fp64).
CASES = {
    # K = 27 taps: not a multiple of either stage depth; batch 3; padding.
    "rgb_stem_27_taps_batch3": Case(3, 3, 7, 7, 5, (3, 3), padding=(1, 1)),
    # Cout 70 > 64: two ragged M tiles; stride 2 on a non-square image. (A bias where Cout is odd.)
    "cout70_stride2_nonsquare": Case(1, 3, 9, 6, 70, (3, 3), stride=(2, 2), padding=(1, 1)),
    "dilation2_groups2_pad2": Case(2, 8, 8, 10, 12, (3, 3), padding=(2, 2), dilation=(2, 2), groups=2),
    "k1x1_groups4": Case(3, 8, 5, 7, 8, (1, 1), groups=4),
    "k5x5_mixed_stride_pad": Case(1, 4, 9, 9, 6, (5, 5), stride=(1, 2), padding=(2, 1)),
    # 144 taps: many stages; grad_weight has 3 tap tiles and 2 pixel splits (640 pixels).
    "k144_tap_tiles_and_splits": Case(2, 16, 16, 20, 7, (3, 3), padding=(1, 1)),
    "stride3_kernel3x2_dilation": Case(1, 2, 13, 11, 3, (3, 2), stride=(3, 2), padding=(0, 1), dilation=(2, 1)),
    # 130 input channels: three ragged input-channel tiles in grad_input.
    "cin130_ci_tiles": Case(1, 130, 3, 3, 2, (1, 1)),
    # 715 input pixels: several ragged pixel tiles; groups.
    "odd_pixels_groups2": Case(5, 6, 11, 13, 4, (3, 3), padding=(1, 1), groups=2),
    "one_pixel_image": Case(1, 1, 1, 1, 3, (3, 3), padding=(1, 1)),
    # 2668 pixels: 6 splits of 448 (a ragged last split); with one SM, 4 splits of 672 (the
    # 4·SMs bound) and a grid-limited reduction.
    "grad_weight_splits": Case(4, 5, 23, 29, 7, (3, 3), padding=(1, 1)),
    "grad_weight_one_sm": Case(4, 5, 23, 29, 7, (3, 3), padding=(1, 1), sms=1),
    "groups3_dilation_w_cout66": Case(2, 3, 17, 9, 66, (3, 3), stride=(2, 1), padding=(1, 1), dilation=(1, 2),
                                      groups=3),
}

# dtype codes of emulate_adder_conv2d.cpp's header
DTYPE_CODES = {torch.float64: 64, torch.float32: 32, torch.float16: 16, torch.bfloat16: 17}
DTYPES = [torch.float64, torch.float32]
HALF_DTYPES = [torch.float16, torch.bfloat16]
HALF_CASES = ["rgb_stem_27_taps_batch3", "dilation2_groups2_pad2", "k144_tap_tiles_and_splits", "grad_weight_splits"]
# float64: only the summation order differs from the reference. Otherwise fp32 accumulation
# and the output's rounding to the dtype.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
EXIT_UNSUPPORTED = 4


def _compiler() -> Optional[str]:
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Path:
    cxx = _compiler()
    if cxx is None:
        pytest.skip("no C++ compiler (g++, c++ or clang++) on PATH to build the CUDA emulation")
    exe = tmp_path_factory.mktemp("cuda_emulation") / "emulate_adder_conv2d"
    cmd = [cxx, "-std=c++20", "-O2", "-Wall", "-Wno-unknown-pragmas", f"-I{KERNEL_DIR}",
           str(SOURCE), "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"building the CUDA emulation failed:\n{' '.join(cmd)}\n{proc.stderr}"
    return exe


# ---------------------------------------------------------------------------- the emulator itself

@pytest.mark.parametrize("name", ["barrier", "race", "unwritten_shared"])
def test_emulator_self_test_passes(emulator, name):
    proc = subprocess.run([str(emulator), "--self-test", name], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("name,message", [
    ("early_return", "thread 0 returned while 63 threads wait at"),
    ("two_barriers", "waits at"),
])
def test_emulator_stops_divergent_barriers(emulator, name, message):
    proc = subprocess.run([str(emulator), "--self-test", name], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    assert "divergent __syncthreads" in proc.stderr and message in proc.stderr, proc.stderr


def test_emulator_faults_on_out_of_bounds_reads(emulator):
    proc = subprocess.run([str(emulator), "--self-test", "oob"], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert proc.returncode < 0, (proc.returncode, proc.stdout, proc.stderr)  # killed by SIGSEGV


# ---------------------------------------------------------------------------- the kernels

def _make(case: Case, dtype: torch.dtype, bias: bool, seed: int):
    """float64 tensors holding values of ``dtype``: x, w, b, grad_output."""
    g = torch.Generator().manual_seed(seed)
    ho, wo = output_size((case.h, case.w), case.k, case.stride, case.padding, case.dilation)
    x = torch.randn(case.n, case.cin, case.h, case.w, generator=g, dtype=torch.float64)
    w = torch.randn(case.cout, case.cin // case.groups, *case.k, generator=g, dtype=torch.float64)
    b = torch.randn(case.cout, generator=g, dtype=torch.float64) if bias else None
    gy = torch.randn(case.n, case.cout, ho, wo, generator=g, dtype=torch.float64)
    # Exact ties (x == w) hit sign(0) = 0 and the hardtanh clamp's edges.
    x.view(-1)[::7] = 0.5
    w.view(-1)[::5] = 0.5
    rnd = lambda t: None if t is None else t.to(dtype).double()  # noqa: E731
    return rnd(x), rnd(w), rnd(b), rnd(gy)


def _run_emulator(exe: Path, header, arrays) -> subprocess.CompletedProcess:
    """Header (int64 values) and (tensor, dtype) arrays on stdin; skips where the compiler lacks a dtype."""
    payload = struct.pack(f"<{len(header)}q", *header)
    for t, dtype in arrays:
        if t is not None:
            payload += t.to(dtype).contiguous().view(torch.uint8).numpy().tobytes()
    proc = subprocess.run([str(exe)], input=payload, capture_output=True, timeout=RUN_TIMEOUT_S)
    if proc.returncode == EXIT_UNSUPPORTED:
        pytest.skip(proc.stdout.decode().strip())
    assert proc.returncode == 0, f"emulator exit status {proc.returncode}: {proc.stderr.decode()}"
    return proc


def _header(case: Case, dtype: torch.dtype, reverse: bool, has_bias: bool, ho: int, wo: int, amp: int = 0):
    return [MAGIC, DTYPE_CODES[dtype], int(reverse), case.sms, case.n, case.cin, case.h, case.w, case.cout,
            *case.k, *case.stride, *case.padding, *case.dilation, case.groups, int(has_bias), ho, wo, amp]


def _split_results(stdout: bytes, parts) -> dict:
    """The emulator's stdout as named tensors (float64): parts is [(name, shape, dtype)] in output order."""
    out, offset = {}, 0
    for name, shape, dtype in parts:
        nbytes = torch.Size(shape).numel() * dtype.itemsize
        chunk = stdout[offset:offset + nbytes]
        assert len(chunk) == nbytes, f"emulator wrote {len(stdout)} bytes, too few for {name}"
        out[name] = torch.frombuffer(bytearray(chunk), dtype=dtype).double().view(shape)
        offset += nbytes
    assert offset == len(stdout), f"emulator wrote {len(stdout) - offset} bytes too many"
    return out


def _emulate(exe: Path, case: Case, dtype: torch.dtype, reverse: bool, x, w, b, gy):
    ho, wo = gy.shape[2:]
    proc = _run_emulator(exe, _header(case, dtype, reverse, b is not None, ho, wo),
                         [(t, dtype) for t in (x, w, b, gy)])
    parts = [("forward", gy.shape, dtype), ("grad_input hardtanh", x.shape, dtype), ("grad_input sign", x.shape, dtype),
             ("grad_weight full", w.shape, dtype), ("grad_weight sign", w.shape, dtype)]
    return _split_results(proc.stdout, parts), proc.stderr.decode()


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str):
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    tol = TOLERANCE[dtype]
    scale = max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol:.1g} x scale {scale:.3g}"


@functools.lru_cache(maxsize=None)
def _case_and_reference(name: str, dtype: torch.dtype):
    """Inputs and float64 reference results of one case (shared by both thread orders)."""
    case = CASES[name]
    x, w, b, gy = _make(case, dtype, bias=case.cout % 2 == 1, seed=case.cout)
    geom = (case.stride, case.padding, case.dilation, case.groups)
    expected = {
        "forward": reference_forward(x, w, b, *geom),
        "grad_input hardtanh": reference_grad_input(gy, x, w, *geom, "hardtanh"),
        "grad_input sign": reference_grad_input(gy, x, w, *geom, "sign"),
        "grad_weight full": reference_grad_weight(gy, x, w, *geom, "full"),
        "grad_weight sign": reference_grad_weight(gy, x, w, *geom, "sign"),
    }
    return (x, w, b, gy), expected


def _check(emulator, name: str, dtype: torch.dtype, reverse: bool):
    inputs, expected = _case_and_reference(name, dtype)
    actual, _ = _emulate(emulator, CASES[name], dtype, reverse, *inputs)
    for what, ref in expected.items():
        _assert_close(actual[what], ref, dtype, what)


@pytest.mark.parametrize("reverse", [False, True], ids=["thread_order", "reverse_order"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_kernels_match_reference(emulator, name, dtype, reverse):
    _check(emulator, name, dtype, reverse)


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("name", HALF_CASES)
def test_half_precision_kernels_accumulate_in_fp32(emulator, name, dtype):
    """fp16/bf16 tensors, fp32 accumulators and weights (at::acc_type), as the extension runs them."""
    _check(emulator, name, dtype, reverse=False)


@pytest.mark.parametrize("name,kernel,grid", [
    ("cout70_stride2_nonsquare", "forward", (1, 2, 1)),  # 15 pixels, 70 channels: two M tiles of 64
    ("cin130_ci_tiles", "grad_input sign", (1, 3, 1)),  # 130 input channels: three tiles
    ("odd_pixels_groups2", "grad_input hardtanh", (6, 1, 2)),  # 715 input pixels: six tiles of 128
    ("k144_tap_tiles_and_splits", "grad_weight full", (6, 1, 1)),  # 2 splits x 3 tap tiles
    ("grad_weight_splits", "grad_weight sign", (6, 1, 1)),  # 6 splits
    ("grad_weight_one_sm", "grad_weight full", (4, 1, 1)),  # 4 splits: 4 x SMs
    ("grad_weight_one_sm", "grad_weight reduce", (2, 1, 1)),  # 8 x SMs blocks
    ("rgb_stem_27_taps_batch3", "grad_weight full", (1, 1, 1)),  # 147 pixels: one split
])
def test_cases_reach_the_tiling_edges(emulator, name, kernel, grid):
    """The float32 launches of the cases above really have several tiles / splits."""
    inputs, _ = _case_and_reference(name, torch.float32)
    _, launches = _emulate(emulator, CASES[name], torch.float32, False, *inputs)
    expected = f"{kernel}: grid ({grid[0]},{grid[1]},{grid[2]})"
    assert expected in launches, f"{expected!r} not among the launches:\n{launches}"


# ---------------------------------------------------------------------------- adder_conv2d_amp (autocast)

FP32_U = 2.0 ** -24
AMP_CASES = ["rgb_stem_27_taps_batch3", "cout70_stride2_nonsquare", "dilation2_groups2_pad2",
             "k144_tap_tiles_and_splits", "groups3_dilation_w_cout66"]


def test_packed_run_length_is_the_kernels():
    """The error bound (reference.packed_fp16_error_bound) uses the kernel's run length."""
    text = (KERNEL_DIR / "adder_conv2d_kernels.cuh").read_text()
    assert int(re.search(r"constexpr int kPackedRun = (\d+);", text).group(1)) == PACKED_FP16_RUN


def packed_forward_bound(case: Case, abs_sum: torch.Tensor) -> torch.Tensor:
    return packed_fp16_error_bound(abs_sum, case.cin // case.groups * case.k[0] * case.k[1])


def _amp_inputs(case: Case, compute: torch.dtype, in_dtype: torch.dtype, seed: int, scale: float = 1.0):
    """float64 tensors: x (values of in_dtype), w, b (values of float32), grad_output (float32)."""
    x, w, b, gy = _make(case, torch.float64, bias=case.cout % 2 == 1, seed=seed)
    x, w = x * scale, w * scale
    f32 = lambda t: None if t is None else t.float().double()  # noqa: E731
    return x.to(in_dtype).double(), f32(w), f32(b), f32(gy)


def _emulate_amp(exe: Path, case: Case, compute: torch.dtype, in_dtype: torch.dtype, reverse: bool, x, w, b, gy):
    ho, wo = gy.shape[2:]
    header = _header(case, in_dtype, reverse, b is not None, ho, wo, amp=DTYPE_CODES[compute])
    proc = _run_emulator(exe, header, [(x, in_dtype), (w, torch.float32), (b, torch.float32), (gy, torch.float32)])
    parts = [("forward", gy.shape, torch.float32), ("grad_input hardtanh", x.shape, in_dtype),
             ("grad_input sign", x.shape, in_dtype), ("grad_weight full", w.shape, torch.float32),
             ("grad_weight sign", w.shape, torch.float32)]
    return _split_results(proc.stdout, parts), proc.stderr.decode()


def _amp_reference(case: Case, compute: torch.dtype, x, w, b, gy):
    """float64 results on the operands the op computes with: x and w rounded to the compute dtype."""
    xr, wr = x.to(compute).double(), w.to(compute).double()
    geom = (case.stride, case.padding, case.dilation, case.groups)
    y = reference_forward(xr, wr, b, *geom)
    return {
        "forward": y,
        "abs_sum": (y - (0 if b is None else b.view(1, -1, 1, 1))).abs(),  # Σ|x̃ - w̃|
        "grad_input hardtanh": reference_grad_input(gy, xr, wr, *geom, "hardtanh"),
        "grad_input sign": reference_grad_input(gy, xr, wr, *geom, "sign"),
        "grad_weight full": reference_grad_weight(gy, xr, wr, *geom, "full"),
        "grad_weight sign": reference_grad_weight(gy, xr, wr, *geom, "sign"),
    }


def test_fp16_stand_ins_round_like_pytorch(emulator):
    """cuda_emu.h's __half conversions and packed +, -, |·| against PyTorch's float16, bit for bit:
    random values over fp16's whole range, exact ties (round half to even), subnormals, overflow."""
    g = torch.Generator().manual_seed(0)
    n = 20000
    mags = torch.exp2(torch.empty(n).uniform_(-26, 17, generator=g))  # subnormals .. past 65504
    a = mags * torch.randn(n, generator=g).sign()
    b = a * torch.empty(n).uniform_(-2, 2, generator=g)
    # Exact ties: midpoints between neighbouring fp16 values, normal and subnormal.
    h = torch.randint(1, 0x7BFF, (2000,), generator=g, dtype=torch.int16).view(torch.float16).float()
    up = torch.nextafter(h.half(), torch.tensor(float("inf"), dtype=torch.float16)).float()
    a = torch.cat([a, (h + up) / 2, torch.tensor([65504.0, 65519.0, 65520.0, 2.0 ** -25, 3 * 2.0 ** -26, 0.0])])
    b = torch.cat([b, -(h + up) / 2, torch.tensor([-65504.0, 1.0, -1.0, 2.0 ** -25, 0.0, -0.0])])
    n = a.numel()
    payload = struct.pack("<q", n) + a.float().numpy().tobytes() + b.float().numpy().tobytes()
    proc = subprocess.run([str(emulator), "--fp16-ops"], input=payload, capture_output=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr.decode()
    bits = torch.frombuffer(bytearray(proc.stdout[:10 * n]), dtype=torch.int16).view(5, n)
    ah, bh = a.half(), b.half()
    expected = torch.stack([ah, bh, ah - bh, ah + bh, (ah - bh).abs()]).view(torch.int16)
    for row, name in enumerate(["round(a)", "round(b)", "a - b", "a + b", "|a - b|"]):
        both_nan = bits[row].view(torch.float16).isnan() & expected[row].view(torch.float16).isnan()
        bad = ((bits[row] != expected[row]) & ~both_nan).nonzero().flatten()
        assert bad.numel() == 0, f"{name}: {bad.numel()} mismatches, first at a={a[bad[0]].item()!r}, b={b[bad[0]].item()!r}"
    widened = torch.frombuffer(bytearray(proc.stdout[10 * n:]), dtype=torch.float32)
    every = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.float16).float()
    same = (widened == every) | (widened.isnan() & every.isnan())
    assert same.all(), f"__half2float differs on {(~same).sum().item()} of the 65536 fp16 values"


@pytest.mark.parametrize("in_name", ["float32_input", "compute_dtype_input"])
@pytest.mark.parametrize("compute", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("name", AMP_CASES)
def test_amp_kernels_match_reference_within_the_packed_bound(emulator, name, compute, in_name):
    """The packed fp16 forward within its derived bound, and visibly in half precision (an fp32
    computation would be ~100x closer); the backward in fp32 on the rounded operands, grad_input
    in the input's dtype, grad_weight in float32 (the weight's)."""
    case = CASES[name]
    in_dtype = torch.float32 if in_name == "float32_input" else compute
    reverse = (in_name == "float32_input") == (compute == torch.float16)  # both orders over the matrix
    x, w, b, gy = _amp_inputs(case, compute, in_dtype, seed=case.cout + 1)
    actual, _ = _emulate_amp(emulator, case, compute, in_dtype, reverse, x, w, b, gy)
    expected = _amp_reference(case, compute, x, w, b, gy)

    y, ref = actual["forward"], expected["forward"]
    assert torch.isfinite(y).all()
    err = (y - ref).abs()
    bound = packed_forward_bound(case, expected["abs_sum"])
    assert (err <= bound).all(), f"forward: error {(err / bound).max().item():.3g}x its bound"
    rel = (err / expected["abs_sum"].clamp_min(1e-30)).max().item()
    assert rel > 1e-5, f"forward: relative error {rel:.2g} is fp32-sized: the packed fp16 arithmetic did not run"
    for what in ("grad_input hardtanh", "grad_input sign"):
        _assert_close(actual[what], expected[what], in_dtype, what)
    for what in ("grad_weight full", "grad_weight sign"):
        _assert_close(actual[what], expected[what], torch.float32, what)


@pytest.mark.parametrize("compute", HALF_DTYPES, ids=str)
def test_amp_forward_recomputes_fp16_overflows_in_fp32(emulator, compute):
    """|x - w| ~ 4·10^4 overflows every fp16 run (65504): each output is recomputed in fp32 from
    global memory, so it is finite and fp32-accurate. bf16 operands also pass fp16's range."""
    case = CASES["k144_tap_tiles_and_splits"]
    x, w, b, gy = _amp_inputs(case, compute, torch.float32, seed=3)
    x = (x.abs() * 1.5e4 + 1.5e4).clamp(max=6e4)  # within fp16 (65504), their differences past it
    w = -(w.abs() * 1.5e4 + 1.5e4).clamp(max=6e4)
    if compute == torch.bfloat16:
        x[0, 0] = 1e5  # beyond fp16: inf once carried in fp16, recomputed from the bf16 value
    actual, _ = _emulate_amp(emulator, case, compute, torch.float32, False, x, w, b, gy)
    expected = _amp_reference(case, compute, x, w, b, gy)
    y = actual["forward"]
    assert torch.isfinite(y).all(), "an fp16 overflow reached the output"
    taps = case.cin * case.k[0] * case.k[1]
    err = (y - expected["forward"]).abs()
    assert (err <= (taps + 2) * FP32_U * expected["abs_sum"] + 1e-3).all(), (err / expected["abs_sum"]).max()


@pytest.mark.parametrize("name,grid", [
    ("cout70_stride2_nonsquare", (1, 2, 1)),  # two M tiles of 64
    ("k144_tap_tiles_and_splits", (5, 1, 1)),  # 640 pixels: five tiles of 128
    ("groups3_dilation_w_cout66", (1, 1, 3)),  # three groups
])
def test_amp_cases_reach_the_packed_tiling_edges(emulator, name, grid):
    case = CASES[name]
    inputs = _amp_inputs(case, torch.float16, torch.float16, seed=1)
    _, launches = _emulate_amp(emulator, case, torch.float16, torch.float16, False, *inputs)
    expected = f"forward packed: grid ({grid[0]},{grid[1]},{grid[2]})"
    assert expected in launches, f"{expected!r} not among the launches:\n{launches}"
