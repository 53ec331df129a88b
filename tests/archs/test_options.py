"""Every option file under options/ parses with BasicSR's own parser and builds its network."""

import re
import sys
from pathlib import Path

import pytest
import torch

import addersr_plugin  # noqa: F401  (compat fixes + architecture registration)
from basicsr.archs import build_network
from basicsr.utils.options import parse_options

OPTIONS = Path(__file__).resolve().parents[2] / "options"
DEPTH = sorted((OPTIONS / "study" / "depth").glob("*.yml"))  # the depth-and-scale study, tested below
STUDY = sorted(p for p in (OPTIONS / "study").rglob("*.yml") if p not in DEPTH)  # the first quality study
FILES = sorted(p for p in OPTIONS.rglob("*.yml") if p not in STUDY and p not in DEPTH)
BN_ARCHS = {"AdderEDSR", "AdderVDSR"}
ADDER_ARCHS = {"AdderEDSR", "AdderVDSR"}


def _rel(path: Path) -> str:
    return str(path.relative_to(OPTIONS))


def _parse(path: Path, tmp_path, monkeypatch):
    is_train = "test" not in path.relative_to(OPTIONS).parts[:1]
    monkeypatch.setattr(sys, "argv", ["basicsr", "-opt", str(path)])
    state = torch.random.get_rng_state()  # parse_options seeds the global RNGs
    try:
        opt, _ = parse_options(str(tmp_path), is_train=is_train)
    finally:
        torch.random.set_rng_state(state)
    return opt, is_train


def test_expected_option_set_is_present():
    names = {_rel(p) for p in FILES}
    expected = {"adder_edsr_x4.yml"}
    for s in (2, 3, 4):
        for fam, folder in (("AdderEDSR", "AdderEDSR"), ("AdderEDSR_L", "AdderEDSR"), ("EDSR", "EDSR"),
                            ("EDSR_L", "EDSR"), ("AdderVDSR", "AdderVDSR"), ("VDSR", "VDSR")):
            expected.add(f"train/{folder}/train_{fam}_x{s}.yml")
            expected.add(f"test/{folder}/test_{fam}_x{s}.yml")
    for ablation in ("no_shortcut", "no_power", "no_bn", "sign_input_grad", "adder_upsampler"):
        expected.add(f"train/ablation/train_AdderEDSR_x4_{ablation}.yml")
    assert expected <= names, sorted(expected - names)


