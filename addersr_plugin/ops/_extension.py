"""Loading the compiled kernels, and the pure-PyTorch fallback when they are missing.

The compiled extension ``addersr_plugin._C`` defines the ``addersr`` operators (one
``TORCH_LIBRARY`` in ``csrc/adder_conv2d.cpp``) with CPU and, when built with CUDA,
CUDA kernels. When it cannot be loaded, the very same schemas are defined here and
the reference implementation is registered as their CPU and CUDA kernels, so every
layer above sees one operator either way. A backend the extension was built without
(e.g. CUDA in a CPU-only build) also gets the reference kernel. Each fallback is
announced by one warning.
"""

from __future__ import annotations

import importlib
import os
import platform
import warnings

import torch

from . import reference, reference_u8
from ._schema import LIBRARY, SCHEMAS
from .errors import AdderExtensionWarning

_LOADED = False
_LOAD_ERROR: str | None = None
_FALLBACK_BACKENDS: list = []
_FALLBACK_LIB = None  # keeps the Python-defined library alive


# The CPU features the float kernels' AVX-512 path needs (csrc/cpu/adder_conv2d_cpu_avx512.cpp
# checks the same ones with __builtin_cpu_supports), and the variable that turns it off.
AVX512_FLAGS = ("avx512f", "avx512dq", "avx512vl", "avx512bw")
FLOAT_KERNEL_ENV = "ADDERSR_FLOAT_KERNEL"


def _cpu_flags() -> set | None:
    """The x86 feature flags of /proc/cpuinfo; None where they cannot be read (or not x86-64)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        with open("/proc/cpuinfo") as f:
            line = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        return None
    return set(line.partition(":")[2].split())


def _cpu_supports_build() -> str | None:
    """The x86-64 build uses AVX2/FMA; refuse to load it (SIGILL) on a CPU without them."""
    flags = _cpu_flags()
    if flags is None:
        return None
    missing = [f for f in ("avx2", "fma") if f not in flags]
    return f"this CPU lacks {', '.join(missing)}" if missing else None


def cpu_has_avx512() -> bool:
    """True when this CPU has what the float kernels' AVX-512 path needs (x86-64 only)."""
    flags = _cpu_flags()
    return flags is not None and all(f in flags for f in AVX512_FLAGS)


def cpu_float_kernel() -> str:
    """Which compiled kernels serve a float32 CPU call now: "avx512" (where the CPU has it),
    "avx2" (else, or when ADDERSR_FLOAT_KERNEL=avx2 forces it; read at every call, like the C++
    side does), or "reference" when the extension is not loaded. float64 always runs "avx2"."""
    if not _LOADED:
        return "reference"
    forced = os.environ.get(FLOAT_KERNEL_ENV, "") == "avx2"
    return "avx512" if cpu_has_avx512() and not forced else "avx2"


def _try_load() -> None:
    global _LOADED, _LOAD_ERROR
    if os.environ.get("ADDERSR_DISABLE_EXTENSION", "") not in ("", "0"):
        _LOAD_ERROR = "disabled by ADDERSR_DISABLE_EXTENSION"
        return
    problem = _cpu_supports_build()
    if problem:
        _LOAD_ERROR = problem
        return
    try:
        importlib.import_module("addersr_plugin._C")
        _LOADED = True
    except ImportError as exc:  # not built, or built against another torch
        _LOAD_ERROR = str(exc)


def _has_kernel(name: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"{LIBRARY}::{name}", key)


def _register_fallbacks() -> None:
    global _FALLBACK_LIB
    kernels = {
        "adder_conv2d": lambda x, w, b, s, p, d, g, _wg, _ig: reference.reference_forward(x, w, b, s, p, d, g),
        "adder_conv2d_grad_input": reference.reference_grad_input,
        "adder_conv2d_grad_weight": reference.reference_grad_weight,
        "adder_conv2d_amp": lambda x, w, b, s, p, d, g, _wg, _ig, cd: reference.reference_amp_forward(
            x, w, b, s, p, d, g, cd),
        "adder_conv2d_amp_grad_input": reference.reference_amp_grad_input,
        "adder_conv2d_amp_grad_weight": reference.reference_amp_grad_weight,
        "adder_conv2d_u8": reference_u8.fallback_forward_u8,
        "adder_conv2d_u8_affine": reference_u8.fallback_forward_u8_affine,
    }
    # Define what the extension did not (all of it when missing; newer ops when it is stale).
    lib = torch.library.Library(LIBRARY, "FRAGMENT")
    for name, schema in SCHEMAS.items():
        if not hasattr(getattr(torch.ops, LIBRARY), name):
            lib.define(schema)
    for key in ("CPU", "CUDA"):
        missing = [name for name in SCHEMAS if not _has_kernel(name, key)]
        for name in missing:
            lib.impl(name, kernels[name], key)
        if missing:
            _FALLBACK_BACKENDS.append(key)
    _FALLBACK_LIB = lib


_try_load()
_register_fallbacks()

if not _LOADED:
    warnings.warn(
        "addersr_plugin: the compiled adder kernels could not be loaded "
        f"({_LOAD_ERROR}); using the pure-PyTorch reference, which is correct but slow. "
        "Build them with `pip install --no-build-isolation -e .` (see README).",
        AdderExtensionWarning,
        stacklevel=2,
    )
elif "CUDA" in _FALLBACK_BACKENDS and torch.cuda.is_available():
    warnings.warn(
        "addersr_plugin: this build has no CUDA kernels; CUDA tensors use the pure-PyTorch "
        "reference. Rebuild with FORCE_CUDA=1 for the fast kernels.",
        AdderExtensionWarning,
        stacklevel=2,
    )


def extension_available() -> bool:
    """True when the compiled ``addersr_plugin._C`` kernels are loaded."""
    return _LOADED


def extension_status() -> dict:
    """Which implementation serves each backend, and why the extension is missing if it is."""
    return {
        "extension_loaded": _LOADED,
        "load_error": _LOAD_ERROR,
        "reference_backends": list(_FALLBACK_BACKENDS),
        "cpu_float_kernel": cpu_float_kernel(),
    }
