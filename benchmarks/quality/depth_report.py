"""The depth-and-scale study's scores and report: ``python benchmarks/quality/depth_study.py report``.

Every finished run (trained here, or restored from its archive) is scored on the validation
photos and on the test photos of ``datasets/photos_split``; bicubic alongside. Numbers go to
``docs/quality_depth/results.json`` (one file, rewritten from the runs each time: every number in
it is recomputed from archived models and logs) and the report ``docs/quality_depth.md`` is
rendered from ``benchmarks/quality/depth_template.md``, with the plots in ``docs/quality_depth/``.

Means over seeds are "mean ± sample std (n seeds)"; a gap between two configurations is paired
by seed (the adder run and its EDSR twin of the same seed, scale and size).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict

import numpy as np

import depth_study as study
import runner
from study_report import fmt_table

DOCS = os.path.join(runner.ROOT, "docs")
FIG = os.path.join(DOCS, "quality_depth")
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "depth_template.md")
# Rendered gradients, not photographs: scored and shown, but left out of the photo means (their
# bicubic PSNR of ~56 dB would outweigh every photo).
NOT_PHOTOS = ("lomiri-wallpapers-20_04_Fossa_by_Jasper_Roks",)
SPLITS = {"val": ("heldout", "validation"), "test": ("test", "test")}


def pairs_of(split: str, scale: int) -> dict:
    from addersr_plugin.data.photos import photo_paths
    from addersr_plugin.scoring import read_pairs

    paths = photo_paths(os.path.join(runner.ROOT, study.DATA), scale)
    key = "val" if split == "val" else "test"
    return read_pairs(paths[f"{key}_gt"], paths[f"{key}_lq"])


def photo_mean(per_photo: dict) -> float:
    return float(np.mean([v["psnr"] for k, v in per_photo.items() if k not in NOT_PHOTOS]))


def mean_std(values: list) -> tuple:
    values = [v for v in values if v is not None]
    if not values:
        return None, None, 0
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None), len(values)


def fmt(m, s, n, sign=False) -> str:
    if m is None:
        return ""
    text = f"{m:+.2f}" if sign else f"{m:.2f}"
    return text + (f" ± {s:.2f}" if s is not None else "") + f" ({n})"


def collect(names: list[str]) -> dict:
    """``{run: {...}}`` for every finished run of ``names``: scores per split, curve, cost, fields."""
    out = {}
    for name in names:
        run = study.run_of(name)
        runner.restore(run)
        done = run.done()
        if not done:
            continue
        fields = study.parse(name)
        entry = {"fields": fields, "cost": done, "curve": runner.val_curve(run)}
        for split in SPLITS:
            save = os.path.join(run.dir, f"outputs_{split}") if split == "test" else None
            photos = runner.score_model(run, pairs_of(split, fields["scale"]), save, cache=f"scores_{split}.json")
            entry[split] = {"photos": photos, "psnr": photo_mean(photos),
                            "worst_colour_error": max(max(abs(c) for c in v["colour_error_bgr"])
                                                      for v in photos.values())}
        out[name] = entry
        print(f"{name}: validation {entry['val']['psnr']:.2f}, test {entry['test']['psnr']:.2f}", flush=True)
    return out


def bicubic(scales) -> dict:
    from addersr_plugin.scoring import bicubic_upscale, score

    out = {}
    for scale in scales:
        out[scale] = {}
        for split in SPLITS:
            pairs = pairs_of(split, scale)
            photos = {k: score(bicubic_upscale(lq, scale), gt, scale) for k, (gt, lq) in pairs.items()}
            out[scale][split] = {"photos": photos, "psnr": photo_mean(photos)}
    return out


CNN_VARIANTS = study.CNN_VARIANTS


def twin(name: str) -> str:
    """The CNN run of the same scale, size and seed (``depth_study.twin_variant``)."""
    f = study.parse(name)
    cnn = study.twin_variant(f["variant"])
    return study.run_name(f["scale"], cnn, f["feat"], f["block"], f["seed"])


def groups(results: dict) -> dict:
    """``{(scale, feat, block, variant): [run names]}`` (the seeds of one configuration)."""
    g = defaultdict(list)
    for name, r in results.items():
        f = r["fields"]
        g[(f["scale"], f["feat"], f["block"], f["variant"])].append(name)
    return g


def summary(results: dict, bic: dict) -> dict:
    """Per configuration: mean ± std over seeds of each split's PSNR, its gain over bicubic and its
    gap to the EDSR twin (paired by seed), the worst photo's gain over bicubic."""
    out = {}
    for key, names in sorted(groups(results).items()):
        scale = key[0]
        row = {"runs": sorted(names)}
        for split in SPLITS:
            ps = [results[n][split]["psnr"] for n in names]
            gaps = [results[n][split]["psnr"] - results[twin(n)][split]["psnr"] for n in names if twin(n) in results]
            worst = [min(results[n][split]["photos"][p]["psnr"] - bic[scale][split]["photos"][p]["psnr"]
                         for p in results[n][split]["photos"] if p not in NOT_PHOTOS) for n in names]
            row[split] = {"psnr": mean_std(ps), "vs_bicubic": mean_std([p - bic[scale][split]["psnr"] for p in ps]),
                          "vs_edsr": mean_std(gaps) if key[3] not in CNN_VARIANTS else (None, None, 0),
                          "worst_photo_vs_bicubic": min(worst)}
        curves = [results[n]["curve"] for n in names]
        row["collapse_db"] = max((max(0.0, max(p for _, p in c[:i + 1]) - c[i][1]) for c in curves if c
                                  for i in range(len(c))), default=None)
        out["/".join(map(str, key))] = row
    return out


