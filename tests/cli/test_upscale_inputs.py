"""``addersr upscale`` on the inputs users have: a folder with a broken file, grey and RGBA images,
bad devices and outputs, checkpoints of other tools or other sizes, int8 checkpoints on their own.
Every problem is one message (never a traceback, never OpenCV's raw log lines), nothing is lost.
"""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
import pytest
import torch

import addersr_plugin  # noqa: F401
from addersr_plugin.cli import addersr_main
from addersr_plugin.loading import LoadError, load_generator
from sr_helpers import textured_image, write_yaml

NET = {"type": "AdderEDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_block": 1, "upscale": 2}


def _net(**over):
    from basicsr.archs import build_network

    torch.manual_seed(0)
    net = build_network({**NET, **over})
    with torch.no_grad():  # a net with colour in its output (conv_last starts at zero)
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


@pytest.fixture()
def model(tmp_path):
    opt = write_yaml(str(tmp_path / "opt.yml"), {"name": "x", "scale": 2, "network_g": NET})
    ckpt = str(tmp_path / "net.pth")
    torch.save({"params": _net().state_dict()}, ckpt)
    return opt, ckpt


def _upscale(model, inp, out, *extra) -> int:
    opt, ckpt = model
    return addersr_main(["upscale", "-opt", opt, "--model", ckpt, "--input", str(inp), "--output", str(out),
                         "--device", "cpu", *extra])


def test_a_broken_image_in_a_folder_is_named_and_the_rest_are_upscaled(tmp_path, model, capfd):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), textured_image(16, 20, 1))
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # OpenCV logs "[ WARN:0@..] grfmt_png"
    cv2.imwrite(str(src / "c.png"), textured_image(12, 10, 2))
    assert _upscale(model, src, tmp_path / "out") == 1
    out, err = capfd.readouterr()
    assert sorted(os.listdir(tmp_path / "out")) == ["a_x2.png", "c_x2.png"]
    assert f"addersr upscale: skipped {src / 'b.png'}: cannot read image (corrupt or not an image)" in err
    assert f"addersr upscale: 1 of 3 images failed: {src / 'b.png'}" in err
    assert "WARN" not in err and "grfmt" not in err and "ERROR:" not in err  # OpenCV's own log is silenced
    assert "Traceback" not in err


def test_grey_stays_grey(tmp_path, model):
    grey = textured_image(16, 20, 3)[:, :, 1]
    cv2.imwrite(str(tmp_path / "one.png"), grey)  # one channel
    cv2.imwrite(str(tmp_path / "three.png"), np.repeat(grey[:, :, None], 3, axis=2))  # R = G = B
    assert _upscale(model, tmp_path / "one.png", tmp_path / "out") == 0
    assert _upscale(model, tmp_path / "three.png", tmp_path / "out") == 0
    one = cv2.imread(str(tmp_path / "out" / "one_x2.png"), cv2.IMREAD_UNCHANGED)
    three = cv2.imread(str(tmp_path / "out" / "three_x2.png"), cv2.IMREAD_UNCHANGED)
    assert one.shape == (32, 40)
    assert three.shape == (32, 40, 3)
    assert (three[:, :, 0] == three[:, :, 1]).all() and (three[:, :, 1] == three[:, :, 2]).all()  # no tint
    np.testing.assert_array_equal(three[:, :, 0], one)
    # A colour image does get colour: the grey path is for grey input only.
    cv2.imwrite(str(tmp_path / "colour.png"), textured_image(16, 20, 3))
    assert _upscale(model, tmp_path / "colour.png", tmp_path / "out") == 0
    colour = cv2.imread(str(tmp_path / "out" / "colour_x2.png"), cv2.IMREAD_UNCHANGED)
    assert not (colour[:, :, 0] == colour[:, :, 1]).all()


def test_rgba_keeps_its_alpha(tmp_path, model):
    bgr = textured_image(16, 20, 4)
    alpha = np.tile(np.linspace(0, 255, 20, dtype=np.uint8), (16, 1))
    cv2.imwrite(str(tmp_path / "logo.png"), np.dstack([bgr, alpha]))
    assert _upscale(model, tmp_path / "logo.png", tmp_path / "out") == 0
    sr = cv2.imread(str(tmp_path / "out" / "logo_x2.png"), cv2.IMREAD_UNCHANGED)
    assert sr.shape == (32, 40, 4)
    expected = np.clip(cv2.resize(alpha, (40, 32), interpolation=cv2.INTER_CUBIC), 0, 255)
    np.testing.assert_array_equal(sr[:, :, 3], expected)  # bicubic alpha
    without = tmp_path / "rgb.png"
    cv2.imwrite(str(without), bgr)
    assert _upscale(model, without, tmp_path / "out") == 0
    np.testing.assert_array_equal(sr[:, :, :3], cv2.imread(str(tmp_path / "out" / "rgb_x2.png")))


