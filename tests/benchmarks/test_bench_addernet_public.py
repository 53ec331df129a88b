"""``benchmarks/bench_addernet_public.py``: the public-AdderNet formulation it measures
(``adder_conv_measure.addernet_unfold_forward``) computes the adder
layer (float64 reference), and a tiny run writes a JSON without overwriting. No timing asserted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from bench_helpers import BENCH, load_benchmark


def _direct(x, w, pad):
    """-Σ|x − w| by its definition: one shifted view of the padded input per kernel tap."""
    k = w.shape[-1]
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    ho, wo = xp.shape[2] - k + 1, xp.shape[3] - k + 1
    out = torch.zeros(x.shape[0], w.shape[0], ho, wo, dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            patch = xp[:, None, :, i:i + ho, j:j + wo]  # N, 1, Cin, Ho, Wo
            out -= (patch - w[None, :, :, i, j, None, None]).abs().sum(2)
    return out


@pytest.mark.parametrize("shape", [(3, 5, 7, 9, 2, 3, 1), (1, 3, 4, 6, 6, 1, 0), (2, 2, 3, 5, 5, 5, 2)])
def test_public_formulation_matches_the_reference(shape):
    measure = load_benchmark("adder_conv_measure")
    n, cin, cout, h, w_, k, pad = shape
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, cin, h, w_, generator=g, dtype=torch.float64)
    w = torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64)
    got = measure.addernet_unfold_forward(x, w, pad)
    want = _direct(x, w, pad)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-10)


def test_tiny_run_writes_a_json_and_never_overwrites(tmp_path):
    """In a fresh process: the script forks to measure memory, which is safe only before any
    parallel region has run (pytest's process has run many)."""
    script = BENCH / "bench_addernet_public.py"
    out = tmp_path / "r.json"
    args = [sys.executable, str(script), "--case", "stem", "--batch", "1", "--size", "6", "--repeat", "1",
            "--slow-repeat", "1", "--json", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rec = json.loads(out.read_text())
    assert rec["case"]["n"] == 1 and rec["case"]["hw"] == 6
    assert set(rec["median_s"]) == {"conv", "conv_cl", "adder", "addernet_public"}
    assert rec["max_abs_difference_public_vs_op"] < 1e-3
    assert all("peak_mib" in m for m in rec["memory"].values()), rec["memory"]
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "never overwritten" in again.stderr
