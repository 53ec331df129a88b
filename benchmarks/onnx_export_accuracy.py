#!/usr/bin/env python
"""How far the ONNX export of the adder networks is from PyTorch, in ONNX Runtime on the CPU.

    python benchmarks/onnx_export_accuracy.py [--json-dir DIR]

The cases of ``tests/integration/test_onnx_export.py``: AdderEDSR 16/2 ×2, the paper's ×3
AdderEDSR 8/1 with power activation and adder upsampler, AdderVDSR 8/4 ×2 (each with BatchNorm
statistics of 2 random batches and a non-zero ``conv_last``, exported once with dynamic shapes and
run on 1 × 13 × 11, 3 × 9 × 17 and 1 × 1 × 1 inputs), and two adder layers with stride, dilation,
groups and bias (1 × 13 × 11, 2 × 8 × 21). Float32, eval mode, one thread. Records the largest
|ONNX Runtime − PyTorch| per case in one dated JSON (``results_io``; default docs/export/).
Needs the ``onnx`` extra. Results: docs/export.md, "Accuracy".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import addersr_plugin  # noqa: F401
    from addersr_plugin.archs.adder_edsr_arch import AdderEDSR
    from addersr_plugin.archs.adder_vdsr_arch import AdderVDSR
    from addersr_plugin.nn import AdderConv2d
    from addersr_plugin.onnx_export import export_onnx
from bench_adder_conv import machine_info  # noqa: E402
from results_io import new_json_path, write_new_json  # noqa: E402

NET_SHAPES = [(1, 3, 13, 11), (3, 3, 9, 17), (1, 3, 1, 1)]


def with_statistics(net: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(1)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.rand(2, 3, 16, 16))
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d) and not m.weight.any():
            torch.nn.init.normal_(m.weight, 0, 0.05)
    return net.eval()


def geometry() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(AdderConv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2,
                                           bias=True), AdderConv2d(6, 3, 1, groups=3, bias=False)).eval()


CASES = {
    "AdderEDSR 16/2 x2": (lambda: with_statistics(AdderEDSR(3, 3, num_feat=16, num_block=2, upscale=2)),
                          dict(example=torch.rand(2, 3, 16, 16)), NET_SHAPES),
    "AdderEDSR paper x3 8/1, power activation, adder upsampler": (
        lambda: with_statistics(AdderEDSR(3, 3, num_feat=8, num_block=1, upscale=3, image_skip=False,
                                          dc_free_head=False, power_act=True, power_per_channel=True,
                                          adder_upsampler=True)),
        dict(example=torch.rand(2, 3, 16, 16)), NET_SHAPES),
    "AdderVDSR 8/4 x2": (lambda: with_statistics(AdderVDSR(3, 3, num_feat=8, num_layer=4, upscale=2)),
                         dict(example=torch.rand(2, 3, 16, 16)), NET_SHAPES),
    "adder layers: stride, dilation, groups, bias": (geometry, dict(in_channels=4),
                                                     [(1, 4, 13, 11), (2, 4, 8, 21)]),
}


def max_diff(make, export_kw, shapes, workdir: Path) -> dict:
    import onnxruntime as ort
    net = make()
    was_training = net.training
    program = export_onnx(net, **export_kw)
    net.train(was_training)
    path = str(workdir / "model.onnx")
    program.save(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    out = {}
    for i, shape in enumerate(shapes):
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            ref = net(x)
        (y,) = sess.run(None, {"lq": x.numpy()})
        out["x".join(map(str, shape))] = {"max_abs_diff": float(np.abs(y - ref.numpy()).max()),
                                          "max_abs_output": float(ref.abs().max())}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json-dir", type=Path, default=ROOT / "docs" / "export")
    args = p.parse_args(argv)
    import onnxruntime
    torch.set_num_threads(1)
    info = machine_info(torch.device("cpu"))
    info["onnxruntime"] = onnxruntime.__version__
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (make, kw, shapes) in CASES.items():
            results[name] = max_diff(make, kw, shapes, Path(tmp))
            print(f"{name}: " + ", ".join(f"{s} {r['max_abs_diff']:.2g}" for s, r in results[name].items()))
    worst = max(r["max_abs_diff"] for case in results.values() for r in case.values())
    print(f"largest difference: {worst:.2g}")
    report = {"machine": info,
              "command": "python benchmarks/onnx_export_accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "largest_abs_diff": worst, "results": results}
    return write_new_json(report, new_json_path(args.json_dir, "onnx_export_accuracy", info["date"]),
                          "onnx_export_accuracy")


if __name__ == "__main__":
    sys.exit(main())
