"""Two-process ``torchrun`` training on CPU (gloo) through ``python -m addersr_plugin.train``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sr_helpers import env, make_pair_lmdbs, train_options, write_yaml

pytestmark = pytest.mark.slow


def test_torchrun_two_processes_gloo(tmp_path):
    gt, lq = make_pair_lmdbs(str(tmp_path / "data"), n=4)
    opt = train_options(gt, lq, name="ddp", num_gpu="auto")
    opt["train"]["total_iter"] = 2
    opt["val"]["val_freq"] = 2
    opt["logger"]["save_checkpoint_freq"] = 2
    opt_file = write_yaml(str(tmp_path / "ddp.yml"), opt)
    work = tmp_path / "work"
    work.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "addersr_plugin.train", "-opt", opt_file, "--launcher", "pytorch"]
    proc = subprocess.run(cmd, cwd=str(work), env=env(), capture_output=True, text=True, timeout=400)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "World size (gpu number): 2" in out
    assert "iter:       2" in out
    exp = work / "experiments" / "ddp"
    assert (exp / "models" / "net_g_2.pth").is_file()
    assert (exp / "training_states" / "2.state").is_file()
    assert "# psnr:" in out  # rank 0 validates
