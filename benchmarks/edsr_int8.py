"""An int8 EDSR built the way an engineer would build it: the baseline of ``bench_int8*.py``.

BasicSR's EDSR computes ``conv_last(upsample(conv_after_body(body(h)) + h)) / 255 + mean`` with
``h = conv_first((x - mean) * 255)``. Only the convolutional part (``conv_first`` … ``conv_last``,
the upsampler included) is quantized; the mean shift and the ×255 / ÷255 stay in float outside
it (:class:`FloatShell`). Weights: int8, per output channel, symmetric; activations: uint8, per
tensor, ranges from a histogram observer; x86 engine (oneDNN for these convolutions).
Calibration: crops the caller passes (``bench_int8_isa.py``: ≥ 32 crops of the validation photos,
never a scored one).

Two routes, both here:

* :func:`edsr_int8_fx` — ``torch.ao`` FX graph mode (``prepare_fx``/``convert_fx``) on the core
  between a :class:`~torch.ao.quantization.QuantStub` and a ``DeQuantStub``: a module of
  ``torch.ao.nn.quantized`` convolutions (fused conv+ReLU in the residual blocks, quantized adds)
  that runs int8 eagerly.
* :func:`edsr_int8_pt2e` — PT2E: ``torch.export`` of the core, ``X86InductorQuantizer``,
  ``prepare_pt2e``/``convert_pt2e`` (in ``torchao.quantization.pt2e`` on torch ≥ 2.10: torch 2.14
  no longer ships ``torch.ao.quantization.quantize_pt2e``), then ``torch.compile`` with inductor
  freezing, which lowers the quantize/dequantize patterns to oneDNN int8 convolutions. Run eagerly
  the converted graph is fp32 convolutions between fake quantize/dequantize (int8 numerics, float
  speed). Raises :class:`Unavailable` when torchao is not installed.

:func:`activation_report` follows one image through the float and the FX int8 core: every
activation's range against its int8 grid, and the error accumulated up to it (where a loss comes
from).
"""

from __future__ import annotations

import copy
from typing import Dict, Iterable, List, Sequence

import torch
from torch import nn


class Unavailable(RuntimeError):
    """This route cannot be built with the installed packages (the reason is the message)."""


