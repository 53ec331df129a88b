"""Is a trained AdderEDSR held back by its BatchNorm running statistics? (depth study, phase 3)

    python benchmarks/quality/bn_probe.py depth_x4_ours_32x16_s10 [RUN ...] [--batches 200]

For each archived depth-study run it scores the final model on the validation photos three ways:
as trained (eval mode, the running statistics basicsr's training left), after re-estimating every
BatchNorm's statistics as a plain average over ``--batches`` training batches of the run's own
data pipeline (``momentum=None``: a cumulative mean, no exponential forgetting), and with every
BatchNorm normalising each validation image by its own statistics (train-mode BN, batch of one
photo). A large gain from the second says the running statistics, not the weights, limit the
network; the third shows how far per-image statistics are from the training batches'. Writes
``docs/quality_depth/bn_probe.json`` (one record per run; earlier records of other runs kept).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import depth_study as study  # noqa: E402
import runner  # noqa: E402

OUT = os.path.join(runner.ROOT, "docs", "quality_depth", "bn_probe.json")


def val_psnr(net: torch.nn.Module, pairs: dict, scale: int) -> float:
    from addersr_plugin.inference import upscale_image
    from addersr_plugin.scoring import score

    return float(np.mean([score(upscale_image(net, lq, scale), gt, scale)["psnr"] for gt, lq in pairs.values()]))


def train_batches(opt: dict, n: int, seed: int = 0):
    """``n`` batches of the run's training pipeline (same LMDB, patch size, flips), fixed seed."""
    from basicsr.data import build_dataset

    dopt = copy.deepcopy(opt["datasets"]["train"])
    dopt.update(phase="train", scale=opt["scale"])
    ds = build_dataset(dopt)
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=dopt["batch_size_per_gpu"], shuffle=True, generator=g,
                                         num_workers=0, drop_last=True)
    for i, batch in enumerate(loader):
        if i >= n:
            break
        yield batch["lq"]


def recalibrate(net: torch.nn.Module, batches) -> int:
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    net.train()
    with torch.no_grad():
        for x in batches:
            net(x)
    net.eval()
    return len(bns)


def per_image_bn(net: torch.nn.Module) -> None:
    """BatchNorm normalises with the current input's statistics (train mode), nothing updated."""
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None


def probe(name: str, batches: int) -> dict:
    from addersr_plugin.loading import load_generator, read_options
    from addersr_plugin.scoring import read_pairs

    run = study.run_of(name)
    runner.restore(run)
    model = run.model if os.path.isfile(run.model) else os.path.join(run.archive, "net_g_latest.pth")
    opt = read_options(run.option_file)
    pairs = read_pairs(os.path.join(runner.ROOT, opt["datasets"]["val"]["dataroot_gt"]),
                       os.path.join(runner.ROOT, opt["datasets"]["val"]["dataroot_lq"]))
    net, scale, _ = load_generator(run.option_file, model)
    start = time.time()
    as_trained = val_psnr(net.eval(), pairs, scale)
    n_bn = recalibrate(net, train_batches(opt, batches))
    recal = val_psnr(net, pairs, scale)
    net, _, _ = load_generator(run.option_file, model)
    per_image_bn(net)
    per_image = val_psnr(net, pairs, scale)
    rec = {"run": name, "batchnorms": n_bn, "recalibration_batches": batches,
           "val_psnr": {"as_trained": as_trained, "recalibrated": recal, "per_image_stats": per_image},
           "photos": sorted(pairs), "seconds": round(time.time() - start, 1),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"{name}: {n_bn} BatchNorms; validation {as_trained:.3f} as trained, {recal:.3f} recalibrated "
          f"({recal - as_trained:+.3f}), {per_image:.3f} with per-image statistics", flush=True)
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--batches", type=int, default=200, help="training batches for the re-estimate (default 200)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    data = runner.read_json(OUT, {"runs": {}})
    for name in args.runs:
        data["runs"][name] = probe(name, args.batches)
        data["command"] = "python benchmarks/quality/bn_probe.py " + " ".join(argv if argv is not None else sys.argv[1:])
        runner.write_json(OUT, data)
    print(f"wrote {os.path.relpath(OUT, runner.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
