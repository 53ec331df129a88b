"""ONNX export (``addersr_plugin.onnx_export``): the adder op as standard ONNX operators, run in
ONNX Runtime against PyTorch. Needs the optional extra ``pip install addersr-plugin[onnx]``
(onnx, onnxscript, onnxruntime); skipped with the reason when it is missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import addersr_plugin  # noqa: F401  (registers the archs)
from addersr_plugin.archs.adder_edsr_arch import AdderEDSR
from addersr_plugin.archs.adder_vdsr_arch import AdderVDSR
from addersr_plugin.nn import AdderConv2d
from addersr_plugin.onnx_export import OnnxExportError, export_onnx, onnx_translation_table

NEEDS = "ONNX export tests need the onnx extra: pip install 'addersr-plugin[onnx]'"
onnx = pytest.importorskip("onnx", reason=NEEDS)
pytest.importorskip("onnxscript", reason=NEEDS)
ort = pytest.importorskip("onnxruntime", reason=NEEDS)

TOL = 1e-4  # max abs difference to PyTorch (fp32 summation order; docs/export.md gives the measured one)
STANDARD = {"Abs", "Add", "BatchNormalization", "Clip", "Concat", "Constant", "Conv", "DepthToSpace", "Div",
            "Gather", "Greater", "Mul", "Neg", "Pad", "Pow", "ReduceSum", "Relu", "Reshape", "Resize", "Shape",
            "Sign", "Slice", "Sub", "Where"}


@pytest.fixture(autouse=True)
def few_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _with_statistics(net: torch.nn.Module, cin: int = 3) -> torch.nn.Module:
    """Non-trivial BatchNorm running statistics and a non-zero ``conv_last``, so eval mode tests something."""
    torch.manual_seed(1)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.rand(2, cin, 16, 16))
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d) and not m.weight.any():
            torch.nn.init.normal_(m.weight, 0, 0.05)
    return net


def _session(program, tmp_path):
    path = str(tmp_path / "model.onnx")
    program.save(path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def _max_diff(sess, net, shapes) -> float:
    worst = 0.0
    for i, shape in enumerate(shapes):
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            ref = net(x)
        (out,) = sess.run(None, {"lq": x.numpy()})
        assert out.shape == tuple(ref.shape), shape
        worst = max(worst, float(np.abs(out - ref.numpy()).max()))
    return worst


def _op_types(program) -> set:
    return {n.op_type for n in program.model_proto.graph.node}


@pytest.mark.parametrize("name,net", [
    ("adder_edsr", lambda: AdderEDSR(3, 3, num_feat=16, num_block=2, upscale=2)),
    ("adder_edsr_paper_x3_power_adder_upsampler",
     lambda: AdderEDSR(3, 3, num_feat=8, num_block=1, upscale=3, image_skip=False, dc_free_head=False,
                       power_act=True, power_per_channel=True, adder_upsampler=True)),
    ("adder_vdsr", lambda: AdderVDSR(3, 3, num_feat=8, num_layer=4, upscale=2)),
])
def test_exported_network_runs_in_onnxruntime_like_pytorch(name, net, tmp_path):
    net = _with_statistics(net())
    program = export_onnx(net, example=torch.rand(2, 3, 16, 16))
    assert net.training, "export_onnx must put the training flags back"
    assert _op_types(program) <= STANDARD, _op_types(program) - STANDARD
    assert all(o.domain in ("", "ai.onnx") for o in program.model_proto.opset_import)
    net.eval()
    # odd sizes, another batch, and a 1x1 image: batch, height and width are dynamic
    assert _max_diff(_session(program, tmp_path), net, [(1, 3, 13, 11), (3, 3, 9, 17), (1, 3, 1, 1)]) < TOL


def test_adder_layer_geometry_stride_dilation_groups_bias(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(AdderConv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2,
                                          bias=True),
                              AdderConv2d(6, 3, 1, groups=3, bias=False)).eval()
    sess = _session(export_onnx(net, in_channels=4), tmp_path)
    # outputs of ~15: the tolerance is relative to 1 here as well
    assert _max_diff(sess, net, [(1, 4, 13, 11), (2, 4, 8, 21)]) < TOL


def test_static_export_keeps_the_example_shape(tmp_path):
    net = _with_statistics(AdderVDSR(3, 3, num_feat=8, num_layer=3, upscale=2)).eval()
    program = export_onnx(net, example=torch.rand(1, 3, 10, 12), dynamic=False)
    sess = _session(program, tmp_path)
    dims = [d.dim_value for d in program.model_proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 10, 12]
    assert _max_diff(sess, net, [(1, 3, 10, 12)]) < TOL


def test_without_the_translation_the_exporter_refuses_the_op():
    """Positive control: the table is what makes the export work."""
    net = torch.nn.Sequential(AdderConv2d(3, 4, 3, padding=1)).eval()
    with pytest.raises(Exception, match="adder_conv2d"):
        torch.onnx.export(net, (torch.rand(2, 3, 8, 8),), dynamo=True, verbose=False)
    assert list(onnx_translation_table()) == [torch.ops.addersr.adder_conv2d.default]


def test_named_errors_for_a_missing_onnxscript_and_an_old_opset(monkeypatch):
    net = torch.nn.Sequential(AdderConv2d(3, 4, 3))
    with pytest.raises(OnnxExportError, match="opset_version must be >= 18"):
        export_onnx(net, opset_version=17)
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now raises ImportError
    with pytest.raises(OnnxExportError, match=r"pip install 'addersr-plugin\[onnx\]'"):
        export_onnx(net)
