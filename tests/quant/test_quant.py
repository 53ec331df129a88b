"""8-bit quantization of adder networks (addersr_plugin.quant): the clamping identity, the integer
layer's arithmetic, a round trip on a briefly trained AdderEDSR, the checkpoint format and the
``addersr quantize`` command's bad inputs."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from addersr_plugin.archs import AdderEDSR
from addersr_plugin.cli.addersr_cmd import addersr_main
from addersr_plugin.nn import AdderConv2d, ShortcutAdderBlock
from addersr_plugin.ops import adder_conv2d_reference, adder_conv2d_u8_reference
from addersr_plugin.quant import (Grid, QuantAdderConv2d, QuantCheckpointError, clamp_weights, collect, convert,
                                  grid_for_range, load_int8, psnr, quantize, quantize_model, read_int8, save_int8)
from addersr_plugin.quant.calibrate import CalibrationError

# the paper's power activation on: the quantizer must handle every unit AdderEDSR can have
NET_G = dict(type="AdderEDSR", num_in_ch=3, num_out_ch=3, num_feat=16, num_block=2, upscale=2, power_act=True)


# --------------------------------------------------------------------------- the arithmetic

def test_clamping_moves_the_excess_into_an_exact_bias():
    """For inputs within [lo, hi]: Σ|x − w| = Σ|x − clamp(w)| + Σ|w − clamp(w)| (float64, zero
    padding included since 0 is inside the range); outside the range it is not."""
    g = torch.Generator().manual_seed(0)
    lo, hi = -0.7, 1.3
    x = torch.empty(2, 5, 7, 6, dtype=torch.float64).uniform_(lo, hi, generator=g)
    w = torch.randn(4, 5, 3, 3, generator=g, dtype=torch.float64) * 2  # many weights out of range
    clamped, corr = clamp_weights(w, lo, hi)
    assert (clamped != w).any()
    exact = adder_conv2d_reference(x, w, padding=1)
    moved = adder_conv2d_reference(x, clamped, padding=1) - corr.view(1, -1, 1, 1)
    torch.testing.assert_close(moved, exact, rtol=0, atol=1e-12)
    x_out = x.clone()
    x_out[0, 0, 0, 0] = 5.0
    assert not torch.allclose(adder_conv2d_reference(x_out, clamped, padding=1) - corr.view(1, -1, 1, 1),
                              adder_conv2d_reference(x_out, w, padding=1))


def test_grid_contains_zero_and_covers_the_range():
    for lo, hi in [(-1.0, 3.0), (0.5, 2.0), (-4.0, -1.0), (0.0, 1e-3)]:  # (0, 0): test_quant_calibration.py
        grid = grid_for_range(lo, hi)
        assert 0 <= grid.zero_point <= 255
        assert grid.lo <= min(lo, 0) * (1 - 1e-12) and grid.hi >= max(hi, 0) * (1 - 1e-12)
        assert grid.scale <= (max(hi, 0) - min(lo, 0)) / 254 + 1e-8  # at most half a level lost to rounding
        assert quantize(torch.zeros(1), grid).item() == grid.zero_point


def _bn(channels, seed):
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels).eval()
    bn.weight.data = torch.rand(channels, generator=g) + 0.5
    bn.bias.data = torch.randn(channels, generator=g)
    bn.running_mean.data = torch.randn(channels, generator=g) * 5 - 20
    bn.running_var.data = torch.rand(channels, generator=g) * 30 + 1
    return bn


@pytest.mark.parametrize("geom", [dict(kernel_size=3, padding=1), dict(kernel_size=1, stride=2, groups=2),
                                  dict(kernel_size=5, padding=2, dilation=1, bias=True)])
def test_integer_layer_is_exact_for_values_on_the_grid(geom):
    """Inputs and weights on the grid (weights partly outside its range): the integer layer
    equals BN(adder(x)) of the float layer up to float32 rounding."""
    g = torch.Generator().manual_seed(1)
    layer = AdderConv2d(4, 6, eta=None, **geom).double()
    grid = Grid(0.05, 40)
    on_grid = lambda t: (torch.round(t / grid.scale)) * grid.scale  # noqa: E731
    layer.weight.data = on_grid(torch.randn(layer.weight.shape, generator=g, dtype=torch.float64) * 6)
    if layer.bias is not None:
        layer.bias.data = torch.randn(6, generator=g, dtype=torch.float64)
    assert (layer.weight > grid.hi).any() or (layer.weight < grid.lo).any()
    bn = _bn(6, 2).double()
    q = torch.randint(0, 256, (2, 4, 9, 8), generator=g)
    x = (q - grid.zero_point).double() * grid.scale
    want = bn(layer(x)).float()
    ql = QuantAdderConv2d.from_float(layer, grid, bn)
    got = ql(x.float())
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-3)
    # The layer is exactly the affine of the integer op's sums.
    sums = adder_conv2d_u8_reference(quantize(x.float(), grid), ql.qweight, grid.zero_point, layer.stride,
                                     layer.padding, layer.dilation, layer.groups)
    assert torch.equal(ql.int_sums(x.float()), sums)


# --------------------------------------------------------------------------- a trained network

def _photo_pairs(n_crops: int, size: int, seed: int):
    """(lr, hr) float crops in [0, 1] from scikit-image photos (LR = bicubic ×2 of HR)."""
    import skimage.data

    rng = np.random.default_rng(seed)
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    lrs, hrs = [], []
    for i in range(n_crops):
        img = photos[i % len(photos)]
        top, left = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        hr = torch.from_numpy(img[top:top + size, left:left + size].astype(np.float32) / 255).permute(2, 0, 1)[None]
        lrs.append(torch.nn.functional.interpolate(hr, scale_factor=0.5, mode="bicubic", antialias=True,
                                                   align_corners=False).clamp(0, 1))
        hrs.append(hr)
    return torch.cat(lrs), torch.cat(hrs)


@pytest.fixture(scope="module")
def trained():
    """A small AdderEDSR trained for 60 Adam steps on photo crops (BN statistics are real)."""
    torch.manual_seed(0)
    net = AdderEDSR(**{k: v for k, v in NET_G.items() if k != "type"})
    lr, hr = _photo_pairs(48, 32, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    for step in range(60):
        idx = torch.randint(0, lr.shape[0], (8,))
        loss = (net(lr[idx]) - hr[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def test_round_trip_on_a_trained_net(trained, tmp_path):
    calib = list(_photo_pairs(4, 64, seed=1)[0].split(1))
    held_lr, _ = _photo_pairs(4, 64, seed=2)
    qnet, report = quantize_model(trained, calib, "auto")
    # Every adder layer replaced, every BN after an adder layer folded (5 units in this net).
    assert not any(isinstance(m, AdderConv2d) for m in qnet.modules())
    n_units = sum(isinstance(m, ShortcutAdderBlock) for m in trained.modules())
    assert sum(isinstance(m, QuantAdderConv2d) for m in qnet.modules()) == n_units == 5
    assert len(report["folded_norms"]) == n_units
    assert not any(isinstance(m, nn.BatchNorm2d) for m in qnet.modules())
    from addersr_plugin.nn import PowerActivation
    assert not any(isinstance(m, PowerActivation) for m in qnet.modules())
    # Every unit runs its in-place inference version (verified against the generic block).
    from addersr_plugin.quant.block import InferenceShortcutBlock
    from addersr_plugin.quant.block import InferenceResidualBlock
    n_res = trained.__class__.__name__ == "AdderEDSR" and len(trained.body)
    assert len(report["inplace_blocks"]) == n_units + n_res
    assert sum(isinstance(m, InferenceShortcutBlock) for m in qnet.modules()) == n_units
    assert sum(isinstance(m, InferenceResidualBlock) for m in qnet.modules()) == n_res == 2
    # The integer network runs channels_last (its float convs then round as in NHWC): the generic
    # blocks in the same layout give the same bits.
    from addersr_plugin.quant.convert import channels_last
    generic = channels_last(convert(trained, *collect(trained, calib), report["method"]))
    assert qnet.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert torch.equal(generic(held_lr), qnet(held_lr))
    assert set(report["psnr_vs_float"]) == {"minmax", "percentile", "mse"}
    assert report["psnr_vs_float"][report["method"]] == max(report["psnr_vs_float"].values())
    with torch.inference_mode():
        ref, out = trained(held_lr), qnet(held_lr)
    # ~105 dB is reached here (the kept method on held-out crops; minmax 108, mse 106); a grid off by
    # a level, a lost bias correction or clamped real activations fall far below this floor
    assert psnr(out.clamp(0, 1), ref.clamp(0, 1)) > 95.0, "8-bit adder layers must stay close to float"
    # Save, load: the same network, bit for bit.
    path = str(tmp_path / "net_int8.pth")
    save_int8(qnet, path, NET_G, 2, report)
    loaded, scale, rep = load_int8(path)
    assert scale == 2 and rep["method"] == report["method"]
    assert sum(isinstance(m, InferenceShortcutBlock) for m in loaded.modules()) == n_units
    assert sum(isinstance(m, InferenceResidualBlock) for m in loaded.modules()) == n_res
    with torch.inference_mode():
        assert torch.equal(loaded(held_lr), out)


def test_every_method_runs_and_minmax_covers_the_observed_range(trained):
    calib = list(_photo_pairs(2, 48, seed=3)[0].split(1))
    stats, folds = collect(trained, calib)
    for name, s in stats.items():
        grid = convert(trained, stats, folds, "minmax").get_submodule(name).input_grid
        assert grid.lo <= min(s.lo, 0) + 1e-6 and grid.hi >= s.hi - 1e-6


def test_folding_only_where_bn_consumes_the_adder_output():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.adder = AdderConv2d(3, 4, 3, padding=1, eta=None)
            self.norm = nn.BatchNorm2d(4)   # fed by the adder: folded
            self.other = nn.BatchNorm2d(3)  # fed by the input: kept

        def forward(self, x):
            return self.norm(self.adder(x)) + self.other(x).mean(1, keepdim=True)

    torch.manual_seed(0)
    model = Odd().eval()
    x = torch.rand(1, 3, 8, 8)
    qmodel, report = quantize_model(model, [x], "minmax")
    assert report["folded_norms"] == {"adder": "norm"}
    assert isinstance(qmodel.other, nn.BatchNorm2d) and isinstance(qmodel.norm, nn.Identity)
    with torch.no_grad():
        assert psnr(qmodel(x), model(x), peak=float(model(x).abs().max())) > 70  # 74.6 dB reached


def test_calibration_errors():
    with pytest.raises(CalibrationError, match="no AdderConv2d layers"):
        quantize_model(nn.Conv2d(3, 3, 3), [torch.rand(1, 3, 8, 8)])
    net = AdderEDSR(3, 3, num_feat=8, num_block=1, upscale=2)
    with pytest.raises(CalibrationError, match="no calibration images"):
        quantize_model(net, [])
    with pytest.raises(CalibrationError, match="unknown calibration method 'kl'"):
        quantize_model(net, [torch.rand(1, 3, 8, 8)], "kl")


# --------------------------------------------------------------------------- checkpoint format

@pytest.fixture(scope="module")
def int8_file(trained, tmp_path_factory):
    qnet, report = quantize_model(trained, [_photo_pairs(1, 48, seed=4)[0]], "minmax")
    path = str(tmp_path_factory.mktemp("ckpt") / "net_int8.pth")
    save_int8(qnet, path, NET_G, 2, report)
    return path


def test_checkpoint_fields(int8_file):
    ckpt = read_int8(int8_file)
    assert ckpt["format"] == "addersr-int8" and ckpt["version"] == 1
    assert ckpt["network_g"] == NET_G and ckpt["scale"] == 2
    assert all(info["folded_norm"] for info in ckpt["quant_layers"].values())
    assert ckpt["params"]["body.0.unit1.adder.qweight"].dtype == torch.uint8


def _rewrite(src, dst, edit):
    ckpt = torch.load(src, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dst)
    return str(dst)


@pytest.mark.parametrize("case", [
    ("version-2", lambda c: c.update(version=2), r"has int8 format version 2; this addersr-plugin reads version 1"),
    ("no-format", lambda c: c.pop("format"), r"is not an int8 checkpoint"),
    ("no-params", lambda c: c.pop("params"), r"field 'params' is missing or not a dict"),
    ("bad-scale", lambda c: c.update(scale="2"), r"field 'scale' is missing or not a int"),
    ("wrong-layers", lambda c: c["quant_layers"].pop("body.0.unit1.adder"),
     r"integer layers \['body.0.unit1.adder'\] do not match the adder layers of network_g"),
    ("wrong-arch", lambda c: c["network_g"].update(num_feat=8), r"params do not fit network_g"),
], ids=lambda c: c[0])
def test_bad_checkpoints_are_named(int8_file, tmp_path, case):
    _, edit, pattern = case
    path = _rewrite(int8_file, tmp_path / "bad.pth", edit)
    with pytest.raises(QuantCheckpointError, match=pattern):
        load_int8(path)


def test_corrupt_and_missing_files(int8_file, tmp_path):
    data = open(int8_file, "rb").read()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(QuantCheckpointError, match=r"cannot read int8 checkpoint .*truncated.pth: the file is "
                                                   r"truncated \(\d+ bytes\)"):
        load_int8(str(truncated))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(QuantCheckpointError, match=r"cannot read int8 checkpoint .*garbage.pth: not a torch file"):
        load_int8(str(garbage))
    with pytest.raises(QuantCheckpointError, match=r"int8 checkpoint not found: .*nope.pth"):
        load_int8(str(tmp_path / "nope.pth"))


# --------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def cli_setup(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    torch.save({"params": trained.state_dict()}, root / "net.pth")
    (root / "calib").mkdir()
    lr, _ = _photo_pairs(3, 64, seed=5)
    for i, t in enumerate(lr):
        img = (t.permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)
        cv2.imwrite(str(root / "calib" / f"c{i}.png"), img)
    import yaml
    (root / "opt.yml").write_text(yaml.safe_dump({"scale": 2, "network_g": NET_G}))
    return root


def test_quantize_command_then_upscale(cli_setup, capsys, trained):
    root = cli_setup
    out = root / "out" / "net_int8.pth"
    rc = addersr_main(["quantize", "-opt", str(root / "opt.yml"), "--model", str(root / "net.pth"),
                       "--calib", str(root / "calib"), "--out", str(out), "--method", "mse", "--crop", "48"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "5 adder layers quantized, 5 BatchNorms folded" in printed.out and "kept mse" in printed.out
    net, scale, report = load_int8(str(out))
    assert report["method"] == "mse" and report["param_key"] == "params"
    rc = addersr_main(["upscale", "--opt", str(root / "opt.yml"), "--model", str(out), "--input",
                       str(root / "calib" / "c0.png"), "--output", str(root / "sr"), "--device", "cpu"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "Loaded 'int8' weights" in printed.out
    sr = cv2.imread(str(root / "sr" / "c0_x2.png"))
    assert sr.shape == (64, 64, 3)  # 32x32 calibration image, x2


@pytest.mark.parametrize("case", [
    ("calib-missing", dict(calib="nope"), r"image folder does not exist: .*nope"),
    ("calib-empty", dict(calib="empty"), r"no images found in .*empty"),
    ("model-missing", dict(model="missing.pth"), r"model file not found: .*missing.pth"),
    ("opt-missing", dict(opt="none.yml"), r"option file not found: .*none.yml"),
    ("out-is-folder", dict(out="calib"), r"--out must be a file path, got a folder"),
    ("model-mismatch", dict(model="small.pth"), r"does not match network_g"),
], ids=lambda c: c[0])
def test_quantize_command_bad_inputs(cli_setup, capsys, case):
    root = cli_setup
    (root / "empty").mkdir(exist_ok=True)
    torch.save({"params": AdderEDSR(3, 3, num_feat=8, num_block=1, upscale=2).state_dict()}, root / "small.pth")
    args = dict(opt="opt.yml", model="net.pth", calib="calib", out="o.pth")
    args.update(case[1])
    rc = addersr_main(["quantize", "-opt", str(root / args["opt"]), "--model", str(root / args["model"]),
                       "--calib", str(root / args["calib"]), "--out", str(root / args["out"])])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("addersr quantize: error: ")
    assert err.count("addersr quantize: error: ") == 1
    import re
    assert re.search(case[2], err), err
    assert not os.path.exists(root / "o.pth")


@pytest.mark.parametrize("argv, message", [
    (["--method", "kl"], r"invalid choice: 'kl'"),
    (["--percentile", "40"], r"must be in \(50, 100\], got 40"),
    (["--calib-images", "0"], r"must be a positive integer, got 0"),
])
def test_quantize_command_bad_options(cli_setup, capsys, argv, message):
    root = cli_setup
    with pytest.raises(SystemExit) as exc:
        addersr_main(["quantize", "-opt", str(root / "opt.yml"), "--model", str(root / "net.pth"),
                      "--calib", str(root / "calib"), "--out", str(root / "o.pth"), *argv])
    assert exc.value.code == 2
    import re
    assert re.search(message, capsys.readouterr().err)


def test_upscale_refuses_int8_on_cuda_and_other_network(int8_file, cli_setup, tmp_path):
    from addersr_plugin.loading import LoadError, load_generator
    with pytest.raises(LoadError, match=r"int8 model: it runs on the CPU only .* pass --device cpu"):
        load_generator(str(cli_setup / "opt.yml"), int8_file, device="cuda")
    import yaml
    other = tmp_path / "other.yml"
    other.write_text(yaml.safe_dump({"scale": 2, "network_g": dict(NET_G, num_feat=8)}))
    with pytest.raises(LoadError, match=r"was quantized from network_g .* but the option file has"):
        load_generator(str(other), int8_file)


@pytest.mark.parametrize("channels", [None, 5])
def test_inference_power_activation_matches_the_training_module(channels):
    from addersr_plugin.nn import PowerActivation
    from addersr_plugin.quant.power import InferencePowerActivation

    g = torch.Generator().manual_seed(0)
    act = PowerActivation(1.3, channels)
    if channels:
        act.log_alpha.data = torch.randn(channels, generator=g) * 0.3
    y = torch.randn(2, 5, 6, 7, generator=g) * 20
    y[0, 0, 0, :3] = torch.tensor([0.0, -0.0, 1e-9])
    fast = InferencePowerActivation(act)
    with torch.no_grad():
        torch.testing.assert_close(fast(y), act(y), rtol=1e-6, atol=1e-5)
    assert set(fast.state_dict()) == set(act.state_dict()) == {"log_alpha"}


def test_inplace_blocks_only_where_verified(monkeypatch):
    """Subclasses of ShortcutAdderBlock are left alone, and a block whose in-place version would
    differ on the calibration inputs is kept generic."""
    from addersr_plugin.quant import block as block_mod

    class Doubled(ShortcutAdderBlock):
        def forward(self, x):
            return 2 * super().forward(x)

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), ShortcutAdderBlock(8, act=None, eta=None),
                        Doubled(8, eta=None)).eval()
    x = torch.rand(1, 3, 12, 12)
    _, report = quantize_model(net, [x], "minmax")
    assert report["inplace_blocks"] == ["1"]
    monkeypatch.setattr(block_mod.InferenceShortcutBlock, "forward", lambda self, x: x * 0)
    q, report = quantize_model(net, [x], "minmax")
    assert report["inplace_blocks"] == [] and type(q[1]) is ShortcutAdderBlock
