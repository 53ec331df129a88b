"""``benchmarks/quality/vdsr_optim_probe.py``: short VDSR trainings under candidate optimizers."""

from __future__ import annotations

import pytest
import torch

from bench_helpers import load_quality_script


@pytest.fixture(scope="module")
def probe():
    return load_quality_script("vdsr_optim_probe")


def _fixed_batches(n_distinct: int = 4):
    """A small fixed training set (smooth images, so a tiny VDSR can learn something)."""
    g = torch.Generator().manual_seed(0)
    gts = torch.nn.functional.interpolate(torch.rand(n_distinct, 2, 3, 8, 8, generator=g).flatten(0, 1),
                                          size=16, mode="bilinear", align_corners=False).view(n_distinct, 2, 3, 16, 16)
    lqs = [torch.nn.functional.avg_pool2d(gt, 2) for gt in gts]

    def data(iters):
        for i in range(iters):
            yield lqs[i % n_distinct], gts[i % n_distinct]
    return data


@pytest.mark.parametrize("name", ["adam_1e-4", "sgd_paper", "adam_2e-3_clip_auto", "sgd_paper_mse", "adam_1e-4_zl"])
def test_probe_traces_every_candidate_kind(probe, name):
    scored = []
    out = probe.probe(name, 50, data=_fixed_batches(), score=lambda net: scored.append(net) or {"gain": 0.0},
                      feat=8, layers=4)
    assert [t["iter"] for t in out["trace"]] == [25, 50]
    for t in out["trace"]:
        # per-pixel L1 whatever the loss and its reduction: images in [0, 1] give a per-pixel error below 1
        assert 0 < t["l1"] < 1
        assert 0 <= t["last_relu_active"] <= 1
    first = out["first_batch"]
    assert first["l1_bicubic"] > 0 and first["l1_fresh_net"] > 0
    if probe.CANDIDATES[name]["net"].get("zero_init_last"):
        assert first["l1_fresh_net"] == pytest.approx(first["l1_bicubic"], abs=1e-4)  # starts as bicubic (+bias 0)
    assert out["validation"] == {"gain": 0.0} and not scored[0].training
    assert {k: out[k] for k in probe.CANDIDATES[name]} == probe.CANDIDATES[name]


def test_probe_sees_a_dead_last_relu(probe):
    from addersr_plugin.archs import VDSR

    net = VDSR(num_feat=8, num_layer=4, upscale=2)
    lq = torch.rand(2, 3, 8, 8)
    assert 0 < probe.last_relu_active(net, lq) < 1
    with torch.no_grad():
        net.body[4].bias.fill_(-100.0)  # the last hidden conv: its ReLU never fires
    assert probe.last_relu_active(net, lq) == 0.0


def test_too_few_iterations_is_a_usage_error(probe, capsys):
    with pytest.raises(SystemExit):
        probe.main(["--iters", "3"])
    assert "--iters must be at least 25" in capsys.readouterr().err
