"""The AdderSR quality study: train every configuration, score it on held-out photos, write the report.

    bash benchmarks/quality/prepare_photos.sh              # once: datasets/photos (docs/quality.md)
    python benchmarks/quality/make_study_options.py        # options/study/*.yml
    python benchmarks/quality/run_study.py [--jobs 2] [--only NAME ...] [--report-only]

Each configuration is an option file ``options/study/NAME.yml`` trained through the installed
``basicsr train`` command (a subprocess, exactly as a user runs it) from the repository root:

* resumable: a finished run (``experiments/study_NAME/study_done.json``) is skipped; an
  interrupted one continues with ``--auto_resume`` from its last checkpoint, so the study can be
  run over several sittings, and the training seconds of all sittings are added up;
* scored on the held-out whole photos (Y-PSNR/SSIM, border = scale; mean colour error per
  channel), with bicubic alongside; scores are cached next to the run and recomputed when the
  model is newer;
* reported: ``docs/quality.md`` is rendered from ``benchmarks/quality/quality_template.md``
  (the narrative) with every table, ``docs/quality/results.json`` holds every number, and
  ``docs/quality/*.png`` the plots (PSNR vs iteration, ablation bars) and the crops to look at.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import make_study_options as study  # noqa: E402

DOCS = os.path.join(ROOT, "docs")
FIG = os.path.join(DOCS, "quality")
TEMPLATE = os.path.join(HERE, "quality_template.md")
_VAL_ITER = re.compile(r"iter:\s*([\d,]+),")
_VAL_PSNR = re.compile(r"# psnr: ([\d.]+)")


def run_dir(name: str) -> str:
    return os.path.join(ROOT, "experiments", f"study_{name}")


def sittings_dir(name: str) -> str:
    """The runner's cost record and per-sitting logs of a run (beside basicsr's run folder)."""
    return os.path.join(ROOT, "experiments", "study_sittings", name)


def option_path(name: str) -> str:
    if name in study.LONG:
        return os.path.join(ROOT, "options", "study", "long", f"{name}.yml")
    return os.path.join(ROOT, "options", "study", f"{name}.yml")


def describe(name: str) -> str:
    """What a run changes, for the tables."""
    if name in study.LONG:
        base, size, _ = study.LONG[name]
        sized = f" at {size['num_feat']} features, {size['num_block']} blocks" if size else ""
        return f"`{base}`{sized}, {study.LONG_ITERS} iterations"
    return study.STUDY[name][1]


def _read_json(path: str, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def _write_json(path: str, data) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)  # never a half-written JSON that looks valid


def archive_dir(name: str) -> str:
    """Where a finished run's final model, log and cost are committed (benchmarks/quality/runs/NAME).

    ``experiments/`` is not part of the repository; the archive is, so a later sitting on a fresh
    clone skips and scores the finished runs instead of training them again.
    """
    return os.path.join(ROOT, "benchmarks", "quality", "runs", name)


ARCHIVE_MODEL_LIMIT = 2 * 2**20  # bytes; larger models (64/16) are scored once and not committed


def archive(name: str) -> None:
    import shutil

    rdir, adir = run_dir(name), archive_dir(name)
    os.makedirs(adir, exist_ok=True)
    model = os.path.join(rdir, "models", "net_g_latest.pth")
    if os.path.getsize(model) <= ARCHIVE_MODEL_LIMIT:
        shutil.copyfile(model, os.path.join(adir, "net_g_latest.pth"))
    logs = sorted(f for f in os.listdir(rdir) if f.startswith("train_") and f.endswith(".log"))
    with open(os.path.join(adir, "train.log"), "w", encoding="utf-8") as out:
        for log in logs:  # every sitting's basicsr log, for the validation curve
            with open(os.path.join(rdir, log), encoding="utf-8", errors="replace") as f:
                out.write(f.read())
    shutil.copyfile(os.path.join(rdir, "study_done.json"), os.path.join(adir, "study_done.json"))


def restore(name: str) -> bool:
    """Put an archived finished run back under experiments/ (no-op when it is there, not archived, or
    archived without its model)."""
    import shutil

    rdir, adir = run_dir(name), archive_dir(name)
    if os.path.isfile(os.path.join(rdir, "study_done.json")) or \
            not os.path.isfile(os.path.join(adir, "study_done.json")):
        return False
    if not os.path.isfile(os.path.join(adir, "net_g_latest.pth")):
        return False  # a run archived without its model (ARCHIVE_MODEL_LIMIT): results.json keeps its scores
    os.makedirs(os.path.join(rdir, "models"), exist_ok=True)
    shutil.copyfile(os.path.join(adir, "net_g_latest.pth"), os.path.join(rdir, "models", "net_g_latest.pth"))
    shutil.copyfile(os.path.join(adir, "train.log"), os.path.join(rdir, "train_archived.log"))
    shutil.copyfile(os.path.join(adir, "study_done.json"), os.path.join(rdir, "study_done.json"))
    return True


def train(name: str, threads: int) -> dict:
    """Train ``name`` to completion (or resume it); returns its cost record."""
    rdir = run_dir(name)
    if restore(name):
        print(f"[{name}] restored from {os.path.relpath(archive_dir(name), ROOT)}", flush=True)
    done = _read_json(os.path.join(rdir, "study_done.json"))
    if done:
        print(f"[{name}] finished earlier ({done['seconds'] / 60:.1f} min); skipped", flush=True)
        return done
    # the runner's own files of an unfinished run live beside the run folder, not in it: basicsr
    # renames an existing run folder to *_archived_* when a run starts without a resume state
    sittings = sittings_dir(name)
    os.makedirs(sittings, exist_ok=True)
    cost_path = os.path.join(sittings, "study_cost.json")
    if not os.path.isfile(cost_path) and os.path.isfile(os.path.join(rdir, "study_cost.json")):
        shutil.move(os.path.join(rdir, "study_cost.json"), cost_path)  # a run started by an older runner
    cost = _read_json(cost_path, {"seconds": 0.0, "sittings": 0})
    from addersr_plugin.demo import basicsr_command  # the installed `basicsr` script, as the demo runs it

    cmd = basicsr_command() + ["train", "-opt", option_path(name), "--auto_resume"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    print(f"[{name}] {'resuming' if cost['sittings'] else 'starting'}: {' '.join(cmd)}", flush=True)
    log_path = os.path.join(sittings, f"sitting{cost['sittings'] + 1}.log")
    start = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    cost = {"seconds": cost["seconds"] + time.time() - start, "sittings": cost["sittings"] + 1}
    _write_json(cost_path, cost)
    if proc.returncode != 0:
        raise RuntimeError(f"[{name}] basicsr train failed (exit {proc.returncode}); see {log_path}")
    model = os.path.join(rdir, "models", "net_g_latest.pth")
    if not os.path.isfile(model):
        raise RuntimeError(f"[{name}] training ended without {model}; see {log_path}")
    done = dict(cost, iters=study.ITERS, threads=threads, finished=time.strftime("%Y-%m-%d %H:%M"))
    _write_json(os.path.join(rdir, "study_done.json"), done)
    archive(name)
    print(f"[{name}] done in {cost['seconds'] / 60:.1f} min over {cost['sittings']} sitting(s)", flush=True)
    return done


def _log_seconds(log: str) -> float:
    """Seconds from basicsr's first to last timestamped line of a training log."""
    stamps = []
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", line)
            if m:
                stamps.append(time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")))
    return stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0


def import_long(src: str, device: str) -> list[str]:
    """File long-schedule runs trained elsewhere (run_long_gpu.sh's folders study_NAME with the
    basicsr log(s) and the newest models/net_g_*.pth) as finished runs under experiments/ and
    in the archive; a run stopped before its last iteration is filed with the iterations it reached."""
    import glob
    import shutil

    done_names = []
    for name in study.LONG:
        sdir = os.path.join(src, f"study_{name}")
        logs = sorted(glob.glob(os.path.join(sdir, "train_*.log")))
        models = glob.glob(os.path.join(sdir, "models", "net_g_*.pth"))
        if not logs or not models:
            continue
        latest = os.path.join(sdir, "models", "net_g_latest.pth")
        if os.path.isfile(latest):  # basicsr writes it at the end of a finished run
            model, reached = latest, study.LONG_ITERS
        else:  # a stopped run: its newest checkpoint
            numbered = {int(m.group(1)): p for p in models if (m := re.search(r"net_g_(\d+)\.pth$", p))}
            if not numbered:
                continue
            reached = max(numbered)
            model = numbered[reached]
        rdir = run_dir(name)
        os.makedirs(os.path.join(rdir, "models"), exist_ok=True)
        for log in logs:
            shutil.copyfile(log, os.path.join(rdir, os.path.basename(log)))
        shutil.copyfile(model, os.path.join(rdir, "models", "net_g_latest.pth"))
        iters = [it for it, _ in val_curve(name)]
        done = {"seconds": sum(_log_seconds(l) for l in logs), "sittings": len(logs), "iters": reached,
                "planned_iters": study.LONG_ITERS, "device": device,
                "finished": time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(logs[-1])))}
        _write_json(os.path.join(rdir, "study_done.json"), done)
        archive(name)
        print(f"[{name}] imported: {reached}/{study.LONG_ITERS} iterations, {done['seconds'] / 60:.1f} min on "
              f"{device}, validation at {iters[:1]}..{iters[-1:]}", flush=True)
        done_names.append(name)
    return done_names


