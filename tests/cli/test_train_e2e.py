"""``basicsr train`` / ``--auto_resume`` / ``basicsr test`` end to end, in subprocesses, on CPU.

Each subprocess pays ``import basicsr`` (~8 s), so one chain covers train -> resume -> test.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from sr_helpers import env, cli, make_pair_lmdbs, make_test_options, train_options, write_yaml

pytestmark = pytest.mark.slow


def _ok(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def test_train_resume_test_chain(tmp_path):
    gt, lq = make_pair_lmdbs(str(tmp_path / "data"))
    opt = train_options(gt, lq)
    opt_file = write_yaml(str(tmp_path / "tiny.yml"), opt)
    work = tmp_path / "work"
    work.mkdir()

    out = _ok(cli(["train", "-opt", opt_file], cwd=str(work)))
    exp = work / "experiments" / "tiny"  # rooted at the working directory, not site-packages
    assert (exp / "models" / "net_g_4.pth").is_file()
    assert (exp / "models" / "net_g_latest.pth").is_file()
    assert sorted(os.listdir(exp / "training_states")) == ["2.state", "4.state"]
    assert glob.glob(str(work / "tb_logger" / "tiny" / "events.out.tfevents.*"))
    assert "Validation tiny_val" in out and "# psnr:" in out
    state = torch.load(exp / "training_states" / "4.state", weights_only=True)
    assert state["iter"] == 4

    # --auto_resume continues from iteration 4 (more iterations via --force_yml).
    out = _ok(cli(["train", "-opt", opt_file, "--auto_resume", "--force_yml", "train:total_iter=6"], cwd=str(work)))
    assert "Resuming training from epoch: 0, iter: 4." in out
    assert "iter:       5" in out and "iter:       6" in out
    assert "iter:       1," not in out
    assert (exp / "training_states" / "6.state").is_file()

    test_file = write_yaml(str(tmp_path / "test.yml"),
                           make_test_options(opt, str(exp / "models" / "net_g_6.pth")))
    out = _ok(cli(["test", "-opt", test_file], cwd=str(work)))
    assert "Testing tiny_val" in out and "# psnr:" in out
    assert len(glob.glob(str(work / "results" / "tiny_test" / "visualization" / "tiny_val" / "*.png"))) == 2


def _wait_for(pattern: str, proc: subprocess.Popen, timeout: float) -> list[str]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = glob.glob(pattern)
        if found:
            return found
        if proc.poll() is not None:
            out = proc.stdout.read()
            pytest.fail(f"training exited early ({proc.returncode}):\n{out[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no {pattern} after {timeout} s")


def test_sigkill_then_auto_resume(tmp_path):
    gt, lq = make_pair_lmdbs(str(tmp_path / "data"))
    opt = train_options(gt, lq, name="killed")
    opt["train"]["total_iter"] = 100000
    opt["logger"]["save_checkpoint_freq"] = 1
    opt["val"]["val_freq"] = 100000
    opt_file = write_yaml(str(tmp_path / "killed.yml"), opt)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "addersr_plugin.cli", "train", "-opt", opt_file],
                            cwd=str(work), env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    states_dir = work / "experiments" / "killed" / "training_states"
    _wait_for(str(states_dir / "*.state"), proc, timeout=240)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    saved = sorted(int(p.split(".")[0]) for p in os.listdir(states_dir))
    assert saved and saved[0] >= 1

    # Resume: newest state that loads (a kill can cut the last file short) and go on.
    target = saved[-1] + 2
    out = _ok(cli(["train", "-opt", opt_file, "--auto_resume", "--force_yml", f"train:total_iter={target}"],
                  cwd=str(work)))
    resumed = [int(line.rsplit("iter: ", 1)[1].rstrip(".")) for line in out.splitlines()
               if "Resuming training from epoch" in line]
    assert len(resumed) == 1 and resumed[0] in saved, out[-3000:]
    assert f"iter:{resumed[0] + 1:8d}" in out
    assert (states_dir / f"{target}.state").is_file()
    assert not glob.glob(str(work / "experiments" / "killed_archived*"))  # resumed, not restarted
