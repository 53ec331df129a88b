"""ONNX export of adder networks: ``addersr::adder_conv2d`` written with standard ONNX operators.

    from addersr_plugin.onnx_export import export_onnx
    export_onnx(net, "adder_edsr.onnx")                    # dynamic batch, height and width

ONNX has no adder convolution, so the exported graph computes ``Y = -Σ|X - W| (+ b)`` one kernel
tap at a time (docs/export.md): ``Pad`` the input once; for tap (i, j) a strided ``Slice`` is the
input pixel each output pixel meets at that tap (im2col without ``Im2Col``, which is not a standard
operator), ``Sub`` broadcasts it against the tap's weights ``W[:, :, i, j]`` per group,
``Abs`` and ``ReduceSum`` over the group's input channels give that tap's share, and the taps are
summed with ``Add``. Every operator is in the default domain, so ONNX Runtime (and any runtime of
opset 18 or later) runs it. The largest intermediate is one tap's ``Sub``, N·Cout·(Cin/groups)·Ho·Wo
values: export or run big images in tiles (``inference.upscale_tensor`` does the same in PyTorch).

The dynamo exporter (``torch.onnx.export(..., dynamo=True)``, torch's default since 2.9) takes the
translation through ``custom_translation_table`` (:func:`onnx_translation_table`); the TorchScript
exporter (``dynamo=False``) is not supported. ``onnx``, ``onnxscript`` (and ``onnxruntime`` to run
the result) are the optional extra ``pip install addersr-plugin[onnx]``.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import ops  # noqa: F401  (defines torch.ops.addersr.adder_conv2d, which the table names)

OPSET = 18  # Shape(start, end) needs 15, ReduceSum with axes as an input 13, Pad 18's layout 18
_TO_END = 2 ** 63 - 1  # a Slice end past the last element


class OnnxExportError(RuntimeError):
    """The ONNX export cannot run: a missing optional dependency, or a network it cannot trace."""


def _onnxscript_opset():
    try:
        import onnxscript
    except ImportError as exc:
        raise OnnxExportError("ONNX export needs onnx and onnxscript: pip install 'addersr-plugin[onnx]' "
                              "(or pip install onnx onnxscript onnxruntime)") from exc
    return onnxscript.opset18


def adder_conv2d_onnx(input, weight, bias, stride, padding, dilation, groups, weight_grad="full",
                      input_grad="hardtanh"):
    """The ONNX graph of ``addersr::adder_conv2d`` (a trace-only onnxscript function; see the module docs).

    ``weight_grad`` and ``input_grad`` choose the backward only, so the forward graph ignores them.
    Shapes of the weight are static (the exporter knows them); batch, height and width may be dynamic.
    """
    op = _onnxscript_opset()
    cout, cin_g, kh, kw = (int(d) for d in weight.shape)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    x = op.Pad(input, op.Constant(value_ints=[0, 0, ph, pw, 0, 0, ph, pw])) if ph or pw else input
    # (G, Cout/G, Cin/G, kh·kw): tap t of group g is w_taps[g, :, :, t]
    w_taps = op.Reshape(weight, op.Constant(value_ints=[groups, cout // groups, cin_g, kh * kw]))
    total = None
    for i in range(kh):
        for j in range(kw):
            # Ending dilation·(k-1-i) before the padded edge leaves exactly Ho (Wo) strided pixels for
            # every tap, whatever the (dynamic) input size: no Shape arithmetic needed.
            ends = [-dh * (kh - 1 - i) or _TO_END, -dw * (kw - 1 - j) or _TO_END]
            xs = op.Slice(x, op.Constant(value_ints=[i * dh, j * dw]), op.Constant(value_ints=ends),
                          op.Constant(value_ints=[2, 3]), op.Constant(value_ints=[sh, sw]))
            # (N, G, 1, Cin/G, Ho, Wo) against (1, G, Cout/G, Cin/G, 1, 1)
            x6 = op.Reshape(xs, op.Concat(op.Shape(xs, end=1), op.Constant(value_ints=[groups, 1, cin_g]),
                                          op.Shape(xs, start=2), axis=0))
            w6 = op.Reshape(op.Gather(w_taps, op.Constant(value_int=i * kw + j), axis=3),
                            op.Constant(value_ints=[1, groups, cout // groups, cin_g, 1, 1]))
            tap = op.ReduceSum(op.Abs(op.Sub(x6, w6)), op.Constant(value_ints=[3]), keepdims=0)
            total = tap if total is None else op.Add(total, tap)
    # (N, G, Cout/G, Ho, Wo) -> (N, Cout, Ho, Wo); output channel g·Cout/G + c, as the op orders them
    y = op.Neg(op.Reshape(total, op.Concat(op.Shape(total, end=1), op.Constant(value_ints=[cout]),
                                           op.Shape(total, start=3), axis=0)))
    if bias is not None:
        y = op.Add(y, op.Reshape(bias, op.Constant(value_ints=[1, cout, 1, 1])))
    return y


def onnx_translation_table() -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)`` of any network with
    adder layers (what :func:`export_onnx` passes)."""
    _onnxscript_opset()  # fail here, with the install hint, rather than inside the exporter
    return {torch.ops.addersr.adder_conv2d.default: adder_conv2d_onnx}


def export_onnx(net: torch.nn.Module, path: Optional[str] = None, example: Optional[torch.Tensor] = None, *,
                in_channels: int = 3, dynamic: bool = True, opset_version: int = OPSET,
                optimize: bool = True) -> "torch.onnx.ONNXProgram":
    """Export ``net`` to ONNX with the adder layers as standard operators; saves it to ``path`` if given.

    Args:
        net: any network (the plugin's archs, or basicsr's) taking one (N, C, H, W) image tensor.
        path: the .onnx file to write (weights inside it); None: only return the program.
        example: an input to trace with; default ``rand(2, in_channels, 32, 32)`` on the net's device.
            Its batch should not be 1 when ``dynamic`` (torch.export specialises size-1 dimensions).
        dynamic: batch, height and width dynamic (named ``batch``, ``height``, ``width``); else the
            example's shape is fixed.
        opset_version: ONNX opset of the graph (>= 18).
        optimize: let the exporter fold constants and remove redundant nodes.

    The network is exported in eval mode (BatchNorm with its running statistics, as at inference);
    its training flags are put back afterwards. The input is named ``lq`` and the output ``sr``.
    Returns the ``torch.onnx.ONNXProgram``; ``program.model_proto`` is the ONNX model.
    """
    table = onnx_translation_table()
    if opset_version < OPSET:
        raise OnnxExportError(f"opset_version must be >= {OPSET} (the adder translation uses opset {OPSET}), "
                              f"got {opset_version}")
    if example is None:
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        example = torch.rand(2, in_channels, 32, 32, device=device)
    dynamic_shapes = None
    if dynamic:
        dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
        dynamic_shapes = (dims,)
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        program = torch.onnx.export(net, (example,), dynamo=True, custom_translation_table=table,
                                    dynamic_shapes=dynamic_shapes, opset_version=opset_version,
                                    input_names=["lq"], output_names=["sr"], optimize=optimize, verbose=False)
    finally:
        for m, training in modes:
            m.training = training
    if program is None:  # not expected with dynamo=True; a guard rather than an AttributeError below
        raise OnnxExportError("torch.onnx.export returned no program")
    if path is not None:
        program.save(path)
    return program


__all__ = ["OPSET", "OnnxExportError", "adder_conv2d_onnx", "export_onnx", "onnx_translation_table"]