def val_curve(name: str) -> list[tuple[int, float]]:
    """(iteration, held-out Y-PSNR) from basicsr's validation lines in the run's training logs."""
    rdir = run_dir(name)
    points = {}
    logs = sorted(f for f in os.listdir(rdir) if f.startswith("train_") and f.endswith(".log")) \
        if os.path.isdir(rdir) else []
    for log in logs:
        it = None
        with open(os.path.join(rdir, log), encoding="utf-8", errors="replace") as f:
            for line in f:
                m = _VAL_ITER.search(line)
                if m:
                    it = int(m.group(1).replace(",", ""))
                m = _VAL_PSNR.search(line)
                if m and it is not None:
                    points[it] = float(m.group(1))
    return sorted(points.items())


def score_run(name: str, pairs: dict, save_dir: str | None = None) -> dict:
    """Per-photo scores of the run's final model (cached in the run folder)."""
    from addersr_plugin.scoring import score
    from addersr_plugin.upscale import load_generator, upscale_image

    model = os.path.join(run_dir(name), "models", "net_g_latest.pth")
    cache_path = os.path.join(run_dir(name), "study_scores.json")
    cache = _read_json(cache_path)
    if cache and cache.get("model_mtime") == os.path.getmtime(model) and set(cache["photos"]) == set(pairs) \
            and (save_dir is None or all(os.path.isfile(os.path.join(save_dir, f"{k}.png")) for k in pairs)):
        return cache["photos"]
    net, scale, _ = load_generator(option_path(name), model)
    photos = {}
    for key, (gt, lq) in pairs.items():
        sr = upscale_image(net, lq, scale)
        photos[key] = score(sr, gt, scale)
        if save_dir:
            import cv2

            os.makedirs(save_dir, exist_ok=True)
            cv2.imwrite(os.path.join(save_dir, f"{key}.png"), sr)
    _write_json(cache_path, {"model_mtime": os.path.getmtime(model), "photos": photos})
    return photos


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


