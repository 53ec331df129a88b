"""The AdderSR quality study: train every configuration, score it on held-out photos, write the report.

    bash benchmarks/quality/prepare_photos.sh              # once: datasets/photos (docs/quality.md)
    python benchmarks/quality/make_study_options.py        # options/study/*.yml
    python benchmarks/quality/run_study.py [--jobs 2] [--only NAME ...] [--report-only]

Each configuration is an option file ``options/study/NAME.yml`` trained through the installed
``basicsr train`` command (a subprocess, exactly as a user runs it) from the repository root:

* resumable: a finished run (``experiments/study_NAME/study_done.json``) is skipped; an
  interrupted one continues with ``--auto_resume`` from its last checkpoint, so the study can be
  run over several sittings, and the training seconds of all sittings are added up (runner.py);
* scored on the held-out whole photos (Y-PSNR/SSIM, border = scale; mean colour error per
  channel), with bicubic alongside; scores are cached next to the run and recomputed when the
  model is newer (study_scoring.py);
* reported: ``docs/quality.md`` is rendered from ``benchmarks/quality/quality_template.md``
  (the narrative) with every table, ``docs/quality/results.json`` holds every number, and
  ``docs/quality/*.png`` the plots (PSNR vs iteration, ablation bars) and the crops to look at
  (study_report.py).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import runner  # noqa: E402

sys.path.insert(0, runner.ROOT)  # this checkout's addersr_plugin, installed or not

import make_study_options as study  # noqa: E402
from study_report import FIG, render  # noqa: E402
from study_scoring import bicubic_scores, option_path, score_run, study_run, summarise  # noqa: E402


def _adopt_old_records(name: str, run: runner.Run) -> None:
    """Move an unfinished run's cost record and sitting logs to where runner.py keeps them
    (``experiments/study_sittings/study_NAME``): the previous runner kept them in
    ``experiments/study_sittings/NAME``, an older one the cost record inside the run folder."""
    if run.done() or os.path.isdir(run.sittings):
        return
    previous = os.path.join(os.path.dirname(run.sittings), name)
    if os.path.isdir(previous):
        shutil.move(previous, run.sittings)
    cost_path = os.path.join(run.sittings, "study_cost.json")
    if not os.path.isfile(cost_path) and os.path.isfile(os.path.join(run.dir, "study_cost.json")):
        os.makedirs(run.sittings, exist_ok=True)
        shutil.move(os.path.join(run.dir, "study_cost.json"), cost_path)


def train(name: str, threads: int) -> dict:
    """Train configuration ``name`` to completion (or resume it); returns its cost record."""
    run = study_run(name)
    _adopt_old_records(name, run)
    return runner.train(run, threads, study.ITERS)


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
        run = study_run(name)
        os.makedirs(os.path.dirname(run.model), exist_ok=True)
        for log in logs:
            shutil.copyfile(log, os.path.join(run.dir, os.path.basename(log)))
        shutil.copyfile(model, run.model)
        iters = [it for it, _ in runner.val_curve(run)]
        done = {"seconds": sum(_log_seconds(l) for l in logs), "sittings": len(logs), "iters": reached,
                "planned_iters": study.LONG_ITERS, "device": device,
                "finished": time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(logs[-1])))}
        runner.write_json(os.path.join(run.dir, "study_done.json"), done)
        runner.archive(run)
        print(f"[{name}] imported: {reached}/{study.LONG_ITERS} iterations, {done['seconds'] / 60:.1f} min on "
              f"{device}, validation at {iters[:1]}..{iters[-1:]}", flush=True)
        done_names.append(name)
    return done_names


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
    data = os.path.join(runner.ROOT, study.DATA)
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
    results = runner.read_json(os.path.join(FIG, "results.json"), {}).get("runs", {})
    for n in list(study.STUDY) + list(study.LONG):
        run = study_run(n)
        runner.restore(run)
        done = run.done()
        if not done:
            continue
        if not os.path.isfile(os.path.join(run.archive, "study_done.json")):
            runner.archive(run)
        print(f"scoring {n} ...", flush=True)
        photos = score_run(n, pairs, os.path.join(run.dir, "study_outputs"))
        results[n] = {"photos": photos, "summary": summarise(photos, manifest), "cost": done,
                      "curve": runner.val_curve(run), "option_file": os.path.relpath(run.option_file, runner.ROOT)}
        s = results[n]["summary"]
        print(f"  {n}: {s['psnr']:.2f} dB (bicubic {bicubic['summary']['psnr']:.2f}), "
              f"trained in {done['seconds'] / 60:.1f} min", flush=True)
    results = {n: results[n] for n in list(study.STUDY) + list(study.LONG) if n in results}
    render(results, bicubic, manifest, pairs, bicubic_imgs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
