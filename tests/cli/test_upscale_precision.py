"""``addersr upscale --precision`` and ``inference.upscale_tensor(..., precision=)``: the forward
under autocast (CPU bf16 here), close to float32, and the refusals (fp16 on the CPU, int8 nets)."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

import addersr_plugin  # noqa: F401
from addersr_plugin.cli import addersr_main
from addersr_plugin.cli.upscale import _check_precision
from addersr_plugin.inference import UpscaleError, precision_dtype, upscale_tensor
from sr_helpers import textured_image, write_yaml

NET = {"type": "AdderEDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "upscale": 2}
# bf16 against fp32, relative to the largest residual over bicubic: measured <= 0.70 % on this net
# (4 inputs, whole and tiled; at most 0.74 of 255 grey levels); tests/models/test_adder_sr_model_amp.py
# measures the architectures: <= 1.45 %
TOL = 0.04


def _net():
    from basicsr.archs import build_network

    torch.manual_seed(0)
    net = build_network(dict(NET))
    torch.nn.init.normal_(net.conv_last.weight, 0, 0.05)  # a residual to compare (it starts at zero)
    with torch.no_grad():
        net(torch.rand(2, 3, 16, 16))  # BatchNorm statistics
    return net.eval()


def _residual_error(out, ref, lq) -> float:
    up = torch.nn.functional.interpolate(lq, scale_factor=2, mode="bicubic", align_corners=False)
    return ((out - ref).abs().max() / (ref - up).abs().max()).item()


@pytest.mark.parametrize("tile", [None, 16])
def test_bf16_forward_is_float32_and_close(tile):
    net = _net()
    lq = torch.rand(1, 3, 27, 35)
    ref = upscale_tensor(net, lq, 2, tile)
    out = upscale_tensor(net, lq, 2, tile, precision="bf16")
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert 0 < _residual_error(out, ref, lq) < TOL  # > 0: autocast really ran
    assert torch.equal(upscale_tensor(net, lq, 2, tile, precision="fp32"), ref)


def test_precision_errors():
    assert precision_dtype("fp32", "cpu") is None and precision_dtype("bf16", "cpu") is torch.bfloat16
    assert precision_dtype("fp16", "cuda") is torch.float16
    with pytest.raises(UpscaleError, match="precision fp16 needs a GPU: on the CPU use bf16"):
        precision_dtype("fp16", "cpu")
    with pytest.raises(UpscaleError, match="unknown precision 'int4'; expected one of fp32, bf16, fp16"):
        upscale_tensor(_net(), torch.rand(1, 3, 8, 8), 2, precision="int4")
    with pytest.raises(UpscaleError, match="--precision bf16 is for float models"):
        _check_precision("bf16", SimpleNamespace(key="int8", device="cpu"))
    _check_precision("fp32", SimpleNamespace(key="int8", device="cpu"))  # the default is always fine


def test_upscale_command_with_precision(tmp_path, capsys):
    opt = write_yaml(str(tmp_path / "opt.yml"), {"name": "x", "scale": 2, "network_g": NET})
    ckpt = str(tmp_path / "net.pth")
    torch.save({"params": _net().state_dict()}, ckpt)
    cv2.imwrite(str(tmp_path / "img.png"), textured_image(30, 41, 0))
    outs = {}
    for precision in ("fp32", "bf16"):
        out_dir = tmp_path / precision
        args = ["upscale", "--opt", opt, "--model", ckpt, "--input", str(tmp_path / "img.png"),
                "--output", str(out_dir), "--device", "cpu", "--precision", precision]
        assert addersr_main(args) == 0, capsys.readouterr().err
        outs[precision] = cv2.imread(str(out_dir / "img_x2.png")).astype(np.int16)
    assert outs["bf16"].shape == (60, 82, 3)
    assert np.abs(outs["bf16"] - outs["fp32"]).max() <= 3  # grey levels of 255 (measured: 1, rounding)
    args = ["upscale", "--opt", opt, "--model", ckpt, "--input", str(tmp_path / "img.png"),
            "--output", str(tmp_path / "fp16"), "--device", "cpu", "--precision", "fp16"]
    assert addersr_main(args) == 2
    assert "precision fp16 needs a GPU" in capsys.readouterr().err
