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
candidate that keeps the ReLUs alive and gains over bicubic becomes a depth-study variant.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import depth_study as study  # noqa: E402
import runner  # noqa: E402
from depth_report import pairs_of  # noqa: E402

OUT = os.path.join(runner.ROOT, "docs", "quality_depth", "vdsr_optim_probe.json")
SCALE, FEAT, LAYERS, SEED = 2, 16, 20, 10
LOG_EVERY = 25

# name -> (optimizer type, optimizer kwargs, loss reduction, clip: None | "auto" | max norm)
CANDIDATES = {
    "adam_2e-3": ("Adam", {"lr": 2e-3, "betas": (0.9, 0.99)}, "mean", None),
    "adam_2e-3_clip_auto": ("Adam", {"lr": 2e-3, "betas": (0.9, 0.99)}, "mean", "auto"),
    "adam_1e-4": ("Adam", {"lr": 1e-4, "betas": (0.9, 0.99)}, "mean", None),
    "sgd_paper": ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}, "sum", 0.4),
    "sgd_paper_lr0.01": ("SGD", {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}, "sum", 0.4),
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
    from addersr_plugin.nn import bicubic_upsample

    with torch.inference_mode():
        h = net.body[:-1](bicubic_upsample(lq, net.upscale))
    return round(float((h > 0).float().mean()), 4)


def val_gain(net) -> dict:
    """Validation photos' mean Y-PSNR of the model and of bicubic (the study's NOT_PHOTOS kept out)."""
    from addersr_plugin.inference import upscale_image
    from addersr_plugin.scoring import bicubic_upscale, y_psnr_ssim
    from depth_report import NOT_PHOTOS

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

    opt_type, kwargs, reduction, clip = CANDIDATES[name]
    torch.manual_seed(SEED)
    net = VDSR(num_feat=feat, num_layer=layers, upscale=SCALE)
    optim = getattr(torch.optim, opt_type)(net.parameters(), **kwargs)
    # the study's schedule: cosine to lr/100 over the run
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, iters, eta_min=kwargs["lr"] / 100)
    clipper = GradClipper(clip) if clip is not None else None
    trace, t0, window = [], time.time(), []
    for i, (lq, gt) in enumerate(data(iters), 1):
        loss = F.l1_loss(net(lq), gt, reduction=reduction)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if clipper is not None:
            clipper.clip([p for p in net.parameters() if p.grad is not None])
        optim.step()
        sched.step()
        # a per-pixel mean whatever the reduction, so that the candidates read alike
        window.append(loss.item() / (gt.numel() if reduction == "sum" else 1))
        if i % LOG_EVERY == 0 or i == iters:
            trace.append({"iter": i, "l1": round(float(np.mean(window)), 5),
                          "last_relu_active": last_relu_active(net, lq)})
            window = []
            print(f"[{name}] {i}/{iters} l1 {trace[-1]['l1']:.5f} last ReLU active {trace[-1]['last_relu_active']:.3f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
    net.eval()
    return {"optimizer": opt_type, "kwargs": kwargs, "loss_reduction": reduction, "grad_clip": clip,
            "trace": trace, "validation": score(net), "seconds": round(time.time() - t0, 1)}


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
