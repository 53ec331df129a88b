"""The quality study's runs and their scores on the held-out photos (run_study.py's measuring half).

A configuration NAME of the study (make_study_options.py) is the :class:`runner.Run`
``study_NAME``: basicsr's folder ``experiments/study_NAME``, its option file
``options/study[/long]/NAME.yml`` and its committed archive ``benchmarks/quality/runs/NAME``.
Its final model is scored on the held-out whole photos (Y-PSNR/SSIM, border = scale; mean colour
error per channel), with bicubic alongside; scores are cached next to the run and recomputed when
the model is newer.
"""

from __future__ import annotations

import os

import numpy as np

import make_study_options as study
import runner


def option_path(name: str) -> str:
    if name in study.LONG:
        return os.path.join(runner.ROOT, "options", "study", "long", f"{name}.yml")
    return os.path.join(runner.ROOT, "options", "study", f"{name}.yml")


def archive_dir(name: str) -> str:
    """Where a finished run's final model, log and cost are committed (benchmarks/quality/runs/NAME).

    ``experiments/`` is not part of the repository; the archive is, so a later sitting on a fresh
    clone skips and scores the finished runs instead of training them again.
    """
    return os.path.join(runner.ROOT, "benchmarks", "quality", "runs", name)


def study_run(name: str) -> runner.Run:
    """The run of configuration ``name``: basicsr's experiments/study_NAME and its archive."""
    return runner.Run(f"study_{name}", option_path(name), archive_dir(name))


def score_run(name: str, pairs: dict, save_dir: str | None = None) -> dict:
    """Per-photo scores of the run's final model (cached in the run folder)."""
    return runner.score_model(study_run(name), pairs, save_dir)


def bicubic_scores(pairs: dict, scale: int) -> dict:
    from addersr_plugin.scoring import bicubic_upscale, score

    return {k: score(bicubic_upscale(lq, scale), gt, scale) for k, (gt, lq) in pairs.items()}


def source_of(photo: str, manifest: dict) -> str:
    for p in manifest["photos"]:
        if os.path.splitext(p["file"])[0] == photo:
            return p["source"]
    return "?"


def summarise(per_photo: dict, manifest: dict) -> dict:
    """Means over the held-out photographs (NOT_PHOTOS apart), per source, and the worst colour error."""
    photos = {k: v for k, v in per_photo.items() if k not in study.NOT_PHOTOS}
    sources = sorted({source_of(k, manifest) for k in photos})
    by_source = {s: float(np.mean([v["psnr"] for k, v in photos.items() if source_of(k, manifest) == s]))
                 for s in sources}
    worst_cast = max(max(abs(c) for c in v["colour_error_bgr"]) for v in per_photo.values())
    return {"psnr": float(np.mean([v["psnr"] for v in photos.values()])),
            "ssim": float(np.mean([v["ssim"] for v in photos.values()])),
            "psnr_by_source": by_source, "worst_colour_error": float(worst_cast),
            "not_photos": {k: per_photo[k]["psnr"] for k in study.NOT_PHOTOS if k in per_photo}}


def adder_scales(names: list[str], pairs: dict) -> tuple[str | None, dict[str, list[tuple[float, float]]]]:
    """Per adder layer: (mean |input|, mean |weight|) of each run's final model on one held-out photo.

    Returns the photo and, per run that has a final model, one pair per AdderConv2d in forward
    order (study_report.adder_scale_table prints them); (None, {}) when no run has a model yet. The evidence for the feature-scale
    diagnosis: ``|x - w|`` compares a feature with a weight, so the two must live on the same
    scale for the weights to act as templates.
    """
    import torch

    from addersr_plugin.nn import AdderConv2d
    from addersr_plugin.loading import load_generator

    runs = [study_run(n) for n in names]
    have = {n: r for n, r in zip(names, runs) if os.path.isfile(r.model)}
    if not have:
        return None, {}
    key = sorted(pairs)[0]
    lq = pairs[key][1]
    x = torch.from_numpy(np.ascontiguousarray(lq[:, :, ::-1])).permute(2, 0, 1)[None].float() / 255
    cols = {}
    for n, run in have.items():
        net, _, _ = load_generator(run.option_file, run.model)
        stats = []
        hooks = [m.register_forward_hook(lambda m, i, o: stats.append((float(i[0].abs().mean()),
                                                                        float(m.weight.detach().abs().mean()))))
                 for m in net.modules() if isinstance(m, AdderConv2d)]
        with torch.no_grad():
            net(x)
        for h in hooks:
            h.remove()
        cols[n] = stats
    return key, cols
