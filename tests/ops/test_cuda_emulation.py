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

Every case runs with the threads of a block scheduled in thread order and in reverse
order: a missing barrier makes one of the two read stale shared memory (see cuda_emu.h).
The self-tests show that the emulator stops divergent barriers and catches races,
unwritten shared memory and out-of-bounds reads, so a pass here means something.
"""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple, Optional, Tuple

import pytest
import torch

from addersr_plugin.ops.reference import (
    output_size,
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


def _emulate(exe: Path, case: Case, dtype: torch.dtype, reverse: bool, x, w, b, gy):
    ho, wo = gy.shape[2:]
    header = [MAGIC, DTYPE_CODES[dtype], int(reverse), case.sms, case.n, case.cin, case.h, case.w, case.cout,
              *case.k, *case.stride, *case.padding, *case.dilation, case.groups, int(b is not None), ho, wo]
    payload = struct.pack(f"<{len(header)}q", *header)
    for t in (x, w, b, gy):
        if t is not None:
            payload += t.to(dtype).contiguous().view(torch.uint8).numpy().tobytes()
    proc = subprocess.run([str(exe)], input=payload, capture_output=True, timeout=RUN_TIMEOUT_S)
    if proc.returncode == EXIT_UNSUPPORTED:
        pytest.skip(f"{dtype}: {proc.stdout.decode().strip()}")
    assert proc.returncode == 0, f"emulator exit status {proc.returncode}: {proc.stderr.decode()}"
    launches = proc.stderr.decode()
    flat = torch.frombuffer(bytearray(proc.stdout), dtype=dtype).double()
    shapes = {"forward": gy.shape, "grad_input hardtanh": x.shape, "grad_input sign": x.shape,
              "grad_weight full": w.shape, "grad_weight sign": w.shape}
    sizes = [torch.Size(s).numel() for s in shapes.values()]
    assert flat.numel() == sum(sizes), f"emulator wrote {flat.numel()} values, expected {sum(sizes)}"
    results = {name: part.view(shape) for (name, shape), part in zip(shapes.items(), flat.split(sizes))}
    return results, launches


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
