"""Which optimizer keeps the depth study's narrow CNN VDSR (16 features, 20 layers, ×2) alive:
a short training under each candidate, on the study's training LMDB with its patch and batch,
recording the loss and the last hidden ReLU's share of active units as it trains, and the
validation photos' Y-PSNR gain over bicubic at the end.

    python benchmarks/quality/vdsr_optim_probe.py [--iters 300] [--only NAME ...]
    # writes docs/quality_depth/vdsr_optim_probe.json

Under the study's Adam at 2e-3 (and 5e-4, 2e-4) the last hidden ReLU of the trained model has no
active unit (vdsr_probe.py): the network is then its bicubic interpolation. The candidates are
what a competent engineer tries next: a lower Adam rate, AdderSRModel's default gradient clipping
(the study's VDSR runs had it off), and the VDSR paper's own recipe (SGD with momentum 0.9, weight
decay 1e-4, lr 0.1 and gradient clipping on a summed loss, as in the common PyTorch port). A
candidate that keeps the ReLUs alive becomes a depth-study variant (vdsr_zl_lr*).

Measured (300 iterations): with He init the fresh net's error is about 37 times bicubic's, and
every candidate with the paper's init removes it by silencing the last hidden ReLUs (all but 0.01 %
under Adam 2e-3 and SGD) and is no better than bicubic; with ``zero_init_last`` at Adam 1e-4 38 %
stay active. Full runs (the study's vdsr_zl_lr* variants) then train.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import depth_study as study  # noqa: E402
import runner  # noqa: E402
from depth_report import NOT_PHOTOS, pairs_of  # noqa: E402
from vdsr_probe import relu_stats  # noqa: E402

OUT = os.path.join(runner.ROOT, "docs", "quality_depth", "vdsr_optim_probe.json")
SCALE, FEAT, LAYERS, SEED = 2, 16, 20, 10
LOG_EVERY = 25

ADAM = {"betas": (0.9, 0.99)}
PAPER_SGD = {"momentum": 0.9, "weight_decay": 1e-4}


def candidate(optim: str, lr: float, loss: str = "l1", reduction: str = "mean", clip=None, **net) -> dict:
    """A training to probe: optimizer and lr, loss (``l1``/``mse``) and its reduction, gradient
    clipping (None, ``auto`` as AdderSRModel's default, or a max norm) and VDSR arguments."""
    return {"optim": optim, "kwargs": {"lr": lr, **(ADAM if optim == "Adam" else PAPER_SGD)}, "loss": loss,
            "reduction": reduction, "grad_clip": clip, "net": net}


CANDIDATES = {
    "adam_2e-3": candidate("Adam", 2e-3),                 # the study's vdsr runs
    "adam_2e-3_clip_auto": candidate("Adam", 2e-3, clip="auto"),
    "adam_1e-4": candidate("Adam", 1e-4),
    # the VDSR paper's SGD, lr 0.1 and clipping on a summed loss, as the common PyTorch port runs it
    "sgd_paper": candidate("SGD", 0.1, reduction="sum", clip=0.4),
    "sgd_paper_lr0.01": candidate("SGD", 0.01, reduction="sum", clip=0.4),
    "sgd_paper_mse": candidate("SGD", 0.1, loss="mse", reduction="sum", clip=0.4),  # and the paper's loss
    "adam_1e-4_mse": candidate("Adam", 1e-4, loss="mse"),
    "adam_1e-4_zl": candidate("Adam", 1e-4, zero_init_last=True),
}


def batches(iters: int):
    """The study's training batches (its dataset options, seed 10's order)."""
    from basicsr.data.paired_image_dataset import PairedImageDataset

    opt = dict(study.options(study.run_name(SCALE, "vdsr", FEAT, LAYERS, SEED))["datasets"]["train"])
    opt.update(phase="train", scale=SCALE, dataroot_gt=os.path.join(runner.ROOT, opt["dataroot_gt"]),
               dataroot_lq=os.path.join(runner.ROOT, opt["dataroot_lq"]))
    ds = PairedImageDataset(opt)
    g = torch.Generator().manual_seed(SEED)
    loader = torch.utils.data.DataLoader(ds, batch_size=opt["batch_size_per_gpu"], shuffle=True, generator=g,
                                         num_workers=0, drop_last=True)
    done = 0
    while True:  # epochs over the 574 patches (basicsr's enlarge ratio lives in its sampler)
        for d in loader:
            if done == iters:
                return
            done += 1
            yield d["lq"], d["gt"]


def last_relu_active(net, lq) -> float:
    """The last hidden ReLU's share of active units (vdsr_probe.py's statistic)."""
    return relu_stats(net, lq)[-1]["active"]


def val_gain(net) -> dict:
    """Validation photos' mean Y-PSNR of the model and of bicubic (the study's NOT_PHOTOS kept out)."""
    from addersr_plugin.inference import upscale_image
    from addersr_plugin.scoring import bicubic_upscale, y_psnr_ssim

    model, bic = [], []
    for name, (gt, lq) in pairs_of("val", SCALE).items():
        if name in NOT_PHOTOS:
            continue
        model.append(y_psnr_ssim(upscale_image(net, lq, SCALE), gt, SCALE)[0])
        bic.append(y_psnr_ssim(bicubic_upscale(lq, SCALE), gt, SCALE)[0])
    return {"model": round(float(np.mean(model)), 3), "bicubic": round(float(np.mean(bic)), 3),
            "gain": round(float(np.mean(model) - np.mean(bic)), 3)}


def probe(name: str, iters: int, data=batches, score=val_gain, feat: int = FEAT, layers: int = LAYERS) -> dict:
    """Trains a fresh VDSR under candidate ``name`` on ``data(iters)``'s (lq, gt) batches; its
    trace, and ``score(net)`` of the final model."""
    from addersr_plugin.archs import VDSR
    from addersr_plugin.models.stability import GradClipper
    from addersr_plugin.nn import bicubic_upsample

    c = CANDIDATES[name]
    kwargs, reduction, clip = c["kwargs"], c["reduction"], c["grad_clip"]
    loss_fn = F.l1_loss if c["loss"] == "l1" else F.mse_loss
    torch.manual_seed(SEED)
    random.seed(SEED)  # basicsr's flips and crops draw from these
    np.random.seed(SEED)
    net = VDSR(**{"num_feat": feat, "num_layer": layers, "upscale": SCALE, **c["net"]})
    optim = getattr(torch.optim, c["optim"])(net.parameters(), **kwargs)
    # the study's schedule: cosine to lr/100 over the run
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, iters, eta_min=kwargs["lr"] / 100)
    clipper = GradClipper(clip) if clip is not None else None
    trace, t0, window = [], time.time(), []
    for i, (lq, gt) in enumerate(data(iters), 1):
        out = net(lq)
        loss = loss_fn(out, gt, reduction=reduction)
        # the per-pixel L1 whatever the loss, so that the candidates read alike
        l1 = float((out.detach() - gt).abs().mean())
        if i == 1:  # the fresh net's error, against bicubic's on the same batch
            first = {"l1_fresh_net": round(l1, 5),
                     "l1_bicubic": round(float((bicubic_upsample(lq, SCALE) - gt).abs().mean()), 5)}
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if clipper is not None:
            clipper.clip([p for p in net.parameters() if p.grad is not None])
        optim.step()
        sched.step()
        window.append(l1)
        if i % LOG_EVERY == 0 or i == iters:
            trace.append({"iter": i, "l1": round(float(np.mean(window)), 5),
                          "last_relu_active": last_relu_active(net, lq)})
            window = []
            print(f"[{name}] {i}/{iters} l1 {trace[-1]['l1']:.5f} last ReLU active {trace[-1]['last_relu_active']:.3f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
    net.eval()
    return {**c, "first_batch": first, "trace": trace, "validation": score(net), "seconds": round(time.time() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iters", type=int, default=300, help="iterations per candidate (default 300)")
    p.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.iters < LOG_EVERY:
        p.error(f"--iters must be at least {LOG_EVERY}")
    torch.set_num_threads(args.threads)
    result = runner.read_json(OUT, {}) or {}
    result.setdefault("candidates", {})
    result.update(date=datetime.datetime.now().isoformat(timespec="seconds"), iters=args.iters,
                  model=f"VDSR {FEAT} features, {LAYERS} layers, x{SCALE}, seed {SEED}")
    for name in args.only:
        result["candidates"][name] = probe(name, args.iters)
        v = result["candidates"][name]["validation"]
        print(f"[{name}] validation {v['model']:.2f} dB, bicubic {v['bicubic']:.2f} (gain {v['gain']:+.2f})")
        runner.write_json(OUT, result)  # after every candidate: an interrupted probe keeps what it measured
    print(f"wrote {os.path.relpath(OUT, runner.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
