"""``addersr upscale``: checkpoint loading (params_ema / params), tiling, a real photo end to end."""

from __future__ import annotations

import os

import cv2
import pytest
import torch

import addersr_plugin  # noqa: F401
from addersr_plugin.cli import addersr_main
from addersr_plugin.inference import TileSeamWarning, UpscaleError, receptive_radius, resolve_tile_pad, upscale_tensor
from addersr_plugin.loading import LoadError, load_generator
from sr_helpers import textured_image, write_yaml

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
    with pytest.raises(LoadError, match="model file not found"):
        load_generator(opt, str(tmp_path / "none.pth"))
    with pytest.raises(LoadError, match="has no 'weights'; it holds: params, params_ema"):
        load_generator(opt, ckpt, param_key="weights")
    other = write_yaml(str(tmp_path / "other.yml"), {"scale": 2, "network_g": {**NET, "num_feat": 8}})
    with pytest.raises(LoadError, match="does not match network_g of .*other.yml"):
        load_generator(other, ckpt)
    unknown = write_yaml(str(tmp_path / "unknown.yml"), {"scale": 2, "network_g": {"type": "NoSuchNet"}})
    with pytest.raises(LoadError, match="unknown architecture 'NoSuchNet'"):
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


def _build(**over):
    from basicsr.archs import build_network

    torch.manual_seed(0)
    return build_network({**NET, **over})


@pytest.mark.parametrize("arch,over,radius", [
    # The paper's AdderEDSR: conv_first 1 + 2 per residual block + conv_after_body 1 + upsampling
    # adder 1, all at LR, + conv_last 1 HR pixel = 1/2 LR pixel: 3.5 + 2 * num_block, rounded up.
    ("AdderEDSR", dict(num_block=1, image_skip=False, dc_free_head=False), 6),
    ("AdderEDSR", dict(num_block=16, image_skip=False, dc_free_head=False), 36),
    # x4: two x2 steps; the second one's conv runs at 2x (1/2), conv_last at 4x (1/4).
    ("AdderEDSR", dict(num_block=16, upscale=4, image_skip=False, dc_free_head=False), 36),
    # The default recipe adds the bicubic image skip (2 LR pixels; counted as if in the chain,
    # an upper bound since it runs beside the body): 5.5 + 2 -> 8, 35.5 + 2 -> 38.
    ("AdderEDSR", dict(num_block=1), 8),
    ("AdderEDSR", dict(num_block=16), 38),
    ("EDSR", dict(num_block=16), 36),
    # VDSR: bicubic x2 (2 LR pixels) then 20 3x3 layers at HR (1/2 LR pixel each).
    ("VDSR", dict(num_layer=20), 12),
    ("AdderVDSR", dict(num_layer=20, upscale=3), 2 + 7),
])
def test_receptive_radius_of_the_architectures(arch, over, radius):
    opt = {k: v for k, v in NET.items() if k != "num_block"} if "VDSR" in arch else dict(NET)
    opt.update(type=arch, **over)
    from basicsr.archs import build_network

    net = build_network(opt)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert receptive_radius(net) == radius
    torch.testing.assert_close(net.state_dict(), before)  # a shape probe: the weights are untouched


def _trained_like(num_block: int):
    """AdderEDSR whose BN statistics were warmed on images.

    With fresh statistics (mean 0, var 1) the adder outputs stay hugely negative and ReLU zeroes
    the first unit of every block, so the net sees much less than its receptive field and any
    tile context looks enough. Scaled init on [0, 1] pixels keeps every layer's spatial reach
    visible in float32 (with unit-scale weights on 0-255 pixels the self-shortcuts dominate and
    pixels beyond ~8 LR pixels change the output by less than float32 resolves)."""
    # The paper's layout: with the default image skip conv_last starts at zero, so an untrained
    # net is exactly bicubic and has no receptive field worth tiling for.
    net = _build(num_feat=8, num_block=num_block, adder_init="scaled", img_range=1.0, image_skip=False,
                 dc_free_head=False)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the warm-up batches
    batch = torch.stack([torch.from_numpy(textured_image(40, 40, seed)).permute(2, 0, 1).float() / 255
                         for seed in range(4)])
    net.train()
    with torch.no_grad():
        for flip in range(4):
            net(batch.flip(-1) if flip % 2 else batch)
    return net.eval()