def test_bad_device_and_output_are_messages(tmp_path, model, capsys):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), textured_image(8, 8, 5))
    opt, ckpt = model
    base = ["upscale", "-opt", opt, "--model", ckpt, "--input", str(img)]
    assert addersr_main(base + ["--output", str(tmp_path / "o"), "--device", "foo"]) == 2
    assert "addersr upscale: error: device 'foo' is not a device name; use cpu, cuda or cuda:N" in \
        capsys.readouterr().err
    if not torch.cuda.is_available():
        assert addersr_main(base + ["--output", str(tmp_path / "o"), "--device", "cuda"]) == 2
        assert "device 'cuda': no CUDA GPU is visible" in capsys.readouterr().err
    (tmp_path / "taken.png").write_bytes(b"x")
    assert addersr_main(base + ["--output", str(tmp_path / "taken.png"), "--device", "cpu"]) == 2
    assert f"--output must be a folder, but {tmp_path / 'taken.png'} is a file" in capsys.readouterr().err
    assert (tmp_path / "taken.png").read_bytes() == b"x"
    assert addersr_main(base + ["--output", str(tmp_path / "o"), "--tile", "-4"]) == 2
    assert "--tile must be a positive number of LR pixels, got -4" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_device_default():
    from addersr_plugin.loading import resolve_device

    assert resolve_device(None) == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None, int8=True) == torch.device("cpu")  # int8 kernels are CPU-only
    with pytest.raises(LoadError, match="not supported here"):
        resolve_device("meta")


def test_a_bare_state_dict_is_accepted(tmp_path, model):
    opt, _ = model
    net = _net()
    bare = str(tmp_path / "bare.pth")
    torch.save(net.state_dict(), bare)  # what other tools write
    loaded, scale, key = load_generator(opt, bare)
    assert (scale, key) == (2, "state dict")
    torch.testing.assert_close(loaded.state_dict(), net.state_dict())
    with pytest.raises(LoadError, match="has no 'params_ema'"):
        load_generator(opt, bare, param_key="params_ema")


def test_a_checkpoint_of_another_size_says_which_sizes(tmp_path, model, capsys):
    _, ckpt = model
    bigger = write_yaml(str(tmp_path / "big.yml"), {"scale": 4, "network_g": {**NET, "num_feat": 8, "num_block": 3,
                                                                                "upscale": 4}})
    with pytest.raises(LoadError) as err:
        load_generator(bigger, ckpt)
    text = str(err.value)
    assert f"{ckpt} does not match network_g of {bigger}: the checkpoint is 4 features / 1 block / ×2, " \
           "the network 8 features / 3 blocks / ×4" in text
    assert len(text) < 600 and text.count("\n") == 0  # a sentence, not every key
    cv2.imwrite(str(tmp_path / "a.png"), textured_image(8, 8, 6))
    assert addersr_main(["upscale", "--opt", bigger, "--model", ckpt, "--input", str(tmp_path / "a.png"),
                         "--output", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "the checkpoint is 4 features / 1 block / ×2" in capsys.readouterr().err


def test_float_checkpoint_needs_the_option_file(tmp_path, model, capsys):
    _, ckpt = model
    cv2.imwrite(str(tmp_path / "a.png"), textured_image(8, 8, 6))
    assert addersr_main(["upscale", "--model", ckpt, "--input", str(tmp_path / "a.png"),
                         "--output", str(tmp_path / "o")]) == 2
    assert "holds float weights only: give the option file" in capsys.readouterr().err


@pytest.fixture()
def int8_model(tmp_path):
    from addersr_plugin.quant import quantize_model, save_int8

    net = _net(num_block=2, image_skip=False, dc_free_head=False)
    calib = [torch.from_numpy(textured_image(24, 24, s)).permute(2, 0, 1).float().unsqueeze(0) / 255
             for s in range(2)]
    qnet, report = quantize_model(net, calib, "minmax")
    path = str(tmp_path / "net_int8.pth")
    save_int8(qnet, path, {**NET, "num_block": 2, "image_skip": False, "dc_free_head": False}, 2, report)
    return path


def test_int8_checkpoint_needs_no_option_file_and_tiles_by_its_receptive_field(tmp_path, int8_model, capsys,
                                                                               recwarn):
    from addersr_plugin.loading import open_generator

    gen = open_generator(None, int8_model)
    assert gen.key == "int8" and gen.device == torch.device("cpu")  # CPU by default, GPU or not
    img = textured_image(30, 26, 7)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    assert addersr_main(["upscale", "--model", int8_model, "--input", str(tmp_path / "a.png"),
                         "--output", str(tmp_path / "o"), "--tile", "8"]) == 0
    out = capsys.readouterr().out
    assert "Loaded 'int8' weights" in out and "on cpu" in out
    # the float twin's receptive field: 3.5 + 2 x 2 blocks -> 8 LR pixels, derived, not the 10-pixel fallback
    assert "Tiles of 8x8 LR pixels with 8 pixels of context" in out
    assert not [w for w in recwarn if "receptive field" in str(w.message)]
    tiled = cv2.imread(str(tmp_path / "o" / "a_x2.png"))
    assert addersr_main(["upscale", "--model", int8_model, "--input", str(tmp_path / "a.png"),
                         "--output", str(tmp_path / "whole")]) == 0
    np.testing.assert_array_equal(tiled, cv2.imread(str(tmp_path / "whole" / "a_x2.png")))


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_per_image_and_per_tile_on_a_terminal(tmp_path, model, monkeypatch, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"{i}.png"), textured_image(20, 20, i))
    assert _upscale(model, src, tmp_path / "quiet", "--tile", "8") == 0
    assert "100%" not in capsys.readouterr().err  # not a terminal: plain lines only
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert _upscale(model, src, tmp_path / "out", "--tile", "8") == 0
    shown = terminal.getvalue()
    assert "upscale: 100%" in shown and "2/2" in shown  # images
    assert "tiles:" in shown and "/9 " in shown  # 3x3 tiles of 8 px in a 20x20 image (cleared when done)