class Block(nn.Module):
    """BasicSR's ``ResidualBlockNoBN`` (same modules), without its ``* res_scale`` when that is 1
    (a quantized multiply by 1 is a pass over memory that changes nothing)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.conv1, self.relu, self.conv2 = block.conv1, nn.ReLU(), block.conv2
        self.res_scale = float(block.res_scale)

    def forward(self, x):
        out = self.conv2(self.relu(self.conv1(x)))
        return x + (out if self.res_scale == 1.0 else out * self.res_scale)


class EDSRCore(nn.Module):
    """EDSR's convolutions, ``conv_first`` … ``conv_last``, between quant/dequant stubs: input the
    shifted image ``(x - mean) * img_range``, output the same range before ``/ img_range + mean``."""

    def __init__(self, edsr: nn.Module):
        super().__init__()
        from torch.ao.quantization import DeQuantStub, QuantStub

        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.conv_first, self.conv_after_body = edsr.conv_first, edsr.conv_after_body
        self.body = nn.Sequential(*[Block(b) for b in edsr.body])
        self.upsample, self.conv_last = edsr.upsample, edsr.conv_last

    def forward(self, x):
        x = self.conv_first(self.quant(x))
        res = self.conv_after_body(self.body(x)) + x
        return self.dequant(self.conv_last(self.upsample(res)))


class FloatShell(nn.Module):
    """``core((x - mean) * img_range) / img_range + mean`` in float around a (quantized) core."""

    def __init__(self, core: nn.Module, mean: torch.Tensor, img_range: float):
        super().__init__()
        self.core = core
        self.register_buffer("mean", mean.detach().clone().view(1, -1, 1, 1).float())
        self.img_range = float(img_range)

    def forward(self, x):
        return self.core((x - self.mean) * self.img_range) / self.img_range + self.mean


def float_parts(edsr: nn.Module):
    """(a copy of the core, mean, img_range) of a BasicSR EDSR."""
    edsr = copy.deepcopy(edsr).float().eval()
    return EDSRCore(edsr).eval(), edsr.mean.detach().clone(), float(edsr.img_range)


def shifted(batches: Iterable[torch.Tensor], mean: torch.Tensor, img_range: float) -> List[torch.Tensor]:
    """The calibration images as the core sees them."""
    return [(b - mean.view(1, -1, 1, 1)) * img_range for b in batches]


def set_engine() -> str:
    engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    torch.backends.quantized.engine = engine
    return engine


def fx_qconfig_mapping(engine: str, reduce_range: bool):
    """Per-channel symmetric int8 weights, histogram-observed uint8 activations (``reduce_range``:
    7-bit activations, torch's x86 default, which keeps AVX2's 16-bit ``vpmaddubsw`` sums from
    saturating; with VNNI or AMX it only costs resolution)."""
    from torch.ao.quantization import QConfig, QConfigMapping, get_default_qconfig_mapping
    from torch.ao.quantization.observer import HistogramObserver, PerChannelMinMaxObserver

    qconfig = QConfig(activation=HistogramObserver.with_args(reduce_range=reduce_range),
                      weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8,
                                                                qscheme=torch.per_channel_symmetric))
    mapping = get_default_qconfig_mapping(engine)  # keeps the engine's fixed-qparams ops
    return mapping.set_global(qconfig) if isinstance(mapping, QConfigMapping) else QConfigMapping().set_global(qconfig)


# The int8/float split of AdderEDSR-int8 (addersr_plugin.quant): only the body's layers (each residual
# block's two and conv_after_body) are 8-bit; the head, the upsampler, the tail, the residual adds and
# the skip around the body stay float. EDSR-int8 with this split is the like-for-like baseline.
MATCHED_FLOAT_LAYERS = ("quant", "conv_first", "upsample", "conv_last")


def edsr_int8_fx(edsr: nn.Module, calib: Sequence[torch.Tensor], reduce_range: bool = False,
                 float_layers: Sequence[str] = (), float_shuffle: bool = False,
                 float_adds: bool = False) -> nn.Module:
    """EDSR with its core quantized by FX post-training quantization (x86 engine), calibrated on
    ``calib`` ((N, 3, H, W) images in [0, 1]); the mean shift stays float, and so do the modules
    named in ``float_layers`` (e.g. ``conv_last``; ``quant``: the input is not quantized, the first
    int8 layer quantizes its own input) and, with ``float_adds``, the residual additions (each
    int8 convolution then dequantizes its output). ``float_layers=MATCHED_FLOAT_LAYERS,
    float_adds=True`` is AdderEDSR-int8's split."""
    import operator

    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine = set_engine()
    core, mean, img_range = float_parts(edsr)
    data = shifted(calib, mean, img_range)
    mapping = fx_qconfig_mapping(engine, reduce_range)
    for name in float_layers:
        mapping.set_module_name(name, None)
    if float_adds:
        mapping.set_object_type(operator.add, None).set_object_type(torch.add, None)
    if float_shuffle:  # torch's pixel_shuffle of a quantized NHWC tensor is a slow generic copy
        mapping.set_object_type(nn.PixelShuffle, None)
    prepared = prepare_fx(core, mapping, (data[0],))
    with torch.inference_mode():
        for x in data:
            prepared(x)
    q = convert_fx(prepared)
    return FloatShell(q, mean, img_range).eval()


def pt2e_modules():
    """(prepare_pt2e, convert_pt2e, X86InductorQuantizer, get_default_x86_inductor_quantization_config),
    from torchao or from torch.ao (older torch); :class:`Unavailable` if neither has them."""
    errors = []
    for base in ("torchao.quantization.pt2e", "torch.ao.quantization"):
        try:
            qp = __import__(f"{base}.quantize_pt2e", fromlist=["prepare_pt2e", "convert_pt2e"])
            xq = __import__(f"{base}.quantizer.x86_inductor_quantizer",
                            fromlist=["X86InductorQuantizer", "get_default_x86_inductor_quantization_config"])
            return (qp.prepare_pt2e, qp.convert_pt2e, xq.X86InductorQuantizer,
                    xq.get_default_x86_inductor_quantization_config)
        except Exception as exc:  # noqa: BLE001 - any import failure means "not this route"
            errors.append(f"{base}: {type(exc).__name__}: {exc}")
    raise Unavailable("PT2E quantization needs torchao on this torch (pip install torchao): " + "; ".join(errors))


