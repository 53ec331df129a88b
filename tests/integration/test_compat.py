"""Each basicsr 1.4.2 fix of ``addersr_plugin.compat``: it fixes the failure and is a no-op otherwise."""

from __future__ import annotations

import os
import socket
import sys
import types
import warnings

import pytest
import torch

import addersr_plugin  # noqa: F401  (applies compat, registers archs)
from addersr_plugin import integration as compat
from addersr_plugin.integration import preimport


def test_functional_tensor_alias_installed_only_when_missing(monkeypatch):
    monkeypatch.delitem(sys.modules, preimport._FUNCTIONAL_TENSOR, raising=False)
    assert compat.alias_functional_tensor() is True  # torchvision 0.29 has no such module
    aliased = sys.modules[preimport._FUNCTIONAL_TENSOR]
    assert hasattr(aliased, "rgb_to_grayscale")  # what basicsr's degradations import
    assert compat.alias_functional_tensor() is False  # idempotent

    real = types.ModuleType(preimport._FUNCTIONAL_TENSOR)
    monkeypatch.setitem(sys.modules, preimport._FUNCTIONAL_TENSOR, real)
    assert compat.alias_functional_tensor() is False  # a working module is left alone
    assert sys.modules[preimport._FUNCTIONAL_TENSOR] is real


def test_distutils_taken_from_setuptools_when_missing(monkeypatch):
    assert compat.ensure_distutils() is False  # present: nothing to do
    # Simulate Python >= 3.12: importing distutils fails.
    monkeypatch.setitem(sys.modules, "distutils", None)
    monkeypatch.setitem(sys.modules, "distutils.version", None)
    assert compat.ensure_distutils() is True
    from distutils.version import LooseVersion

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # LooseVersion itself is deprecated
        assert LooseVersion("1.10") > LooseVersion("1.9")
    assert "setuptools" in sys.modules["distutils"].__file__


def test_apply_is_idempotent_and_installs_every_patch():
    import basicsr.train
    from basicsr.models.base_model import BaseModel
    from basicsr.models.sr_model import SRModel
    from basicsr.utils import dist_util, file_client

    compat.apply()
    compat.apply()
    assert basicsr.train.load_resume_state is compat.load_resume_state
    assert getattr(dist_util._init_dist_pytorch, compat.PATCHED)
    assert getattr(BaseModel.model_to_device, compat.PATCHED)
    assert getattr(SRModel.test, compat.PATCHED)
    assert getattr(file_client.LmdbBackend.__init__, compat.PATCHED)
    assert compat.patch_resume() is False
    assert compat.patch_distributed() is False
    assert compat.patch_lmdb_backend() is False


def _resume_opt(root, auto=True):
    exp = os.path.join(root, "experiments", "run")
    opt = {"name": "run", "auto_resume": auto, "num_gpu": 0,
           "network_g": {"type": "AdderEDSR"},
           "path": {"training_states": os.path.join(exp, "training_states"),
                    "models": os.path.join(exp, "models"), "resume_state": None}}
    os.makedirs(opt["path"]["training_states"])
    os.makedirs(opt["path"]["models"])
    return opt


def _save_state(opt, it):
    torch.save({"epoch": 0, "iter": it, "optimizers": [], "schedulers": []},
               os.path.join(opt["path"]["training_states"], f"{it}.state"))
    torch.save({"params": {}}, os.path.join(opt["path"]["models"], f"net_g_{it}.pth"))


def test_auto_resume_uses_training_states_dir_without_cuda(tmp_path, monkeypatch):
    opt = _resume_opt(str(tmp_path / "root"))
    _save_state(opt, 2)
    _save_state(opt, 10)
    # basicsr's version calls torch.cuda.current_device() and looks in ./experiments.
    monkeypatch.setattr(torch.cuda, "current_device", lambda: pytest.fail("CUDA queried on a CPU run"))
    monkeypatch.chdir(tmp_path)  # cwd has no experiments/ folder
    state = compat.load_resume_state(opt)
    assert state["iter"] == 10
    assert opt["path"]["resume_state"].endswith(os.path.join("training_states", "10.state"))
    assert opt["path"]["pretrain_network_g"].endswith("net_g_10.pth")


def test_auto_resume_skips_a_state_cut_short_by_a_kill(tmp_path):
    opt = _resume_opt(str(tmp_path))
    _save_state(opt, 3)
    _save_state(opt, 6)
    with open(os.path.join(opt["path"]["training_states"], "6.state"), "r+b") as f:
        f.truncate(20)  # SIGKILL during torch.save
    with pytest.warns(UserWarning, match="skipping unreadable resume state .*6.state"):
        state = compat.load_resume_state(opt)
    assert state["iter"] == 3
    assert opt["path"]["pretrain_network_g"].endswith("net_g_3.pth")


def test_auto_resume_needs_the_matching_network_file(tmp_path):
    opt = _resume_opt(str(tmp_path))
    _save_state(opt, 4)
    torch.save({"epoch": 0, "iter": 8, "optimizers": [], "schedulers": []},
               os.path.join(opt["path"]["training_states"], "8.state"))  # net_g_8.pth never written
    with pytest.warns(UserWarning, match="net_g_8.pth is missing"):
        assert compat.load_resume_state(opt)["iter"] == 4


def test_auto_resume_with_nothing_saved_starts_fresh(tmp_path):
    assert compat.load_resume_state(_resume_opt(str(tmp_path))) is None


def test_explicit_resume_state(tmp_path):
    opt = _resume_opt(str(tmp_path), auto=False)
    _save_state(opt, 5)
    opt["path"]["resume_state"] = os.path.join(opt["path"]["training_states"], "5.state")
    assert compat.load_resume_state(opt)["iter"] == 5
    opt["path"]["resume_state"] = str(tmp_path / "nope.state")
    with pytest.raises(FileNotFoundError, match="resume_state does not exist: .*nope.state"):
        compat.load_resume_state(opt)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_ddp_init_on_cpu_uses_gloo(monkeypatch):
    import torch.distributed as dist
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import dist_util
    from torch.nn.parallel import DistributedDataParallel

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    with socket.socket() as probe:  # a free port, so parallel runs do not collide
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    dist_util._init_dist_pytorch("nccl")  # what basicsr's init_dist('pytorch') calls
    try:
        assert dist.get_backend() == "gloo"
        model = BaseModel.__new__(BaseModel)
        model.opt, model.device = {"dist": True}, torch.device("cpu")
        wrapped = model.model_to_device(torch.nn.Linear(2, 2))
        assert isinstance(wrapped, DistributedDataParallel)
        assert wrapped.device_ids is None
    finally:
        dist.destroy_process_group()


def test_ddp_init_with_gpus_keeps_basicsr_behaviour(monkeypatch):
    import torch.distributed as dist
    from basicsr.utils import dist_util

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: calls.append(("init", backend)))
    monkeypatch.setenv("RANK", "3")
    dist_util._init_dist_pytorch("nccl")
    assert calls == [("set_device", 1), ("init", "nccl")]


def test_two_lmdb_clients_of_one_lmdb_in_one_process(tmp_path):
    from basicsr.utils.file_client import FileClient

    from sr_helpers import make_pair_lmdbs

    gt, lq = make_pair_lmdbs(str(tmp_path))
    a = FileClient("lmdb", db_paths=[lq, gt], client_keys=["lq", "gt"])
    b = FileClient("lmdb", db_paths=[lq, gt], client_keys=["lq", "gt"])  # failed: "already open"
    assert a.get("img00", "gt") == b.get("img00", "gt") is not None