def test_experiment_names_are_unique():
    import yaml
    names = [yaml.safe_load(p.read_text())["name"] for p in FILES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_option_file_parses_and_builds(path, tmp_path, monkeypatch):
    opt, is_train = _parse(path, tmp_path, monkeypatch)
    scale = opt["scale"]
    assert scale in (2, 3, 4)
    # the study's recipe for AdderEDSR and AdderVDSR trains with AdderSRModel (its adder_lr_mult);
    # everything else (the CNNs, the paper-faithful AdderEDSR without image skip) with SRModel
    net_type = opt["network_g"]["type"]
    recipe = net_type == "AdderVDSR" or (net_type == "AdderEDSR" and opt["network_g"].get("image_skip", True))
    assert opt["model_type"] == ("AdderSRModel" if recipe and is_train else "SRModel")
    assert opt["num_gpu"] == torch.cuda.device_count()  # "auto" resolved by the parser
    assert isinstance(opt["manual_seed"], int)

    net_opt = opt["network_g"]
    assert net_opt["upscale"] == scale

    for phase, ds in opt["datasets"].items():
        assert ds["type"] == "PairedImageDataset"
        assert ds["scale"] == scale
        assert ds["dataroot_lq"].endswith(f"X{scale}_sub.lmdb" if phase == "train" else f"LR_bicubic/X{scale}")
        if phase == "train":
            assert ds["io_backend"] == {"type": "lmdb"}
            assert ds["dataroot_gt"] == "datasets/DIV2K/DIV2K_train_HR_sub.lmdb"
            assert ds["gt_size"] % scale == 0
        else:
            assert ds["io_backend"] == {"type": "disk"}
            assert ds["dataroot_gt"].startswith("datasets/benchmark/") and ds["dataroot_gt"].endswith("/HR")
    if not is_train:
        assert [d["name"] for d in opt["datasets"].values()] == ["Set5", "Set14", "B100", "Urban100"]
        assert opt["path"]["pretrain_network_g"].endswith("/models/net_g_latest.pth")
    else:
        train = opt["train"]
        assert train["optim_g"]["type"] == "Adam"
        from addersr_plugin import recipes

        recipe_name = "adder_vdsr" if net_type == "AdderVDSR" else "adder_edsr"
        expected = recipes.load(recipe_name)["train"]["optim_g"]["adder_lr_mult"] if recipe else 1
        assert train["optim_g"].get("adder_lr_mult", 1) == expected
        if recipe and net_type == "AdderEDSR" and "ablation" not in path.parts and "paper" not in path.stem:
            # the shipped files train the study's winner: no power activation (docs/quality.md)
            assert net_opt["power_act"] is False and net_opt["dc_free_head"] is True
        assert train["pixel_opt"]["type"] == "L1Loss"
        if net_type == "AdderVDSR":
            # its own rule (recipes/adder_vdsr.yml): Adam 2e-3, one cosine period over the whole run
            assert train["scheduler"]["type"] == "CosineAnnealingRestartLR"
            assert train["scheduler"]["periods"] == [train["total_iter"]]
        else:
            assert train["scheduler"]["type"] == "MultiStepLR"
            assert train["optim_g"]["lr"] == 1e-4
        if net_opt["type"] in BN_ARCHS:
            # basicsr's EMA skips buffers: BN running stats of net_g_ema would never update.
            assert train.get("ema_decay", 0) == 0
    metrics = opt["val"]["metrics"]
    assert {m["type"] for m in metrics.values()} == {"calculate_psnr", "calculate_ssim"}
    for m in metrics.values():
        assert m["crop_border"] == scale and m["test_y_channel"] is True

    net = build_network(net_opt)
    assert type(net).__name__ == net_opt["type"]
    has_adder = any(type(m).__name__ == "AdderConv2d" for m in net.modules())
    assert has_adder == (net_opt["type"] in ADDER_ARCHS)

    # Output geometry depends on the type and upscale, not on width or depth: run the
    # forward on a narrow, shallow variant of the same options (the full-size paper-scale
    # nets would take seconds each on the reference op).
    small_opt = dict(net_opt, num_feat=8)
    small_opt.update({"num_block": 1} if "num_block" in net_opt else {"num_layer": 3})
    small = build_network(small_opt).eval()
    with torch.no_grad():
        out = small(torch.rand(1, 3, 5, 3))  # odd sizes
    assert out.shape == (1, 3, 5 * scale, 3 * scale)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("path", STUDY, ids=_rel)
def test_study_option_file_parses_and_builds(path, tmp_path, monkeypatch):
    """options/study/*.yml (docs/quality.md): the photo set, x2, one schedule, and a net that runs."""
    opt, _ = _parse(path, tmp_path, monkeypatch)
    assert opt["scale"] == 2 and opt["model_type"] in ("SRModel", "AdderSRModel")
    assert opt["name"] == "study_" + path.stem
    train, val = opt["datasets"]["train"], opt["datasets"]["val"]
    assert train["dataroot_gt"] == "datasets/photos/train_HR_sub.lmdb"
    assert val["dataroot_gt"] == "datasets/photos/heldout/HR"
    iters = 10000 if path.parent.name == "long" else 2000  # the long schedule (GPU) is 5x the study's
    assert opt["train"]["total_iter"] == iters and opt["train"]["scheduler"]["periods"] == [iters]
    if "network_t" in opt:
        assert opt["model_type"] == "AdderSRModel"
        assert opt["path"]["ignore_resume_networks"] == ["network_t"]
    net = build_network(dict(opt["network_g"], num_feat=8, num_block=1)).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 5, 3))
    assert out.shape == (1, 3, 10, 6) and torch.isfinite(out).all()