def edsr_int8_pt2e(edsr: nn.Module, calib: Sequence[torch.Tensor], compile: bool = True,
                   example: torch.Tensor | None = None, reduce_range: bool = False) -> nn.Module:
    """EDSR with its core quantized by PT2E (``torch.export``, ``X86InductorQuantizer``, per-channel
    weights), calibrated on ``calib``; ``compile``: ``torch.compile`` with inductor freezing (the
    route to oneDNN int8 kernels), else the converted graph run eagerly (fake quantization).
    ``example``: the input the compiled model is first run on (its shape is compiled);
    ``reduce_range``: 7-bit activations (see :func:`fx_qconfig_mapping`)."""
    prepare_pt2e, convert_pt2e, X86InductorQuantizer, default_config = pt2e_modules()
    core, mean, img_range = float_parts(edsr)
    data = shifted(calib, mean, img_range)
    dim = torch.export.Dim.DYNAMIC
    exported = torch.export.export(core, (data[0],), dynamic_shapes=({2: dim, 3: dim},)).module()
    quantizer = X86InductorQuantizer().set_global(default_config(reduce_range=reduce_range))
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for x in data:
            prepared(x)
    q = convert_pt2e(prepared)
    if compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        q = torch.compile(q)
        if example is not None:
            with torch.no_grad():
                q((example - mean.view(1, -1, 1, 1)) * img_range)
    shell = FloatShell(q, mean, img_range)
    shell.training = False  # exported graphs refuse .eval(); they have no train/eval behaviour here
    return shell


def quantized_modules(model: nn.Module) -> Dict[str, str]:
    """{name: class} of the ``torch.ao.nn.quantized`` modules of ``model`` (FX route)."""
    return {n: type(m).__name__ for n, m in model.named_modules()
            if type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized"))}


def _points(gm: torch.fx.GraphModule) -> Dict[str, torch.fx.Node]:
    """{name: node} of the convolutions (by module name) and the residual adds (``add0``, ``add1``
    … in graph order) of a traced float core or a converted FX core."""
    import operator

    points, n_add = {}, 0
    for node in gm.graph.nodes:
        if node.op == "call_module":
            if type(gm.get_submodule(node.target)).__name__ not in ("QuantStub", "DeQuantStub", "ReLU", "Identity"):
                points[node.target] = node
        elif node.op == "call_function" and (node.target in (operator.add, torch.add)
                                             or "quantized.add" in str(node.target)):
            points[f"add{n_add}"] = node
            n_add += 1
    return points


def _capture(gm: torch.fx.GraphModule, x: torch.Tensor) -> Dict[torch.fx.Node, torch.Tensor]:
    out: Dict[torch.fx.Node, torch.Tensor] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out[n] = super().run_node(n)
            return out[n]

    with torch.inference_mode():
        Recorder(gm).run(x)
    return out


def activation_report(edsr: nn.Module, fx_model: nn.Module, image: torch.Tensor) -> Dict[str, dict]:
    """Where an FX-quantized EDSR's error comes from, on one image ((1, 3, H, W) in [0, 1]): for every
    convolution and residual add of the core, the float activation's RMS and range, the int8
    tensor's representable range and step (scale), and the RMS error accumulated up to that point
    (int8 network vs float network, both in the core's units: 1 = one grey level at the input)."""
    core, mean, img_range = float_parts(edsr)
    traced, qcore = torch.fx.symbolic_trace(core), fx_model.core
    x = shifted([image], mean, img_range)[0]
    fpts, qpts = _points(traced), _points(qcore)
    fout, qout = _capture(traced, x), _capture(qcore, x)
    report = {}
    for name, fnode in fpts.items():
        if name not in qpts:
            continue
        f, q = fout[fnode], qout[qpts[name]]
        if name.endswith("conv1"):  # fused conv+ReLU in the int8 core
            f = torch.relu(f)
        row = {"float_rms": float(f.pow(2).mean().sqrt()), "float_range": [float(f.min()), float(f.max())]}
        if q.is_quantized:
            s, z = q.q_scale(), q.q_zero_point()
            row.update(step=s, int8_range=[(0 - z) * s, (255 - z) * s])
            q = q.dequantize()
        row["error_rms"] = float((q - f).pow(2).mean().sqrt())
        report[name] = row
    return report


__all__ = ["Unavailable", "EDSRCore", "FloatShell", "MATCHED_FLOAT_LAYERS", "edsr_int8_fx", "edsr_int8_pt2e", "quantized_modules",
           "activation_report", "pt2e_modules", "fx_qconfig_mapping", "set_engine", "float_parts"]
