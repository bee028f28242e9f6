"""Figure, CSV, JSON and HTML page of a realism benchmark run."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from temshift.io.atomic import atomic_path, atomic_write_text
from temshift.realism.summary import matrix_frame


def _labels(summary):
    return {t["key"]: t["label"] for t in summary["training_sets"]}


def draw_figure(summary: dict, examples: dict, out_png) -> Path:
    """Dice matrix with the real cells marked, contrast synthetic vs real, example patches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    mean, real = matrix_frame(summary)
    names = _labels(summary)
    keys = list(mean.index)
    n = len(keys)
    cols = max(3, len(examples))
    fig = plt.figure(figsize=(max(12, 2.2 * cols), 10.5))
    gs = fig.add_gridspec(2, cols, height_ratios=[2.2, 1])
    ax = fig.add_subplot(gs[0, : cols // 2 + 1])
    im = ax.imshow(mean.to_numpy(float), vmin=0, vmax=1, cmap="viridis")
    for i in range(n):
        for j in range(n):
            v, r = mean.iat[i, j], real.iat[i, j]
            text = "" if not np.isfinite(v) else f"{v:.3f}"
            if np.isfinite(r):
                text += f"\nreal {r:.3f}"
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2.5))
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="w" if np.isfinite(v) and v < 0.6 else "k")
    ax.set_xticks(range(n), [names[k] for k in keys], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(n), [names[k] for k in keys], fontsize=8)
    ax.set_xlabel("synthetic test set")
    ax.set_ylabel("released model trained on (real)")
    g = summary["gaps"]
    gap = (
        f"mean |synthetic - real| {g['mean_abs_gap']:.3f} over {g['known_cells']} cells (red)"
        if g["mean_abs_gap"] is not None
        else "no real cell known"
        if summary.get("models_evaluated", True)
        else "statistics only: no model was run"
    )
    ax.set_title(f"hard dice, mean over folds; {gap}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04)

    bx = fig.add_subplot(gs[0, cols // 2 + 1 :])
    st = summary["image_statistics"]
    x = np.arange(n)
    syn = [st.get(k, {}).get("particle_contrast", np.nan) for k in keys]
    rea = [st.get(k, {}).get("real_particle_contrast") for k in keys]
    bx.bar(x - 0.2, syn, 0.4, label="synthetic")
    bx.bar(x + 0.2, [np.nan if v is None else v for v in rea], 0.4, label="real", color="tab:red")
    bx.set_xticks(x, [names[k] for k in keys], rotation=35, ha="right", fontsize=8)
    bx.set_ylabel("particle contrast (median bg - median particle, standardized)")
    bx.legend()
    bx.set_title("particle contrast", fontsize=10)

    for i, k in enumerate(keys[:cols]):
        ex = examples.get(k)
        cx = fig.add_subplot(gs[1, i])
        cx.axis("off")
        if ex is None:
            continue
        img = ex["image"].astype(np.float32)
        lo, hi = np.percentile(img, [0.5, 99.5])
        cx.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        cx.contour(ex["label"], levels=[0.5], colors="r", linewidths=0.6)
        cx.set_title(f"synthetic {names[k]}", fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return out_png


def _table(rows, header) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _f(v, fmt="{:.3f}"):
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)


def write_html(summary: dict, png: Path | None, out_html) -> Path:
    """A short self-contained page: gaps, matrix, image and label statistics, the figure."""
    names = _labels(summary)
    g = summary["gaps"]
    parts = [
        "<html><head><meta charset='utf-8'><title>temshift realism</title><style>"
        "body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}</style></head><body>",
        f"<h1>Realism benchmark ({html.escape(summary['scale'])}, seed {summary['seed']})</h1>",
        f"<p>{html.escape(summary['protocol'])}.</p>",
    ]
    if summary.get("specimen"):
        options = ", ".join(f"{k} = {v:g}" for k, v in summary["specimen"].items())
        parts.append(f"<p><b>Specimen</b> of every frame: {html.escape(options)} (<code>--specimen</code>).</p>")
    if not summary.get("models_evaluated", True):
        parts.append("<p><b>Statistics only</b>: no released model was run (<code>--statistics-only</code>).</p>")
    if g["mean_abs_gap"] is not None:
        w = g["worst"]
        parts.append(
            f"<p><b>mean |synthetic - real| hard dice: {g['mean_abs_gap']:.3f}</b> over {g['known_cells']} "
            f"known cells; worst {html.escape(names[w['train']])} on {html.escape(names[w['test']])}: "
            f"{w['synthetic']:.3f} synthetic vs {w['real']:.3f} real; {g['easier_on_synthetic']} of "
            f"{g['known_cells']} cells easier on synthetic frames.</p>"
        )
    if png is not None:
        data = base64.b64encode(Path(png).read_bytes()).decode()
        parts.append(f"<img src='data:image/png;base64,{data}' style='max-width:100%'>")
    rows = [
        [
            names[c["train"]],
            names[c["test"]],
            f"{_f(c['hard_dice_mean'])} ± {_f(c['hard_dice_std'])}",
            _f(c["pooled_dice_mean"]),
            _f(c["overseg_share_mean"]),
            _f(c["real_hard_dice"]),
            _f(c["gap"], "{:+.3f}"),
            c["n_models"],
        ]
        for c in summary["matrix"]
    ]
    parts += [
        "<h2>Matrix</h2>",
        _table(
            rows,
            [
                "model trained on (real)",
                "synthetic test set",
                "hard dice",
                "pooled dice",
                "FP share",
                "real hard dice",
                "gap",
                "models",
            ],
        ),
    ]
    st = summary["image_statistics"]
    rows = [
        [
            names[k],
            v.get("n_patches"),
            _f(v.get("particle_contrast")),
            _f(v.get("real_particle_contrast")),
            _f(v.get("roughness_mean"), "{:.4f}"),
            _f(v.get("histogram_median")),
            _f(v.get("particle_fraction")),
        ]
        for k, v in st.items()
    ]
    parts += [
        "<h2>Image statistics</h2>",
        _table(
            rows,
            [
                "dataset",
                "patches",
                "particle contrast",
                "real contrast",
                "roughness (cycles²/px²)",
                "histogram median",
                "particle fraction",
            ],
        ),
    ]
    lab = summary["label_statistics"]
    s, r = lab["synthetic"] or {}, lab["real"]
    rows = [
        [
            "particles per frame",
            f"{_f(s.get('particles_median'), '{:g}')} ({s.get('particles_min', '-')}-{s.get('particles_max', '-')})",
            r["particles"],
        ],
        [
            "area fraction",
            f"{_f(s.get('area_fraction_median'), '{:.2%}')} ({_f(s.get('area_fraction_min'), '{:.2%}')}"
            f"-{_f(s.get('area_fraction_max'), '{:.2%}')})",
            f"{r['area_fraction']:.1%}",
        ],
        [
            "equivalent diameter, nm",
            f"median {_f(s.get('equivalent_diameter_nm_median'), '{:.1f}')} "
            f"({_f(s.get('equivalent_diameter_nm_min'), '{:.1f}')}-"
            f"{_f(s.get('equivalent_diameter_nm_max'), '{:.1f}')})",
            f"median {r['equivalent_diameter_nm_median']} ({r['equivalent_diameter_nm_min']}-"
            f"{r['equivalent_diameter_nm_max']})",
        ],
    ]
    sf = lab["synthetic_frames"]
    parts += [
        f"<h2>Labels of paper-scale frames ({s.get('frames', 0)} synthetic frames, {sf['frame_size']}², "
        f"{html.escape(sf['mode'])})</h2>",
        _table(rows, ["", "synthetic", "real hand label"]),
    ]
    parts.append(f"<p style='font-size:80%'>{html.escape(summary['reference_source'])}</p></body></html>")
    out_html = Path(out_html)
    atomic_write_text(out_html, "\n".join(parts))
    return out_html


def write_outputs(summary: dict, examples: dict, out_dir, figure: bool = True) -> dict:
    """realism.json, matrix.csv, realism.png and report.html in `out_dir`."""
    import pandas as pd

    out_dir = Path(out_dir)
    paths = {"json": out_dir / "realism.json", "csv": out_dir / "matrix.csv"}
    atomic_write_text(paths["json"], json.dumps(summary, indent=1, default=str))
    with atomic_path(paths["csv"]) as tmp:
        pd.DataFrame(summary["matrix"]).to_csv(tmp, index=False)
    drawable = summary["matrix"] or (not summary.get("models_evaluated", True) and examples)
    png = draw_figure(summary, examples, out_dir / "realism.png") if figure and drawable else None
    if png is not None:
        paths["figure"] = png
    paths["html"] = write_html(summary, png, out_dir / "report.html")
    return paths
