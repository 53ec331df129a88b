"""What AdderConv2d's adaptive learning rate does under DistributedDataParallel.

Two gloo processes on the CPU, each with its own batch. The claim documented in
``addersr_plugin/nn/adder_conv.py``: the ALR hook rescales each rank's local gradient
before DDP averages them, so every rank ends with mean_r(ALR(g_r)).
"""

import os
import socket
import subprocess
import sys
import textwrap

import pytest

WORKER = textwrap.dedent("""
    import os, sys
    import torch
    import torch.distributed as dist
    from addersr_plugin.nn import AdderConv2d, adaptive_lr_scale

    rank, world, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    layer = AdderConv2d(3, 4, 3, padding=1, eta=0.2).double()
    ddp = torch.nn.parallel.DistributedDataParallel(layer)

    def batch(r):
        g = torch.Generator().manual_seed(100 + r)
        return torch.randn(2, 3, 5, 5, generator=g, dtype=torch.float64)

    # Local raw gradients of every rank, from a hook-free copy of the layer.
    local = []
    for r in range(world):
        w = layer.weight.detach().clone().requires_grad_(True)
        from addersr_plugin.ops import adder_conv2d
        (adder_conv2d(batch(r), w, None, 1, 1) ** 2).mean().backward()
        local.append(w.grad)
    expect_local = (sum(adaptive_lr_scale(g, 0.2) for g in local) / world)
    expect_global = adaptive_lr_scale(sum(local) / world, 0.2)

    (ddp(batch(rank)) ** 2).mean().backward()
    got = layer.weight.grad
    ok_local = torch.allclose(got, expect_local, rtol=1e-10, atol=1e-12)
    ok_global = torch.allclose(got, expect_global, rtol=1e-6, atol=1e-9)
    print(f"RESULT rank={rank} local={ok_local} global={ok_global} norm={got.norm().item():.6f}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    # gloo's teardown can abort the interpreter at exit on some builds; all checks are done.
    sys.stdout.flush()
    os._exit(0)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_alr_rescales_local_gradient_before_ddp_allreduce(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port, world = str(_free_port()), 2
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(world), port], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(world)]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
    results = [line for out in outs for line in out.splitlines() if line.startswith("RESULT")]
    assert len(results) == world, outs
    for line in results:
        # The final gradient is the average of locally rescaled gradients ...
        assert "local=True" in line, line
        # ... which is not the rescaled average gradient (the two differ for distinct batches).
        assert "global=False" in line, line
        # so its norm is below eta * sqrt(k) = 0.2 * sqrt(4*3*3*3) = 2.078...
        assert float(line.split("norm=")[1]) < 0.2 * (4 * 3 * 3 * 3) ** 0.5