def table(summ: dict, bic: dict, split: str) -> str:
    head = ["scale", "size", "variant", f"{SPLITS[split][1]} Y-PSNR", "vs bicubic", "vs CNN twin",
            "worst photo vs bicubic", "largest drop below running best (val)"]
    rows = []
    last = None
    for key, row in summ.items():
        scale, feat, block, variant = key.split("/")
        if (scale, feat, block) != last:
            rows.append([f"×{scale}", f"{feat}/{block}", "bicubic", f"{bic[int(scale)][split]['psnr']:.2f}",
                         "", "", "", ""])
            last = (scale, feat, block)
        s = row[split]
        rows.append([f"×{scale}", f"{feat}/{block}", f"`{variant}`", fmt(*s["psnr"]), fmt(*s["vs_bicubic"], sign=True),
                     fmt(*s["vs_edsr"], sign=True), f"{s['worst_photo_vs_bicubic']:+.2f}",
                     f"{row['collapse_db']:.2f}" if row["collapse_db"] is not None else ""])
    return fmt_table(rows, head)


def photo_table(results: dict, bic: dict, split: str, scale: int) -> str:
    names = sorted(n for n, r in results.items() if r["fields"]["scale"] == scale)
    photos = list(bic[scale][split]["photos"])
    head = ["run"] + [p.replace("lomiri-wallpapers-", "").split("_by_")[0] for p in photos]
    rows = [["bicubic"] + [f"{bic[scale][split]['photos'][p]['psnr']:.2f}" for p in photos]]
    rows += [[n.replace("depth_", "")] + [f"{results[n][split]['photos'][p]['psnr']:.2f}" for p in photos]
             for n in names]
    return fmt_table(rows, head)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mean_curves(results: dict, names: list[str]) -> dict:
    """``{variant: (iterations, mean, low, high, seeds)}``: each configuration's validation curve, the
    mean over its seeds at the iterations every seed reached, with the seeds' range."""
    by_variant = defaultdict(list)
    for n in names:
        by_variant[results[n]["fields"]["variant"]].append(dict(results[n]["curve"]))
    out = {}
    for variant, curves in sorted(by_variant.items()):
        its = sorted(set.intersection(*(set(c) for c in curves)))
        if its:
            ps = np.array([[c[i] for i in its] for c in curves])
            out[variant] = (its, ps.mean(0), ps.min(0), ps.max(0), len(curves))
    return out


