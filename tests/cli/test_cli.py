"""The ``basicsr`` and ``addersr`` commands: help, dispatch and every bad input's message.

These call the entry functions in-process: preflight rejects bad option files before basicsr's
pipeline starts, so no training runs here (the end-to-end runs are in test_train_e2e.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import types

import pytest
import torch

import addersr_plugin  # noqa: F401
from addersr_plugin.cli import addersr_main, basicsr_main
from sr_helpers import make_pair_lmdbs, make_test_options, train_options, write_yaml


@pytest.fixture(scope="module")
def lmdbs(tmp_path_factory):
    return make_pair_lmdbs(str(tmp_path_factory.mktemp("data")))


def _train_error(tmp_path, capsys, opt, *extra) -> str:
    path = write_yaml(str(tmp_path / "opt.yml"), opt)
    assert basicsr_main(["train", "-opt", path, *extra]) == 2
    return capsys.readouterr().err


def test_basicsr_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        basicsr_main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "{train,test}" in text and "train a model" in text and "torchrun" in text
    with pytest.raises(SystemExit):
        basicsr_main(["train", "--help"])
    assert "--auto_resume" in capsys.readouterr().out


def test_basicsr_without_option_file_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        basicsr_main(["train"])
    assert exc.value.code == 2
    assert "-opt" in capsys.readouterr().err


def test_missing_option_file(tmp_path, capsys):
    assert basicsr_main(["train", "-opt", str(tmp_path / "nope.yml")]) == 2
    assert "option file not found: " in capsys.readouterr().err


def test_unknown_arch_lists_the_adder_architectures(tmp_path, capsys, lmdbs):
    opt = train_options(*lmdbs)
    opt["network_g"]["type"] = "AdderESRGAN"
    err = _train_error(tmp_path, capsys, opt)
    assert "unknown architecture 'AdderESRGAN' in network_g" in err
    assert "Adder architectures of addersr-plugin: AdderEDSR, AdderVDSR, VDSR." in err
    assert "EDSR" in err.split("BasicSR's own:")[1]


def test_missing_dataroot(tmp_path, capsys, lmdbs):
    opt = train_options(*lmdbs)
    opt["datasets"]["train"]["dataroot_gt"] = str(tmp_path / "datasets" / "DIV2K_train_HR_sub.lmdb")
    err = _train_error(tmp_path, capsys, opt)
    assert "dataset 'train' (tiny_train): dataroot_gt does not exist: " in err
    assert "addersr data" in err
    opt["datasets"]["val"]["dataroot_lq"] = None
    opt["datasets"]["train"]["dataroot_gt"] = lmdbs[0]
    assert "dataset 'val' (tiny_val): dataroot_lq is not set" in _train_error(tmp_path, capsys, opt)


def test_lmdb_without_meta_info(tmp_path, capsys, lmdbs):
    lq = str(tmp_path / "lq.lmdb")
    shutil.copytree(lmdbs[1], lq)
    os.remove(os.path.join(lq, "meta_info.txt"))
    err = _train_error(tmp_path, capsys, train_options(lmdbs[0], lq))
    assert f"LMDB {lq} has no meta_info.txt" in err


def test_corrupt_lmdb(tmp_path, capsys, lmdbs):
    gt = str(tmp_path / "gt.lmdb")
    shutil.copytree(lmdbs[0], gt)
    with open(os.path.join(gt, "data.mdb"), "r+b") as f:
        f.write(b"\0" * 4096)  # clobber the LMDB header pages
    err = _train_error(tmp_path, capsys, train_options(gt, lmdbs[1]))
    assert f"LMDB {gt} is corrupt or unreadable" in err


def test_wrong_scale_for_the_data(tmp_path, capsys, lmdbs):
    opt = train_options(*lmdbs, scale=4)  # the LMDBs hold x2 pairs
    opt["network_g"]["upscale"] = 4
    err = _train_error(tmp_path, capsys, opt)
    assert "scale 4 does not fit the data: img00 GT 48x48 vs LQ 24x24 (height ratio 2.00)" in err
    assert "set scale: 2" in err


def test_wrong_scale_via_force_yml(tmp_path, capsys, lmdbs):
    err = _train_error(tmp_path, capsys, train_options(*lmdbs), "--force_yml", "scale=3")
    assert "scale 3 does not fit the data" in err


def test_gt_size_larger_than_the_images(tmp_path, capsys, lmdbs):
    opt = train_options(*lmdbs)
    opt["datasets"]["train"]["gt_size"] = 96
    assert "gt_size 96 is larger than the GT image img00 (48x48)" in _train_error(tmp_path, capsys, opt)


def test_unsupported_optimizer(tmp_path, capsys, lmdbs):
    opt = train_options(*lmdbs)
    opt["train"]["optim_g"]["type"] = "SGD"
    assert "train.optim_g.type 'SGD' is not supported by basicsr 1.4.2's SRModel (only Adam); " \
        "model_type: AdderSRModel also takes AdamW and SGD" in _train_error(tmp_path, capsys, opt)


def test_adder_sr_model_optimizer_and_teacher_checks(tmp_path, capsys, lmdbs):
    opt = train_options(*lmdbs)
    opt["model_type"] = "AdderSRModel"
    opt["train"]["optim_g"]["type"] = "RMSprop"
    assert "train.optim_g.type 'RMSprop' is not supported by AdderSRModel (use one of Adam, AdamW, SGD)" in \
        _train_error(tmp_path, capsys, opt)
    opt["train"]["optim_g"]["type"] = "SGD"
    opt["network_t"] = dict(opt["network_g"])
    opt["path"]["pretrain_network_t"] = str(tmp_path / "missing_teacher.pth")
    assert "network_t is set but path.pretrain_network_t is missing or does not exist" in \
        _train_error(tmp_path, capsys, opt)


def test_switching_to_sgd_names_the_adam_keys_left_over(tmp_path, capsys, lmdbs):
    opt = train_options(*lmdbs)
    opt["model_type"] = "AdderSRModel"
    err = _train_error(tmp_path, capsys, opt, "--force_yml", "train:optim_g:type=SGD")
    assert "train.optim_g has 'betas', which SGD does not take (it takes dampening, " in err
    assert "remove it from the option file (--force_yml can change a value but not delete a key)" in err
    assert "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_num_gpu_on_a_cpu_machine(tmp_path, capsys, lmdbs):
    opt = train_options(*lmdbs, num_gpu=1)
    assert "num_gpu is 1 but 0 CUDA device(s) are visible; set num_gpu: auto" in _train_error(tmp_path, capsys, opt)


def test_test_needs_trained_weights(tmp_path, capsys, lmdbs):
    opt = make_test_options(train_options(*lmdbs), str(tmp_path / "net_g_9.pth"))
    path = write_yaml(str(tmp_path / "test.yml"), opt)
    assert basicsr_main(["test", "-opt", path]) == 2
    assert "path.pretrain_network_g does not exist: " in capsys.readouterr().err
    torch.save({"params": {}}, tmp_path / "net_g_9.pth")
    del opt["val"]["suffix"]
    write_yaml(path, opt)
    assert basicsr_main(["test", "-opt", path]) == 2
    assert "val.suffix is required when val.save_img is true" in capsys.readouterr().err


def test_not_yaml(tmp_path, capsys):
    path = tmp_path / "bad.yml"
    path.write_text("name: [unclosed\n")
    assert basicsr_main(["train", "-opt", str(path)]) == 2
    assert "is not valid YAML" in capsys.readouterr().err


def test_data_tool_on_a_folder_without_images(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = addersr_main(["data", "benchmark", "--hr", str(tmp_path / "empty"), "--name", "Set5",
                         "--out", str(tmp_path / "out")])
    assert code == 2
    assert "addersr data benchmark: error: no images found in " in capsys.readouterr().err
    assert addersr_main(["data", "div2k", "--hr", str(tmp_path / "empty"), "--out", str(tmp_path / "d")]) == 2
    assert "no images found in " in capsys.readouterr().err


def test_addersr_help(capsys):
    with pytest.raises(SystemExit) as exc:
        addersr_main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for sub in ("data", "upscale", "demo", "energy"):
        assert sub in text


def test_energy_is_dispatched_with_its_arguments(monkeypatch):
    seen = []
    fake = types.ModuleType("addersr_plugin.cli.energy")
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "addersr_plugin.cli.energy", fake)
    assert addersr_main(["energy", "--opt", "x.yml", "--vs", "EDSR"]) == 7
    assert seen == [["--opt", "x.yml", "--vs", "EDSR"]]


def test_module_entry_routes_train_and_test_to_basicsr():
    import runpy

    with pytest.raises(SystemExit) as exc:
        sys_argv = sys.argv
        sys.argv = ["addersr_plugin.cli", "test", "-opt", "/nonexistent.yml"]
        try:
            runpy.run_module("addersr_plugin.cli", run_name="__main__")
        finally:
            sys.argv = sys_argv
    assert exc.value.code == 2