@pytest.mark.parametrize("path", DEPTH, ids=_rel)
def test_depth_study_option_file_parses_and_builds(path, tmp_path, monkeypatch):
    """options/study/depth/*.yml (docs/quality_depth.md): the split photo set, validation on its
    validation photos only (never the test split), the scale and size the run's name says."""
    opt, _ = _parse(path, tmp_path, monkeypatch)
    assert opt["name"] == path.stem
    scale, variant, size, seed = _depth_fields(path.stem)
    feat, block = (int(v) for v in size.split("x"))
    assert opt["scale"] == scale == opt["network_g"]["upscale"] and opt["manual_seed"] == seed
    # VDSR-family runs name num_feat x num_layer, EDSR-family ones num_feat x num_block.
    # vdsr, vdsr_lr5e4, vdsr_zl …: CNN VDSR; avdsr, avdsr_pow_m200 …: AdderVDSR ("_pow": power activation on).
    vdsr_type = "VDSR" if variant.startswith("vdsr") else "AdderVDSR" if variant.startswith("avdsr") else None
    depth_key = "num_layer" if vdsr_type else "num_block"
    assert (opt["network_g"]["num_feat"], opt["network_g"][depth_key]) == (feat, block)
    train, val = opt["datasets"]["train"], opt["datasets"]["val"]
    assert train["dataroot_lq"] == f"datasets/photos_split/train_LR_bicubic_X{scale}_sub.lmdb"
    assert val["dataroot_gt"] == "datasets/photos_split/heldout/HR" and "test" not in val["dataroot_lq"]
    if vdsr_type:
        assert opt["network_g"]["type"] == vdsr_type
        if vdsr_type == "AdderVDSR":
            assert opt["network_g"]["power_act"] == ("_pow" in variant)
        assert opt["network_g"].get("zero_init_last", False) == ("_zl" in variant)
    else:
        assert opt["network_g"]["type"] == ("EDSR" if variant.startswith("edsr") else "AdderEDSR")
    if variant.startswith("ours"):
        assert opt["network_g"]["second_shortcut"] == variant.startswith("ours_ss")
    small = {"num_feat": 8, depth_key: 3 if vdsr_type else 1}
    net = build_network(dict(opt["network_g"], **small)).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 5, 3))
    assert out.shape == (1, 3, 5 * scale, 3 * scale) and torch.isfinite(out).all()


def _depth_fields(stem: str):
    """(scale, variant, size, seed) of ``depth_x<scale>_<variant>_<feat>x<block>_s<seed>``."""
    parts = stem.split("_")
    return int(parts[1][1:]), "_".join(parts[2:-2]), parts[-2], int(parts[-1][1:])


ADDER_TRAIN = sorted(p for p in OPTIONS.glob("train/Adder*/*.yml")) + [OPTIONS / "adder_edsr_x4.yml"]


@pytest.mark.parametrize("path", ADDER_TRAIN, ids=_rel)
def test_every_adder_training_file_says_which_study_run_backs_it(path):
    """Issue 14 item 5: each AdderEDSR/AdderVDSR training file names the archived study run behind
    its recipe (or says that none exists yet), and every run it names is archived."""
    text = path.read_text()
    assert "# Backed by" in text, f"{_rel(path)} does not say which study run backs it"
    archive = OPTIONS.parent / "benchmarks" / "quality" / "runs_depth"
    for name in re.findall(r"\bdepth_x\d_[a-z0-9_]+_s\d+\b(?!\{)", text):
        assert (archive / name / "train.log").is_file(), f"{_rel(path)} names {name}, which is not archived"
    for pattern in re.findall(r"\bdepth_x\d_[a-z0-9_]+_s\d\{[\d,]+\}", text):
        stem, seeds = pattern.split("{")
        for seed in seeds.rstrip("}").split(","):
            assert (archive / (stem + seed) / "train.log").is_file(), f"{_rel(path)} names {stem + seed}"
