"""``benchmarks/quality/vdsr_probe.py``: the per-ReLU statistics that say where a VDSR went dead."""

from __future__ import annotations

import pytest
import torch

from bench_helpers import load_quality_script


@pytest.fixture(scope="module")
def probe():
    return load_quality_script("vdsr_probe")


def test_relu_stats_find_a_dead_layer(probe):
    from addersr_plugin.archs import VDSR

    torch.manual_seed(0)
    net = VDSR(num_feat=8, num_layer=5, upscale=2).eval()
    x = torch.rand(2, 3, 12, 12)
    fresh = probe.relu_stats(net, x)
    assert len(fresh) == 4 and all(0.1 < s["active"] < 0.9 for s in fresh)
    with torch.no_grad():
        net.body[4].bias.fill_(-100.0)  # the third conv's ReLU can never fire
    stats = probe.relu_stats(net, x)
    assert stats[2] == {"active": 0.0, "mean": 0.0}
    assert stats[3] == {"active": 0.0, "mean": 0.0}  # nothing passes on: its input is 0, its bias 0
    assert stats[:2] == fresh[:2]