# ---------------------------------------------------------------------------------------------
# the report


def _fmt_table(rows: list[list[str]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def group_table(results: dict, names: list[str], bicubic: dict) -> str:
    sources = list(bicubic["summary"]["psnr_by_source"])
    extra = list(bicubic["summary"]["not_photos"])
    head = ["run", "what it changes", "Y-PSNR (photos)", "vs bicubic", "vs EDSR", "SSIM"] + \
        [f"{s}" for s in sources] + [f"{e.split('_')[-4]} (graphic)" for e in extra] + \
        ["worst colour error", "train min"]
    def twin_psnr(n):  # the EDSR of the run's own size and schedule
        return results.get(study.LONG_TWIN.get(n, "edsr"), {}).get("summary", {}).get("psnr")

    rows = [["bicubic", "MATLAB bicubic", f"{bicubic['summary']['psnr']:.2f}", "", "",
             f"{bicubic['summary']['ssim']:.4f}"] + [f"{bicubic['summary']['psnr_by_source'][s]:.2f}"
                                                     for s in sources]
            + [f"{bicubic['summary']['not_photos'][e]:.2f}" for e in extra]
            + [f"{bicubic['summary']['worst_colour_error']:.2f}", ""]]
    for n in names:
        r = results.get(n)
        if not r or "summary" not in r:
            rows.append([n, describe(n), "not run yet"] + [""] * (len(head) - 3))
            continue
        s, edsr = r["summary"], twin_psnr(n)
        what = describe(n)
        if r["cost"].get("iters", 0) < r["cost"].get("planned_iters", 0):
            what += f" (stopped at {r['cost']['iters']})"
        rows.append([n, what, f"{s['psnr']:.2f}", f"{s['psnr'] - bicubic['summary']['psnr']:+.2f}",
                     f"{s['psnr'] - edsr:+.2f}" if edsr is not None else "", f"{s['ssim']:.4f}"]
                    + [f"{s['psnr_by_source'][src]:.2f}" for src in sources]
                    + [f"{s['not_photos'][e]:.2f}" for e in extra]
                    + [f"{s['worst_colour_error']:.2f}", f"{r['cost']['seconds'] / 60:.0f}"])
    return _fmt_table(rows, head)


def photo_table(results: dict, names: list[str], bicubic: dict) -> str:
    photos = list(bicubic["photos"])
    head = ["run"] + photos
    rows = [["bicubic"] + [f"{bicubic['photos'][p]['psnr']:.2f}" for p in photos]]
    for n in names:
        if n in results and "photos" in results[n]:
            rows.append([n] + [f"{results[n]['photos'][p]['psnr']:.2f}" for p in photos])
    return _fmt_table(rows, head)


def plot_curves(results: dict, bicubic: dict, names: list[str], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for n in names:
        curve = results.get(n, {}).get("curve")
        if curve:
            it, ps = zip(*curve)
            ax.plot(it, ps, marker="o", label=n)
    ax.axhline(bicubic["summary"]["psnr"], color="grey", ls="--", label="bicubic")
    ax.set_xlabel("iteration")
    ax.set_ylabel("held-out Y-PSNR (dB, x2)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_bars(results: dict, bicubic: dict, names: list[str], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    have = [n for n in names if "summary" in results.get(n, {})]
    if not have:
        return
    base = bicubic["summary"]["psnr"]
    vals = [results[n]["summary"]["psnr"] - base for n in have]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(have) + 1.5))
    ax.barh(have, vals, color=["tab:red" if v < 0 else "tab:blue" for v in vals])
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:+.2f}", va="center", fontsize=8)
    ax.axvline(0, color="grey")
    ax.set_xlabel("held-out Y-PSNR minus bicubic (dB, x2)")
    ax.set_title(title)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_gap(results: dict, names: list[str], path: str, title: str = "") -> None:
    """EDSR minus each adder run on basicsr's validation, iteration by iteration (the gap curve);
    each run against the EDSR twin of its own size and schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results.get("edsr", {}).get("curve") and not any(
            results.get(study.LONG_TWIN.get(n, "edsr"), {}).get("curve") for n in names):
        return
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for n in names:
        edsr = dict(results.get(study.LONG_TWIN.get(n, "edsr"), {}).get("curve") or [])
        curve = [(it, edsr[it] - p) for it, p in results.get(n, {}).get("curve") or [] if it in edsr]
        if curve:
            it, gap = zip(*curve)
            ax.plot(it, gap, marker="o", label=n)
    ax.axhline(0.5, color="grey", ls=":", label="target 0.5 dB")
    ax.axhline(0.0, color="grey")
    ax.set_xlabel("iteration")
    ax.set_ylabel("EDSR minus AdderEDSR (dB, basicsr validation)")
    ax.set_title(title or "gap to the CNN twin vs iteration (all 6 held-out images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def comparison_pngs(results: dict, pairs: dict, names: list[str], bicubic_imgs: dict) -> list[str]:
    """docs/quality/compare_<photo>.png: bicubic | each run | HR, on the most detailed window."""
    import cv2

    from addersr_plugin.scoring import detail_centre, side_by_side

    written = []
    have = [n for n in names if os.path.isfile(os.path.join(run_dir(n), "study_outputs", f"{next(iter(pairs))}.png"))]
    for key, (gt, _lq) in pairs.items():
        panels = [("bicubic", bicubic_imgs[key])]
        panels += [(n, cv2.imread(os.path.join(run_dir(n), "study_outputs", f"{key}.png"))) for n in have]
        panels.append(("HR", gt))
        png = side_by_side(panels, box=160, centre=detail_centre(gt, 160))
        out = os.path.join(FIG, f"compare_{key}.png")
        cv2.imwrite(out, png, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        written.append(out)
    return written


def adder_scale_table(names: list[str], pairs: dict) -> str:
    """Per adder layer: mean |input| and mean |weight| of each run's final model on one held-out photo.

    The evidence for the feature-scale diagnosis: ``|x - w|`` compares a feature with a weight, so
    the two must live on the same scale for the weights to act as templates.
    """
    import torch

    from addersr_plugin.nn import AdderConv2d
    from addersr_plugin.upscale import load_generator

    have = [n for n in names if os.path.isfile(os.path.join(run_dir(n), "models", "net_g_latest.pth"))]
    if not have:
        return "(not run yet)"
    key = sorted(pairs)[0]
    lq = pairs[key][1]
    x = torch.from_numpy(np.ascontiguousarray(lq[:, :, ::-1])).permute(2, 0, 1)[None].float() / 255
    cols = {}
    for n in have:
        net, _, _ = load_generator(option_path(n), os.path.join(run_dir(n), "models", "net_g_latest.pth"))
        stats = []
        hooks = [m.register_forward_hook(lambda m, i, o: stats.append((float(i[0].abs().mean()),
                                                                        float(m.weight.detach().abs().mean()))))
                 for m in net.modules() if isinstance(m, AdderConv2d)]
        with torch.no_grad():
            net(x)
        for h in hooks:
            h.remove()
        cols[n] = stats
    depth = max(len(v) for v in cols.values())
    rows = []
    for i in range(depth):
        row = [str(i)]
        for n in have:
            st = cols[n]
            row += [f"{st[i][0]:.2f}", f"{st[i][1]:.2f}"] if i < len(st) else ["", ""]
        rows.append(row)
    head = ["adder layer"] + [c for n in have for c in (f"{n} mean abs input", f"{n} mean abs weight")]
    return f"Measured on `{key}` (LR), final models; weights start at N(0, 1), mean abs 0.80.\n\n" + \
        _fmt_table(rows, head)


def targets_block(results: dict, bicubic: dict) -> str:
    """The issue's targets, checked against the measured numbers."""
    def psnr(n):
        return results.get(n, {}).get("summary", {}).get("psnr")

    edsr, bic = psnr("edsr"), bicubic["summary"]["psnr"]
    distilled = {n for n in study.STUDY if study.DEPENDS.get(n) == "edsr"}  # students of the CNN twin
    adders = {n: psnr(n) for n in study.STUDY if n != "edsr" and psnr(n) is not None and n not in distilled}
    lines = []
    if edsr is None or not adders:
        return "(not run yet)"
    best = max(adders, key=adders.get)
    ok = lambda c: "met" if c else "**not met**"  # noqa: E731
    lines.append(f"- best AdderEDSR configuration without distillation (ablations included): `{best}` "
                 f"{adders[best]:.2f} dB = bicubic "
                 f"{adders[best] - bic:+.2f} dB (target +1.5: {ok(adders[best] - bic >= 1.5)}), "
                 f"EDSR {adders[best] - edsr:+.2f} dB (target within 0.5: {ok(edsr - adders[best] <= 0.5)})")
    students = {n: psnr(n) for n in distilled if psnr(n) is not None}
    if students:
        n = max(students, key=students.get)
        d = students[n]
        lines.append(f"- best with distillation (`{n}`): {d:.2f} dB = bicubic {d - bic:+.2f} dB, EDSR "
                     f"{d - edsr:+.2f} dB (target within 0.3: {ok(edsr - d <= 0.3)})")
    long_edsr = psnr("long_edsr")
    long_adders = {n: psnr(n) for n in study.LONG if study.LONG_TWIN[n] == "long_edsr" and n != "long_edsr"
                   and psnr(n) is not None and study.LONG_DEPENDS.get(n) != "long_edsr"}
    if long_edsr is not None and long_adders:
        best = max(long_adders, key=long_adders.get)
        lines.append(f"- at the 5x longer schedule (GPU, `{best}`): {long_adders[best]:.2f} dB = bicubic "
                     f"{long_adders[best] - bic:+.2f} dB (+1.5: {ok(long_adders[best] - bic >= 1.5)}), its EDSR twin "
                     f"{long_adders[best] - long_edsr:+.2f} dB (within 0.5: {ok(long_edsr - long_adders[best] <= 0.5)})")
        students = {n: psnr(n) for n, t in study.LONG_DEPENDS.items() if t == "long_edsr" and psnr(n) is not None}
        if students:
            n = max(students, key=students.get)
            lines.append(f"- with distillation at the longer schedule (`{n}`): {students[n]:.2f} dB = EDSR twin "
                         f"{students[n] - long_edsr:+.2f} dB (within 0.3: {ok(long_edsr - students[n] <= 0.3)})")
    lines.append(f"- paper-faithful AdderEDSR (`adder_paper`): "
                 f"{psnr('adder_paper') - bic:+.2f} dB vs bicubic" if psnr("adder_paper") else "")
    return "\n".join(l for l in lines if l)


def render(results: dict, bicubic: dict, manifest: dict, pairs: dict, bicubic_imgs: dict) -> None:
    os.makedirs(FIG, exist_ok=True)
    groups = {}
    for n, (g, *_rest) in study.STUDY.items():
        groups.setdefault(g, []).append(n)
    blocks = {}
    for g, names in groups.items():
        blocks[f"TABLE:{g}"] = group_table(results, names, bicubic)
        plot_curves(results, bicubic, names, os.path.join(FIG, f"curves_{g}.png"), f"{g}: held-out PSNR vs iteration")
        plot_bars(results, bicubic, names, os.path.join(FIG, f"bars_{g}.png"), f"{g}: gain over bicubic")
    everything = list(study.STUDY)
    plot_gap(results, [n for n in everything if n != "edsr" and not n.startswith("abl_")],
             os.path.join(FIG, "gap.png"))
    long_names = list(study.LONG)
    blocks["TABLE:long"] = group_table(results, long_names, bicubic)
    plot_curves(results, bicubic, long_names, os.path.join(FIG, "curves_long.png"),
                f"long schedule ({study.LONG_ITERS} iterations, GPU): held-out PSNR vs iteration")
    plot_gap(results, [n for n in long_names if n not in study.LONG_TWIN.values()],
             os.path.join(FIG, "gap_long.png"),
             f"long schedule: EDSR twin minus AdderEDSR vs iteration (all 6 held-out images)")
    blocks["TABLE:photos"] = photo_table(results, everything + long_names, bicubic)
    notes = []
    for n in long_names:
        c = results.get(n, {}).get("cost", {})
        if c and c.get("iters", 0) < c.get("planned_iters", 0):
            notes.append(f"- `{n}` stopped at iteration {c['iters']} of {c['planned_iters']} when the lent GPU's time "
                         f"ran out: its score is a mid-schedule one (the cosine learning rate was still at "
                         f"{50 * (1 + math.cos(math.pi * c['iters'] / c['planned_iters'])):.0f} % of its peak), "
                         f"not a finished run's.")
    blocks["LONG_NOTES"] = "\n".join(notes)
    shown = [n for n in study.SHOWN if n in results]
    comparison_pngs(results, pairs, shown, bicubic_imgs)
    held = [p for p in manifest["photos"] if p["split"] == "heldout"]
    train_n = len(manifest["photos"]) - len(held)
    blocks["DATASET"] = (
        f"{train_n} training photos ({manifest['train_sub_images']} sub-images of {manifest['crop']}², step "
        f"{manifest['step']}) and {len(held)} held-out whole photos from {len(manifest['sources'])} sources:\n\n"
        + _fmt_table([[p["source"], p["photo"], f"{p['original'][0]}x{p['original'][1]}", f"/{p['reduce']}",
                       f"{p['size'][0]}x{p['size'][1]}"] for p in held],
                     ["source", "held-out photo", "original", "reduced", "HR used"]))
    cpu = [n for n in study.STUDY if "cost" in results.get(n, {})]
    total = sum(results[n]["cost"]["seconds"] for n in cpu)
    blocks["COST"] = (f"{len(cpu)} runs trained, {total / 3600:.1f} h of training in all on this 2-core CPU "
                      f"(per-run minutes in the tables; two runs at a time, one thread each).")
    gpu = [n for n in study.LONG if "cost" in results.get(n, {})]
    blocks["LONG_COST"] = (
        f"{len(gpu)} runs, {sum(results[n]['cost']['seconds'] for n in gpu) / 60:.0f} min of training in all on "
        f"{', '.join(sorted({results[n]['cost'].get('device', '?') for n in gpu}))}, several runs at a time"
        if gpu else "(not run yet)")
    for a in results:
        if "summary" in results[a]:
            blocks[f"PSNR:{a}"] = f"{results[a]['summary']['psnr']:.2f}"
    blocks["PSNR:bicubic"] = f"{bicubic['summary']['psnr']:.2f}"
    blocks["ADDER_SCALE"] = adder_scale_table(study.SCALE_RUNS, pairs)
    blocks["TARGETS"] = targets_block(results, bicubic)

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key.startswith("GAP:"):
            a, b = key[4:].split(",")
            ra = bicubic if a == "bicubic" else results.get(a)
            rb = bicubic if b == "bicubic" else results.get(b)
            if ra and rb and "summary" in ra and "summary" in rb:
                return f"{ra['summary']['psnr'] - rb['summary']['psnr']:+.2f} dB"
            return "(not run yet)"
        return blocks.get(key, "(not run yet)")

    with open(TEMPLATE, encoding="utf-8") as f:
        text = re.sub(r"\{\{([^}]+)\}\}", sub, f.read())
    with open(os.path.join(DOCS, "quality.md"), "w", encoding="utf-8") as f:
        f.write("<!-- generated by benchmarks/quality/run_study.py from quality_template.md; do not edit -->\n"
                + text)
    _write_json(os.path.join(FIG, "results.json"), {"bicubic": bicubic, "runs": results,
                                                    "schedule": {"iters": study.ITERS, "lr": study.LR}})
    print(f"wrote {os.path.join(DOCS, 'quality.md')}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", default=None, help="train/score only these configurations")
    p.add_argument("--jobs", type=int, default=1, help="trainings at once (default 1)")
    p.add_argument("--threads", type=int, default=None, help="threads per training (default: cores / jobs)")
    p.add_argument("--report-only", action="store_true", help="no training: score finished runs, write the report")
    p.add_argument("--import-long", metavar="DIR", default=None,
                   help="file the long-schedule runs that run_long_gpu.sh trained (DIR holds study_long*/), "
                        "then score and report without training")
    p.add_argument("--device", default="GPU", help="the device the imported runs trained on (for the report)")
    args = p.parse_args(argv)
    if args.import_long:
        if not os.path.isdir(args.import_long):
            p.error(f"--import-long: not a folder: {args.import_long}")
        if not import_long(args.import_long, args.device):
            p.error(f"--import-long: no run of {', '.join(study.LONG)} (study_NAME/ with train_*.log and "
                    f"models/net_g_*.pth) in {args.import_long}")
        args.report_only = True
    names = args.only or list(study.STUDY)
    unknown = [n for n in names if n not in study.STUDY]
    if unknown:
        p.error(f"unknown configuration(s): {', '.join(unknown)}; known: {', '.join(study.STUDY)}")
    missing = [n for n in names if not os.path.isfile(option_path(n))]
    if missing:
        p.error(f"option file(s) missing: {', '.join(map(option_path, missing))}; "
                "run benchmarks/quality/make_study_options.py")
    data = os.path.join(ROOT, study.DATA)
    from addersr_plugin.data.photos import load_manifest, photo_paths

    manifest = load_manifest(data)
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
    if not args.report_only:
        # a student whose teacher is trained in this same invocation goes after it
        order = sorted(names, key=lambda n: study.DEPENDS.get(n) in names)
        failures = []
        with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
            futures = {}
            for n in order:
                dep = study.DEPENDS.get(n)
                if dep in futures:
                    futures[dep].result()  # a student waits for its teacher
                futures[n] = pool.submit(train, n, threads)
            for n, fut in futures.items():
                try:
                    fut.result()
                except Exception as exc:  # one failed run must not lose the others' results
                    failures.append(f"{n}: {exc}")
        for f in failures:
            print(f"FAILED {f}", file=sys.stderr)

    paths = photo_paths(data, study.SCALE)
    from addersr_plugin.scoring import bicubic_upscale, read_pairs

    pairs = read_pairs(paths["val_gt"], paths["val_lq"])
    bicubic_imgs = {k: bicubic_upscale(lq, study.SCALE) for k, (gt, lq) in pairs.items()}
    bic = bicubic_scores(pairs, study.SCALE)
    bicubic = {"photos": bic, "summary": summarise(bic, manifest)}
    results = _read_json(os.path.join(FIG, "results.json"), {}).get("runs", {})
    for n in list(study.STUDY) + list(study.LONG):
        restore(n)
        done = _read_json(os.path.join(run_dir(n), "study_done.json"))
        if not done:
            continue
        if not os.path.isfile(os.path.join(archive_dir(n), "study_done.json")):
            archive(n)
        print(f"scoring {n} ...", flush=True)
        photos = score_run(n, pairs, os.path.join(run_dir(n), "study_outputs"))
        results[n] = {"photos": photos, "summary": summarise(photos, manifest), "cost": done,
                      "curve": val_curve(n), "option_file": os.path.relpath(option_path(n), ROOT)}
        s = results[n]["summary"]
        print(f"  {n}: {s['psnr']:.2f} dB (bicubic {bicubic['summary']['psnr']:.2f}), "
              f"trained in {done['seconds'] / 60:.1f} min", flush=True)
    results = {n: results[n] for n in list(study.STUDY) + list(study.LONG) if n in results}
    render(results, bicubic, manifest, pairs, bicubic_imgs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