def test_default_tile_pad_joins_tiles_exactly_on_a_trained_like_net():
    net = _trained_like(num_block=6)  # receptive-field radius 3.5 + 12 -> 16 LR pixels
    assert receptive_radius(net) == 16
    lq = torch.from_numpy(textured_image(45, 61, 7)).permute(2, 0, 1).float().unsqueeze(0) / 255
    whole = upscale_tensor(net, lq, 2)
    tol = dict(rtol=1e-5, atol=1e-5 * whole.abs().max().item())
    torch.testing.assert_close(upscale_tensor(net, lq, 2, tile=16), whole, **tol)  # default context
    torch.testing.assert_close(upscale_tensor(net, lq, 2, tile=16, tile_pad=16), whole, **tol)
    # The receptive field beyond the old default context of 10 is live: that leaves seams.
    err = (upscale_tensor(net, lq, 2, tile=16, tile_pad=10) - whole).abs().max().item()
    assert err > 1e-3 * whole.abs().max().item()


def test_tile_pad_below_the_receptive_field_warns(tmp_path, trained, capsys):
    net = _build()
    assert resolve_tile_pad(net, None) == 8  # 5.5 + the bicubic image skip's 2, rounded up
    with pytest.warns(TileSeamWarning, match=r"tile context 3 is below the network's receptive-field radius of 8"):
        assert resolve_tile_pad(net, 3) == 3
    with pytest.raises(UpscaleError, match="tile_pad must be >= 0, got -1"):
        resolve_tile_pad(net, -1)
    opt, ckpt, _, _ = trained
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), textured_image(40, 40, 1))
    args = ["upscale", "--opt", opt, "--model", ckpt, "--input", str(img), "--output", str(tmp_path / "o"),
            "--tile", "16"]
    assert addersr_main(args) == 0
    assert "Tiles of 16x16 LR pixels with 8 pixels of context" in capsys.readouterr().out
    with pytest.warns(TileSeamWarning):
        assert addersr_main(args + ["--tile-pad", "2"]) == 0


def test_scale_must_agree_with_network_upscale(tmp_path, trained, capsys):
    _, ckpt, net, _ = trained
    bad = write_yaml(str(tmp_path / "bad.yml"), {"scale": 4, "network_g": NET})
    with pytest.raises(LoadError, match=r"scale \(4\) and network_g.upscale \(2\) disagree"):
        load_generator(bad, ckpt)
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), textured_image(40, 40, 1))
    code = addersr_main(["upscale", "--opt", bad, "--model", ckpt, "--input", str(img),
                         "--output", str(tmp_path / "o"), "--tile", "16"])
    assert code == 2
    assert "addersr upscale: error: " in capsys.readouterr().err and not (tmp_path / "o").exists()
    # Only one of them set is fine; the network's own factor wins when scale is absent.
    only_net = write_yaml(str(tmp_path / "net.yml"), {"network_g": NET})
    assert load_generator(only_net, ckpt)[1] == 2
    # Called directly with the wrong factor, tiling says so instead of failing in a slice.
    with pytest.raises(UpscaleError, match=r"turns a 24x24 tile into 48x48, not x4"):
        upscale_tensor(net.eval(), torch.rand(1, 3, 24, 40), 4, tile=16, tile_pad=8)


def test_upscale_command_on_a_real_photo(tmp_path, trained, capsys):
    import skimage.data

    opt, ckpt, _, _ = trained
    photo = skimage.data.chelsea()[:, :, ::-1]  # RGB -> BGR, 300x451
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    cv2.imwrite(str(in_dir / "chelsea.png"), photo)
    cv2.imwrite(str(in_dir / "grey.png"), photo[:40, :50, 0])  # grey input comes back grey
    out = tmp_path / "out"
    code = addersr_main(["upscale", "--opt", opt, "--model", ckpt, "--input", str(in_dir),
                         "--output", str(out), "--tile", "128", "--tile-pad", "8"])
    assert code == 0
    assert "Loaded 'params_ema' weights" in capsys.readouterr().out
    sr = cv2.imread(str(out / "chelsea_x2.png"))
    assert sr.shape == (600, 902, 3)
    assert cv2.imread(str(out / "grey_x2.png"), cv2.IMREAD_UNCHANGED).shape == (80, 100)
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


def test_tile_pad_falls_back_with_a_warning_when_the_shape_probe_fails():
    class DataDependent(torch.nn.Module):  # reads a value: cannot run on the meta device
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.conv(x) * float(x.mean().item() > 0)

    net = DataDependent()
    with pytest.warns(TileSeamWarning, match=r"cannot derive the network's receptive field .* using a tile context of 10"):
        assert resolve_tile_pad(net, None) == 10
    with pytest.warns(TileSeamWarning, match="cannot derive"):
        assert resolve_tile_pad(net, 4) == 4
    lq = torch.rand(1, 3, 20, 20)
    with pytest.warns(TileSeamWarning):
        torch.testing.assert_close(upscale_tensor(net, lq, 1, tile=8), net(lq))  # 10 >= its radius of 1
