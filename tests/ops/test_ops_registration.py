"""How ``addersr::adder_conv2d`` is registered: one schema in C++ and its Python mirror,
``torch.library.opcheck`` (schema, fake tensors, autograd, AOT dispatch), ``torch.compile``,
and the pure-PyTorch fallback used when the compiled extension is missing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from addersr_plugin.ops import adder_conv2d, extension_available, extension_status
from addersr_plugin.ops._schema import LIBRARY, SCHEMAS

REPO = Path(__file__).resolve().parents[2]
OPS = torch.ops.addersr
MODES = [("full", "hardtanh"), ("full", "sign"), ("sign", "hardtanh"), ("sign", "sign")]


# --------------------------------------------------------------------------- schemas

def _cpp_schemas() -> dict:
    """The ``m.def("...")`` strings of csrc/adder_conv2d.cpp, adjacent literals joined."""
    text = (REPO / "csrc" / "adder_conv2d.cpp").read_text()
    defs = {}
    for body in re.findall(r"m\.def\(\s*((?:\"[^\"]*\"\s*)+)\)", text):
        schema = "".join(re.findall(r"\"([^\"]*)\"", body))
        defs[schema.split("(", 1)[0]] = schema
    return defs


def test_python_schema_mirror_matches_cpp_definition():
    assert _cpp_schemas() == SCHEMAS


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_registered_schema_is_the_declared_one(name):
    registered = str(getattr(OPS, name).default._schema)
    assert registered == f"{LIBRARY}::{SCHEMAS[name]}"


# --------------------------------------------------------------------------- opcheck

def _opcheck_args(n, cin, cout, hw, k, stride, padding, dilation, groups, bias, dtype, channels_last, modes):
    g = torch.Generator().manual_seed(n * 100 + cin)
    x = torch.randn(n, cin, *hw, generator=g, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin // groups, *k, generator=g, dtype=dtype)
    b = torch.randn(cout, generator=g, dtype=dtype) if bias else None
    return x, w, b, list(stride), list(padding), list(dilation), groups, *modes


OPCHECK_CASES = {
    "rgb-stem-pad1": (2, 3, 4, (6, 5), (3, 3), (1, 1), (1, 1), (1, 1), 1, False, torch.float32, False, MODES[0]),
    "groups2-s2-d2-bias-cl": (1, 4, 6, (9, 8), (3, 3), (2, 2), (2, 2), (2, 2), 2, True, torch.float32, True,
                              MODES[3]),
    "k1-f64-asym": (3, 5, 2, (4, 7), (1, 1), (1, 2), (0, 1), (1, 1), 1, True, torch.float64, False, MODES[1]),
    "k5x3-groups4": (1, 8, 4, (7, 6), (5, 3), (1, 1), (2, 1), (1, 2), 4, False, torch.float32, False, MODES[2]),
}


@pytest.mark.parametrize("case", list(OPCHECK_CASES))
def test_opcheck_forward(case):
    args = list(_opcheck_args(*OPCHECK_CASES[case]))
    args[0].requires_grad_(True)
    args[1].requires_grad_(True)
    if args[2] is not None:
        args[2].requires_grad_(True)
    torch.library.opcheck(OPS.adder_conv2d.default, tuple(args))


@pytest.mark.parametrize("case", ["rgb-stem-pad1", "groups2-s2-d2-bias-cl"])
def test_opcheck_backward_ops(case):
    x, w, b, stride, padding, dilation, groups, weight_grad, input_grad = _opcheck_args(*OPCHECK_CASES[case])
    y = OPS.adder_conv2d(x, w, b, stride, padding, dilation, groups, weight_grad, input_grad)
    gy = torch.randn_like(y)
    geom = (stride, padding, dilation, groups)
    torch.library.opcheck(OPS.adder_conv2d_grad_input.default, (gy, x, w, *geom, input_grad))
    torch.library.opcheck(OPS.adder_conv2d_grad_weight.default, (gy, x, w, *geom, weight_grad))


# --------------------------------------------------------------------------- torch.compile

@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_torch_compile_fullgraph_forward_backward(dynamic):
    torch._dynamo.reset()

    def loss_fn(x, w, b):
        y = adder_conv2d(x, w, b, stride=1, padding=1, groups=2, weight_grad="sign", input_grad="hardtanh")
        return torch.relu(y + 40.0).square().mean()

    compiled = torch.compile(loss_fn, backend="aot_eager", fullgraph=True, dynamic=dynamic)
    for n, hw in [(2, (7, 6)), (3, (5, 9))]:  # a second shape: recompiles (static) or reuses (dynamic)
        g = torch.Generator().manual_seed(n)
        leaves = [torch.randn(n, 4, *hw, generator=g), torch.randn(6, 2, 3, 3, generator=g),
                  torch.randn(6, generator=g)]
        eager_in = [t.clone().requires_grad_(True) for t in leaves]
        comp_in = [t.clone().requires_grad_(True) for t in leaves]
        eager_loss = loss_fn(*eager_in)
        comp_loss = compiled(*comp_in)
        eager_loss.backward()
        comp_loss.backward()
        torch.testing.assert_close(comp_loss, eager_loss)
        for e, c in zip(eager_in, comp_in):
            torch.testing.assert_close(c.grad, e.grad)


# --------------------------------------------------------------------------- fallback

def _kernel_registration(name: str, key: str) -> str:
    """Where the dispatcher says the ``key`` kernel of ``name`` was registered (file:line)."""
    dump = torch._C._dispatch_dump(f"{LIBRARY}::{name}")
    line = next((ln for ln in dump.splitlines() if ln.startswith(f"{key}: registered at ")), None)
    assert line is not None, f"no {key} kernel for {name}:\n{dump}"
    return line.split("registered at ", 1)[1].split(" ::", 1)[0]


def test_this_process_reports_which_kernels_serve():
    """``extension_status()`` against what the dispatcher and the import system actually hold:
    a CPU kernel registered from C++ source exactly when the compiled module is imported."""
    status = extension_status()
    assert status["extension_loaded"] == extension_available()
    compiled_module = sys.modules.get("addersr_plugin._C")
    compiled_file = getattr(compiled_module, "__file__", "") or ""
    assert (compiled_module is not None and compiled_file.endswith(".so")) == status["extension_loaded"]
    for name in SCHEMAS:
        site = _kernel_registration(name, "CPU")
        from_cpp = re.search(r"\.(cpp|cu):\d+$", site) is not None
        assert from_cpp == status["extension_loaded"], (name, site, status)
        if not from_cpp:
            assert site.endswith(os.path.join("ops", "_extension.py") + site[site.rindex(":"):]), site
    if status["extension_loaded"]:
        assert "CPU" not in status["reference_backends"], "compiled CPU kernels must not be shadowed"
    else:
        assert "CPU" in status["reference_backends"]
        assert status["load_error"], "a missing extension must say why"


_FALLBACK_SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from addersr_plugin import ops
    inputs = torch.load(sys.argv[1])
    outputs = []
    for item in inputs:
        leaves = [t.clone().requires_grad_(True) if t is not None else None for t in item["leaves"]]
        y = ops.adder_conv2d(*leaves, **item["geom"], weight_grad=item["wg"], input_grad=item["ig"])
        grads = torch.autograd.grad(y, [t for t in leaves if t is not None], item["gy"])
        outputs.append([y.detach(), *grads])
    torch.save({
        "warnings": [str(w.message) for w in caught if issubclass(w.category, ops.AdderExtensionWarning)],
        "status": ops.extension_status(),
        "outputs": outputs,
    }, sys.argv[2])
    """
)


