"""The quality study's report: tables, plots, comparison crops and docs/quality.md (run_study.py's writing half).

``docs/quality.md`` is rendered from ``benchmarks/quality/quality_template.md`` (the narrative):
every ``{{KEY}}`` there is filled from the scored runs (study_scoring.py) — the tables per group,
the per-photo table, the dataset, the costs, the targets, single PSNRs and gaps.
``docs/quality/results.json`` holds every number, and ``docs/quality/*.png`` the plots (PSNR vs
iteration, ablation bars, gap curves) and the crops to look at.
"""

from __future__ import annotations

import math
import os
import re

import make_study_options as study
import runner
from study_scoring import adder_scales, study_run

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(runner.ROOT, "docs")
FIG = os.path.join(DOCS, "quality")
TEMPLATE = os.path.join(HERE, "quality_template.md")


def describe(name: str) -> str:
    """What a run changes, for the tables."""
    if name in study.LONG:
        base, size, _ = study.LONG[name]
        sized = f" at {size['num_feat']} features, {size['num_block']} blocks" if size else ""
        return f"`{base}`{sized}, {study.LONG_ITERS} iterations"
    return study.STUDY[name][1]


def fmt_table(rows: list[list[str]], head: list[str]) -> str:
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
    return fmt_table(rows, head)


def photo_table(results: dict, names: list[str], bicubic: dict) -> str:
    photos = list(bicubic["photos"])
    head = ["run"] + photos
    rows = [["bicubic"] + [f"{bicubic['photos'][p]['psnr']:.2f}" for p in photos]]
    for n in names:
        if n in results and "photos" in results[n]:
            rows.append([n] + [f"{results[n]['photos'][p]['psnr']:.2f}" for p in photos])
    return fmt_table(rows, head)


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
    have = [n for n in names if os.path.isfile(os.path.join(study_run(n).dir, "study_outputs", f"{next(iter(pairs))}.png"))]
    for key, (gt, _lq) in pairs.items():
        panels = [("bicubic", bicubic_imgs[key])]
        panels += [(n, cv2.imread(os.path.join(study_run(n).dir, "study_outputs", f"{key}.png"))) for n in have]
        panels.append(("HR", gt))
        png = side_by_side(panels, box=160, centre=detail_centre(gt, 160))
        out = os.path.join(FIG, f"compare_{key}.png")
        cv2.imwrite(out, png, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        written.append(out)
    return written


def adder_scale_table(names: list[str], pairs: dict) -> str:
    """Per adder layer: mean |input| and mean |weight| of each run's final model on one held-out photo
    (measured by study_scoring.adder_scales)."""
    key, cols = adder_scales(names, pairs)
    if not cols:
        return "(not run yet)"
    depth = max(len(v) for v in cols.values())
    rows = []
    for i in range(depth):
        row = [str(i)]
        for st in cols.values():
            row += [f"{st[i][0]:.2f}", f"{st[i][1]:.2f}"] if i < len(st) else ["", ""]
        rows.append(row)
    head = ["adder layer"] + [c for n in cols for c in (f"{n} mean abs input", f"{n} mean abs weight")]
    return f"Measured on `{key}` (LR), final models; weights start at N(0, 1), mean abs 0.80.\n\n" + \
        fmt_table(rows, head)


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
             "long schedule: EDSR twin minus AdderEDSR vs iteration (all 6 held-out images)")
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
        + fmt_table([[p["source"], p["photo"], f"{p['original'][0]}x{p['original'][1]}", f"/{p['reduce']}",
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
    runner.write_json(os.path.join(FIG, "results.json"), {"bicubic": bicubic, "runs": results,
                                                          "schedule": {"iters": study.ITERS, "lr": study.LR}})
    print(f"wrote {os.path.join(DOCS, 'quality.md')}", flush=True)
