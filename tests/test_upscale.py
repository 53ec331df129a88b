"""``addersr upscale``: checkpoint loading (params_ema / params), tiling, a real photo end to end."""

from __future__ import annotations

import os

import cv2
import pytest
import torch

import addersr_plugin  # noqa: F401
from addersr_plugin.cli import addersr_main
from addersr_plugin.upscale import UpscaleError, load_generator, upscale_tensor
from sr_helpers import write_yaml

NET = {"type": "AdderEDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_block": 1, "upscale": 2}


def _net():
    from basicsr.archs import build_network

    torch.manual_seed(0)
    return build_network(dict(NET)).eval()


@pytest.fixture()
def trained(tmp_path):
    """An option file and a checkpoint with distinct params / params_ema (as BasicSR saves them)."""
    opt = write_yaml(str(tmp_path / "opt.yml"), {"name": "x", "scale": 2, "network_g": NET})
    net, ema = _net(), _net()
    with torch.no_grad():
        for p in ema.parameters():
            p.add_(0.01)
    ckpt = str(tmp_path / "net_g_latest.pth")
    torch.save({"params": net.state_dict(), "params_ema": ema.state_dict()}, ckpt)
    return opt, ckpt, net, ema


def test_loads_params_ema_when_present_else_params(tmp_path, trained):
    opt, ckpt, net, ema = trained
    loaded, scale, key = load_generator(opt, ckpt)
    assert (scale, key) == (2, "params_ema")
    torch.testing.assert_close(loaded.state_dict(), ema.state_dict())
    plain = str(tmp_path / "plain.pth")
    torch.save({"params": {"module." + k: v for k, v in net.state_dict().items()}}, plain)  # DDP-saved keys
    loaded, _, key = load_generator(opt, plain)
    assert key == "params"
    torch.testing.assert_close(loaded.state_dict(), net.state_dict())
    _, _, key = load_generator(opt, ckpt, param_key="params")
    assert key == "params"


def test_checkpoint_errors(tmp_path, trained):
    opt, ckpt, _, _ = trained
    with pytest.raises(UpscaleError, match="model file not found"):
        load_generator(opt, str(tmp_path / "none.pth"))
    with pytest.raises(UpscaleError, match="has no 'weights'; it holds: params, params_ema"):
        load_generator(opt, ckpt, param_key="weights")
    other = write_yaml(str(tmp_path / "other.yml"), {"scale": 2, "network_g": {**NET, "num_feat": 8}})
    with pytest.raises(UpscaleError, match="does not match network_g of .*other.yml"):
        load_generator(other, ckpt)
    unknown = write_yaml(str(tmp_path / "unknown.yml"), {"scale": 2, "network_g": {"type": "NoSuchNet"}})
    with pytest.raises(UpscaleError, match="unknown architecture 'NoSuchNet'"):
        load_generator(unknown, ckpt)


def test_tiles_join_without_seams():
    net = _net()
    lq = torch.rand(1, 3, 45, 61)
    whole = upscale_tensor(net, lq, 2)
    # Context of 8 LR pixels covers this net's receptive field (radius 5), so tiles are exact.
    tiled = upscale_tensor(net, lq, 2, tile=16, tile_pad=8)
    assert tiled.shape == (1, 3, 90, 122)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)
    # Without context the tile borders differ: the padding is doing real work.
    assert (upscale_tensor(net, lq, 2, tile=16, tile_pad=0) - whole).abs().max() > 1e-3


def test_upscale_command_on_a_real_photo(tmp_path, trained, capsys):
    import skimage.data

    opt, ckpt, _, _ = trained
    photo = skimage.data.chelsea()[:, :, ::-1]  # RGB -> BGR, 300x451
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    cv2.imwrite(str(in_dir / "chelsea.png"), photo)
    cv2.imwrite(str(in_dir / "grey.png"), photo[:40, :50, 0])  # grey input is upscaled as RGB
    out = tmp_path / "out"
    code = addersr_main(["upscale", "--opt", opt, "--model", ckpt, "--input", str(in_dir),
                         "--output", str(out), "--tile", "128", "--tile-pad", "8"])
    assert code == 0
    assert "Loaded 'params_ema' weights" in capsys.readouterr().out
    sr = cv2.imread(str(out / "chelsea_x2.png"))
    assert sr.shape == (600, 902, 3)
    assert cv2.imread(str(out / "grey_x2.png")).shape == (80, 100, 3)
    assert sorted(os.listdir(out)) == ["chelsea_x2.png", "grey_x2.png"]


def test_upscale_command_bad_input(tmp_path, trained, capsys):
    opt, ckpt, _, _ = trained
    assert addersr_main(["upscale", "--opt", opt, "--model", ckpt, "--input", str(tmp_path / "x.png"),
                         "--output", str(tmp_path / "o")]) == 2
    assert "addersr upscale: error: input does not exist" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hi")
    assert addersr_main(["upscale", "--opt", opt, "--model", ckpt, "--input", str(tmp_path / "notes.txt"),
                         "--output", str(tmp_path / "o")]) == 2
    assert "not an image file" in capsys.readouterr().err