def _fallback_items():
    items = []
    geoms = [dict(stride=1, padding=1, dilation=1, groups=1), dict(stride=(2, 1), padding=2, dilation=2, groups=2)]
    for dtype in (torch.float64, torch.float32):
        for gi, geom in enumerate(geoms):
            for wg, ig in MODES:
                g = torch.Generator().manual_seed(len(items))
                x = torch.randn(3, 4, 9, 7, generator=g, dtype=dtype)
                w = torch.randn(6, 4 // geom["groups"], 3, 3, generator=g, dtype=dtype)
                b = torch.randn(6, generator=g, dtype=dtype) if gi == 0 else None
                y_shape = adder_conv2d(x, w, b, **geom).shape
                items.append(dict(leaves=[x, w, b], geom=geom, wg=wg, ig=ig,
                                  gy=torch.randn(y_shape, generator=g, dtype=dtype)))
    return items


@pytest.fixture(scope="module")
def fallback_run(tmp_path_factory):
    """One fresh interpreter with ADDERSR_DISABLE_EXTENSION=1 running the op on ``_fallback_items``."""
    tmp_path = tmp_path_factory.mktemp("fallback")
    items = _fallback_items()
    torch.save(items, tmp_path / "in.pt")
    env = dict(os.environ, ADDERSR_DISABLE_EXTENSION="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-c", _FALLBACK_SCRIPT, str(tmp_path / "in.pt"), str(tmp_path / "out.pt")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return items, torch.load(tmp_path / "out.pt")


def test_fallback_registers_the_reference_and_warns_once(fallback_run):
    """With ADDERSR_DISABLE_EXTENSION=1 a fresh interpreter registers the reference as the op's
    kernels and warns once, saying why."""
    _, result = fallback_run
    assert result["status"]["extension_loaded"] is False
    assert "CPU" in result["status"]["reference_backends"]
    assert len(result["warnings"]) == 1, result["warnings"]
    assert "disabled by ADDERSR_DISABLE_EXTENSION" in result["warnings"][0]
    assert "pure-PyTorch reference" in result["warnings"][0]


@pytest.mark.skipif(not extension_available(),
                    reason="compares the fallback with the compiled kernels; without them this process runs the "
                           "same reference and the comparison would be of the code with itself")
def test_fallback_kernels_match_the_compiled_kernels(fallback_run):
    """The fallback (reference) kernels give the compiled kernels' forward and gradients."""
    items, result = fallback_run
    assert re.search(r"\.cpp:\d+$", _kernel_registration("adder_conv2d", "CPU"))  # really compiled code here
    assert len(result["outputs"]) == len(items)
    for item, fallback in zip(items, result["outputs"]):
        leaves = [t.clone().requires_grad_(True) if t is not None else None for t in item["leaves"]]
        y = adder_conv2d(*leaves, **item["geom"], weight_grad=item["wg"], input_grad=item["ig"])
        here = [y.detach(), *torch.autograd.grad(y, [t for t in leaves if t is not None], item["gy"])]
        tol = dict(rtol=1e-9, atol=1e-9) if y.dtype == torch.float64 else dict(rtol=1e-4, atol=2e-3)
        for name, a, b in zip(["forward", "grad input", "grad weight", "grad bias"], fallback, here):
            torch.testing.assert_close(a, b, **tol, msg=lambda m: f"{name} {item['geom']} {item['wg']}/{item['ig']}: {m}")
