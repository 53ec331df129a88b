"""``--launcher pytorch`` (torchrun) on machines without GPUs, and DDP validation that does not hang.

basicsr asks for NCCL and divides the rank by the GPU count (zero on a CPU machine); here gloo is
used instead and the model is wrapped in DDP without CUDA ``device_ids``. Rank-0-only validation
runs the bare network, not the DDP wrapper, so it issues no collective (the BatchNorm buffer
broadcast) that the other ranks would never join. On GPU machines basicsr's originals run.
"""

from __future__ import annotations

import importlib

from .preimport import PATCHED


def _cpu_only() -> bool:
    import torch

    return not torch.cuda.is_available() or torch.cuda.device_count() == 0


def patch_distributed() -> bool:
    """Let ``--launcher pytorch`` run on machines without GPUs (gloo, DDP without device_ids).

    On GPU machines both replacements call basicsr's originals unchanged.
    """
    dist_util = importlib.import_module("basicsr.utils.dist_util")
    base_model = importlib.import_module("basicsr.models.base_model")
    if getattr(dist_util._init_dist_pytorch, PATCHED, False):
        return False
    original_init = dist_util._init_dist_pytorch
    original_to_device = base_model.BaseModel.model_to_device

    def _init_dist_pytorch(backend, **kwargs):
        if not _cpu_only():
            return original_init(backend, **kwargs)
        import torch.distributed as dist

        # basicsr asks for nccl and divides the rank by the GPU count (0 here).
        dist.init_process_group(backend="gloo", **kwargs)

    def model_to_device(self, net):
        if self.opt.get("dist") and self.device.type == "cpu":
            from torch.nn.parallel import DistributedDataParallel

            return DistributedDataParallel(
                net.to(self.device),
                find_unused_parameters=self.opt.get("find_unused_parameters", False),
            )
        return original_to_device(self, net)

    sr_model = importlib.import_module("basicsr.models.sr_model")
    original_test = sr_model.SRModel.test

    def test(self):
        # Validation runs on rank 0 only; through the DDP wrapper its forward would broadcast
        # BatchNorm buffers (AdderSR units all have BN), a collective the other ranks never
        # join: gloo fails with "Connection closed by peer", NCCL hangs. Use the bare module.
        wrapped = self.net_g
        self.net_g = self.get_bare_model(wrapped)
        try:
            return original_test(self)
        finally:
            self.net_g = wrapped

    for fn in (_init_dist_pytorch, model_to_device, test):
        setattr(fn, PATCHED, True)
    dist_util._init_dist_pytorch = _init_dist_pytorch
    base_model.BaseModel.model_to_device = model_to_device
    sr_model.SRModel.test = test
    return True


__all__ = ["patch_distributed"]