def plot_curves(results: dict, block: int, path: str, long_runs: bool = False) -> bool:
    """Validation curves of the ``block``-block runs, one line per configuration (mean over seeds,
    the seeds' range shaded), a panel per scale. ``long_runs``: the runs longer than the study's
    schedule (the shipped rule's), which get their own figure; otherwise the others."""
    have = sorted(n for n, r in results.items() if r["fields"]["block"] == block and r["curve"]
                  and (r["cost"]["iters"] > study.ITERS) == long_runs)
    if not have:
        return False
    plt = _plt()
    scales = sorted({results[n]["fields"]["scale"] for n in have})
    fig, axes = plt.subplots(1, len(scales), figsize=(7.5 * len(scales), 4.6), squeeze=False)
    colours = plt.get_cmap("tab20").colors
    for ax, scale in zip(axes[0], scales):
        curves = mean_curves(results, [n for n in have if results[n]["fields"]["scale"] == scale])
        for k, (variant, (its, mean, low, high, seeds)) in enumerate(curves.items()):
            colour = colours[k % len(colours)]
            style = "--" if variant in CNN_VARIANTS else "-"  # CNNs dashed
            ax.plot(its, mean, style, marker="o", ms=3, color=colour, label=f"{variant} ({seeds} seed{'s' * (seeds > 1)})")
            if seeds > 1:
                ax.fill_between(its, low, high, color=colour, alpha=0.2)
        finals = [m[-1] for _, m, _, _, _ in curves.values()]
        ax.set_ylim(min(finals) - 1.0, max(finals) + 0.15)  # the end of training, not the first steps
        what = f"runs longer than {study.ITERS} iterations" if long_runs else f"{study.ITERS} iterations"
        runs = [results[n]["fields"] for n in have if results[n]["fields"]["scale"] == scale]
        feats = "/".join(str(f) for f in sorted({r["feat"] for r in runs}))
        vdsr = all(study.VARIANTS[r["variant"]][1]["type"] in study.VDSR_TYPES for r in runs)
        ax.set_title(f"×{scale}, {feats} features, {block} {'layers' if vdsr else 'blocks'}, {what}: "
                     "validation Y-PSNR", fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("dB (mean over seeds; range shaded)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_gap_vs_depth(summ: dict, split: str, path: str) -> bool:
    points = defaultdict(list)  # (scale, variant) -> [(block, gap, std)]
    for key, row in summ.items():
        scale, _feat, block, variant = key.split("/")
        m, s, _ = row[split]["vs_edsr"]
        if m is not None:
            points[(int(scale), variant)].append((int(block), -m, s or 0.0))
    if not points:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (scale, variant), pts in sorted(points.items()):
        pts.sort()
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3,
                    label=f"×{scale} {variant}")
    ax.axhline(0.4, color="grey", ls=":", label="0.4 dB")
    ax.axhline(0, color="grey")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("residual blocks (32 features)")
    ax.set_ylabel(f"EDSR minus AdderEDSR, {SPLITS[split][1]} Y-PSNR (dB)")
    ax.set_title("gap to the CNN twin vs depth (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def comparison_pngs(results: dict, scale: int, block: int) -> list[str]:
    """docs/quality_depth/compare_x<scale>_<photo>.png: bicubic | seed-10 runs of one size | HR."""
    import cv2

    from addersr_plugin.scoring import bicubic_upscale, detail_centre, side_by_side

    names = sorted(n for n, r in results.items() if r["fields"]["scale"] == scale
                   and r["fields"]["block"] == block and r["fields"]["seed"] == study.SEEDS[0])
    if not names:
        return []
    written = []
    for key, (gt, lq) in pairs_of("test", scale).items():
        panels = [("bicubic", bicubic_upscale(lq, scale))]
        panels += [(results[n]["fields"]["variant"], cv2.imread(os.path.join(study.run_of(n).dir, "outputs_test", f"{key}.png")))
                   for n in names]
        panels.append(("HR", gt))
        out = os.path.join(FIG, f"compare_x{scale}_{block}b_{key.split('_by_')[0]}.png")
        cv2.imwrite(out, side_by_side(panels, box=128, centre=detail_centre(gt, 128)), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        written.append(os.path.relpath(out, DOCS))
    return written


def findings(summ: dict) -> str:
    """The comparisons the study is about, from the summary (each with its seed count)."""
    def get(scale, block, variant, split, what="psnr"):
        row = summ.get(f"{scale}/32/{block}/{variant}")
        return row[split][what] if row else (None, None, 0)

    lines = []
    for scale in sorted({int(k.split("/")[0]) for k in summ}):
        for split in ("val", "test"):
            label = f"×{scale}, {SPLITS[split][1]}"
            a, b = get(scale, 16, "ours", split), get(scale, 16, "ours_ss", split)
            if a[0] is not None and b[0] is not None:
                lines.append(f"- {label}, 16 blocks: without the second self-shortcut {a[0] - b[0]:+.2f} dB over "
                             f"with it ({min(a[2], b[2])} seed(s))")
            # Does depth help? Every adder variant trained at both 4 and 16 blocks, against EDSR's gain.
            e16, e4 = get(scale, 16, "edsr", split), get(scale, 4, "edsr", split)
            edsr_gain = f"{e16[0] - e4[0]:+.2f} dB" if e16[0] is not None and e4[0] is not None else "not run"
            for v in sorted({k.split("/")[3] for k in summ}):
                if v in CNN_VARIANTS:
                    continue
                a, b = get(scale, 16, v, split), get(scale, 4, v, split)
                if a[0] is not None and b[0] is not None:
                    lines.append(f"- {label}: `{v}` at 16 blocks {a[0] - b[0]:+.2f} dB over 4 blocks "
                                 f"({a[2]} / {b[2]} seed(s)); `edsr` {edsr_gain}")
            adder_variants = sorted({k.split("/")[3] for k in summ if k.split("/")[3] not in CNN_VARIANTS
                                     and not k.split("/")[3].startswith("avdsr")})
            for block in (4, 16):
                for v in adder_variants:
                    gap = get(scale, block, v, split, "vs_edsr")
                    if gap[0] is not None:
                        lines.append(f"- {label}, {block} blocks: `{v}` {gap[0]:+.2f} dB vs its EDSR twin "
                                     f"({gap[2]} seed(s))")
            # Phase 3 (one change each to `ours`) against `ours` of the same size and seeds.
            for key in sorted(summ):
                s, feat, block, v = key.split("/")
                if int(s) != scale or v in ("ours", "ours_ss", "edsr") or v in CNN_VARIANTS or not v.startswith("ours"):
                    continue
                base = summ.get(f"{s}/{feat}/{block}/ours")
                if base:
                    a, b = summ[key][split]["psnr"], base[split]["psnr"]
                    lines.append(f"- {label}, {feat}/{block}: `{v}` {a[0] - b[0]:+.2f} dB vs `ours` "
                                 f"({min(a[2], b[2])} seed(s))")
            # The VDSR family against its CNN twin.
            for key in sorted(summ):
                s, feat, block, v = key.split("/")
                if int(s) == scale and v.startswith("avdsr"):
                    gap = summ[key][split]["vs_edsr"]
                    if gap[0] is not None:
                        lines.append(f"- {label}, VDSR {feat}/{block}: `{v}` {gap[0]:+.2f} dB vs CNN VDSR "
                                     f"({gap[2]} seed(s))")
    return "\n".join(lines) or "(not run yet)"


# AdderVDSR (power activation on, adder weights 200x) under each training rule the study ran it
# with, and what the rule is; its CNN twin under the same rule is the study's TWIN/VDSR_TWIN.
VDSR_RULES = (
    ("avdsr_pow_m200", "the study's: Adam 2e-3, cosine to 2e-5, 2000 iterations, clipping off"),
    ("avdsr_pow_long_m200", "the study's over 4500 iterations, default guards on"),
    ("avdsr_pow_ship_m200", "the AdderVDSR files' before: Adam 1e-4, halved at 2/3, 6000 iterations, default guards on"),
)


def vdsr_rules(summ: dict, scale: int = 2, size: str = "16/20") -> str:
    """A table of AdderVDSR against its CNN twin under each rule of :data:`VDSR_RULES` that ran."""
    head = ["rule", "AdderVDSR val", "AdderVDSR test", "CNN twin", "twin val", "twin test", "test gap",
            "largest drop (val)"]
    rows = []
    for variant, rule in VDSR_RULES:
        twin = study.twin_variant(variant)
        row, twin_row = summ.get(f"{scale}/{size}/{variant}"), summ.get(f"{scale}/{size}/{twin}")
        if not row or not twin_row:
            continue
        rows.append([f"`{variant}`: {rule}", fmt(*row["val"]["psnr"]), fmt(*row["test"]["psnr"]),
                     f"`{twin}`", fmt(*twin_row["val"]["psnr"]), fmt(*twin_row["test"]["psnr"]),
                     fmt(*row["test"]["vs_edsr"], sign=True), f"{row['collapse_db']:.2f}"])
    return fmt_table(rows, head) if rows else "(not run yet)"


def vdsr_probe_blocks(path: str = os.path.join(FIG, "vdsr_optim_probe.json")) -> dict:
    """The template's numbers from vdsr_optim_probe.py's JSON (what the narrow VDSR does under each
    optimizer); absent blocks read "(not run yet)"."""
    probe = runner.read_json(path)
    if not probe or "candidates" not in probe:
        return {}
    cands = probe["candidates"]
    out = {}
    first = next((c["first_batch"] for c in cands.values() if "first_batch" in c and not c["net"]), None)
    if first:
        out["VDSR_FRESH"] = (f"per-pixel L1 error {first['l1_fresh_net']:.3f} on the first training batch, "
                             f"against {first['l1_bicubic']:.4f} for bicubic")
    last = {n: c["trace"][-1]["last_relu_active"] for n, c in cands.items()}
    zl = {n: a for n, a in last.items() if cands[n]["net"].get("zero_init_last")}
    others = [a for n, a in last.items() if n not in zl]
    if zl and others:
        out["VDSR_ZL_ACTIVE"] = (f"{', '.join(f'{a:.0%}' for a in zl.values())} of its last hidden units active after "
                                 f"{probe['iters']} iterations, against {min(others):.0%}–{max(others):.0%} for the others")
    return out


def report(names: list[str]) -> int:
    os.makedirs(FIG, exist_ok=True)
    results = collect(names)
    if not results:
        print("no finished run to report yet")
        return 1
    bic = bicubic(sorted({r["fields"]["scale"] for r in results.values()}))
    summ = summary(results, bic)
    blocks = {"TABLE:val": table(summ, bic, "val"), "TABLE:test": table(summ, bic, "test"),
              "FINDINGS": findings(summ), "VDSR_RULES": vdsr_rules(summ), **vdsr_probe_blocks()}
    for scale in sorted(bic):
        blocks[f"PHOTOS:test:{scale}"] = photo_table(results, bic, "test", scale)
    figures = []
    for block in sorted({r["fields"]["block"] for r in results.values()}):
        path = os.path.join(FIG, f"curves_{block}blocks.png")
        if plot_curves(results, block, path):
            figures.append(os.path.relpath(path, DOCS))
        path = os.path.join(FIG, f"curves_{block}blocks_shipped_rule.png")
        if plot_curves(results, block, path, long_runs=True):
            figures.append(os.path.relpath(path, DOCS))
    if plot_gap_vs_depth(summ, "test", os.path.join(FIG, "gap_vs_depth.png")):
        figures.append("quality_depth/gap_vs_depth.png")
    # EDSR's family at 16 blocks, VDSR's at its 20 layers.
    crops = [c for scale in sorted(bic) for block in (16, 20) for c in comparison_pngs(results, scale, block)]
    blocks["FIGURES"] = "\n".join(f"![{f}]({f})" for f in figures)
    blocks["CROPS"] = "\n".join(f"![{c}]({c})" for c in crops) or "(no 16-block or 20-layer run finished yet)"
    total = sum(r["cost"]["seconds"] for r in results.values()) / 3600
    blocks["COST"] = (f"{len(results)} runs finished, {total:.1f} h of training in all on the 2-core CPU "
                      f"(two runs at a time, one thread each).")
    pending = [n for n in names if n not in results]
    blocks["PENDING"] = ", ".join(f"`{n}`" for n in pending) if pending else "none"
    with open(TEMPLATE, encoding="utf-8") as f:
        text = re.sub(r"\{\{([^}]+)\}\}", lambda m: blocks.get(m.group(1), "(not run yet)"), f.read())
    with open(os.path.join(DOCS, "quality_depth.md"), "w", encoding="utf-8") as f:
        f.write("<!-- generated by benchmarks/quality/depth_study.py report from depth_template.md; do not edit -->\n"
                + text)
    runner.write_json(os.path.join(FIG, "results.json"), {
        "bicubic": {str(k): v for k, v in bic.items()}, "summary": summ,
        "runs": {n: {k: v for k, v in r.items()} for n, r in results.items()},
        "schedule": {"iters": study.ITERS, "lr": study.LR, "patch": study.PATCH, "batch": study.BATCH}})
    print(f"wrote {os.path.join(DOCS, 'quality_depth.md')}")
    return 0


__all__ = ["report", "collect", "summary", "NOT_PHOTOS"]
