"""Figures of a study as PNG files, in the paper's layouts.

Confusion matrices of hard dice (train rows, test columns, mean ± std over fold models,
datasets ordered by difficulty), rescaling bars (train vs test), noise curves with the
in-distribution reference lines, FP/FN shares, and dataset statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from temshift.studies.results import cell_scores, extra_rows, matrix


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _labels(plan, experiment: str | None = None) -> dict:
    out = {n: (d.label or n) for n, d in plan.spec.datasets.items()}
    if experiment is not None:
        out.update(plan.spec.experiments[experiment].labels)
    return out


def _save(fig, path: Path) -> Path:
    from temshift.io.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)
    return path


def parameter_order(plan, names: list[str]) -> list[str] | None:
    """`names` sorted by the one numeric condition that varies among them (e.g. dose), else None.

    A matrix over a physical parameter reads in its order (80 / 423 / 884 e/A2), not by
    difficulty; with several or no varying numeric conditions there is no such order.
    """
    values: dict[str, dict[str, float]] = {}
    for n in names:
        d = plan.spec.datasets.get(n)
        if d is None:
            return None
        cond = {}
        for key, v in d.query().items():
            v = v[0] if isinstance(v, tuple) else v
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                cond[key] = float(v)
        values[n] = cond
    keys = set.intersection(*(set(c) for c in values.values())) if values else set()
    varying = [k for k in sorted(keys) if len({values[n][k] for n in names}) > 1]
    if len(varying) != 1:
        return None
    return sorted(names, key=lambda n: values[n][varying[0]])


def draw_matrix(
    mean: pd.DataFrame,
    std: pd.DataFrame,
    labels: dict,
    title: str,
    path: Path,
    vmax: float | None = 1.0,
    fmt: str = "{:.2f}",
    n_extra: int = 0,
) -> Path:
    """Heatmap with "mean ± std" in each cell; rows = training set, columns = test set.

    The last `n_extra` rows are extra (shipped) models, set off by a white line.
    """
    plt = _plt()
    n_r, n_c = mean.shape
    fig, ax = plt.subplots(figsize=(1.5 + 1.45 * n_c, 1.0 + 1.05 * n_r))
    values = mean.to_numpy(float)
    im = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=vmax if vmax else np.nanmax(values))
    for i in range(n_r):
        for j in range(n_c):
            v, s = values[i, j], std.to_numpy(float)[i, j]
            if np.isfinite(v):
                text = fmt.format(v) + ("\n± " + fmt.format(s) if np.isfinite(s) else "")
                light = v < 0.6 * (vmax or np.nanmax(values))
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if light else "black",
                    fontweight="bold" if mean.index[i] == mean.columns[j] else "normal",
                )
    if n_extra:
        ax.axhline(n_r - n_extra - 0.5, color="white", linewidth=3)
    ax.set_xticks(range(n_c), [labels.get(c, c) for c in mean.columns], rotation=30, ha="right")
    ax.set_yticks(range(n_r), [labels.get(r, r) for r in mean.index])
    ax.set_xlabel("test dataset")
    ax.set_ylabel("training dataset")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="hard dice")
    return _save(fig, path)


def draw_rescaling(results: pd.DataFrame, experiment: str, labels: dict, title: str, path: Path) -> Path:
    """Bars of mean hard dice on the training split and the test block, error bars = std over folds."""
    plt = _plt()
    df = results[results["experiment"] == experiment]
    names = list(dict.fromkeys(df["train_dataset"]))
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(names), 3.6))
    x = np.arange(len(names))
    for k, (split, color) in enumerate((("train", "#4c72b0"), ("test", "#dd8452"))):
        sub = df[(df["split"] == split) & (df["train_dataset"] == df["test_dataset"])]
        g = sub.groupby("train_dataset")["hard_dice"]
        m = [g.mean().get(n, np.nan) for n in names]
        s = [g.std(ddof=0).get(n, np.nan) for n in names]
        ax.bar(x + (k - 0.5) * 0.38, m, 0.38, yerr=s, capsize=4, color=color, label=f"{split} set")
    ax.set_xticks(x, [labels.get(n, n) for n in names])
    ax.set_ylabel("hard dice")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right")
    ax.set_title(title)
    return _save(fig, path)


def draw_noise(results: pd.DataFrame, plan, experiment: str, labels: dict, title: str, path: Path) -> Path:
    """Hard dice vs noise scale per test dataset, with dotted in-distribution reference lines."""
    plt = _plt()
    exp = plan.spec.experiments[experiment]
    param = exp.grid.param if exp.grid is not None else "noise_rho"
    df = results[(results["experiment"] == experiment) & (results["split"] == "test")]
    curve = df[df["variant"] != "reference"].copy()
    curve["x"] = curve[param].astype(float).fillna(0.0) if param in curve else 0.0
    ref = df[(df["variant"] == "reference") & df["same_dataset"]]
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    colors = plt.cm.viridis(np.linspace(0.1, 0.8, max(1, len(exp.test_sets))))
    for color, test in zip(colors, exp.test_sets):
        g = curve[curve["test_dataset"] == test].groupby("x")["hard_dice"]
        m, s = g.mean(), g.std(ddof=0).fillna(0)
        ax.errorbar(
            m.index, m.values, yerr=s.values, marker="o", ms=4, capsize=3, color=color, label=labels.get(test, test)
        )
        r = ref[ref["test_dataset"] == test]["hard_dice"]
        if len(r):
            ax.axhline(r.mean(), ls=":", color=color, lw=1.5)
    ax.set_xlabel({"noise_rho": "ρ", "noise_rho_max": "ρ_max"}.get(param, param))
    ax.set_ylabel("hard dice")
    ax.set_ylim(0, 1.02)
    ax.legend(title="tested on", fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def draw_fpfn(results: pd.DataFrame, experiment: str, labels: dict, order: list[str], title: str, path: Path) -> Path:
    """Stacked bars of the FP and FN shares of the errors, per (training, test) pair."""
    plt = _plt()
    share = (
        cell_scores(results, experiment, "overseg_share")
        .groupby(["train_dataset", "test_dataset"])["overseg_share"]
        .mean()
    )
    pairs = [(r, c) for r in order for c in order if (r, c) in share.index]
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(pairs), 3.6))
    fp = np.array([share[p] for p in pairs])
    x = np.arange(len(pairs))
    ax.bar(x, fp, color="#c44e52", label="false positives (over-segmentation)")
    ax.bar(x, 1 - fp, bottom=fp, color="#55a868", label="false negatives (under-segmentation)")
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xticks(
        x, [f"{labels.get(r, r)} → {labels.get(c, c)}" for r, c in pairs], rotation=40, ha="right", fontsize=8
    )
    ax.set_ylabel("share of errors")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title)
    return _save(fig, path)


def draw_dataset_stats(datasets: pd.DataFrame, labels: dict, path: Path) -> Path:
    """Histogram median, image roughness and particle contrast per dataset."""
    plt = _plt()
    cols = [c for c in ("histogram_median", "roughness", "particle_contrast") if c in datasets]
    fig, axes = plt.subplots(1, max(1, len(cols)), figsize=(4.2 * max(1, len(cols)), 0.6 + 0.32 * len(datasets)))
    axes = np.atleast_1d(axes)
    names = [labels.get(n, n) + ("" if labels.get(n, n) == n else f" ({n})") for n in datasets["dataset"]]
    for ax, col in zip(axes, cols):
        ax.barh(np.arange(len(datasets)), datasets[col].astype(float), color="#4c72b0")
        ax.set_yticks(np.arange(len(datasets)), names if ax is axes[0] else [""] * len(names), fontsize=7)
        ax.set_title(col.replace("_", " "))
        ax.invert_yaxis()
    return _save(fig, path)


def draw_noise_stats(
    plan, experiment: str, datasets: pd.DataFrame, labels: dict, path: Path, max_patches: int = 32
) -> Path | None:
    """Fig S7: statistics of the noise-augmented training set vs rho, real datasets as lines."""
    from temshift.datasets import load_dataset
    from temshift.studies.stats import patch_statistics, with_noise

    exp = plan.spec.experiments[experiment]
    train = exp.train[0]
    h5 = plan.tasks[plan.datasets[train]].out_dir / "dataset.h5"
    if not h5.is_file() or exp.grid is None:
        return None
    ds = load_dataset(h5)
    images, masks = ds.images[:max_patches], ds.labels[:max_patches]
    rhos = sorted(set(exp.grid.values))
    stats = pd.DataFrame([patch_statistics(with_noise(images, r, seed=i), masks) for i, r in enumerate(rhos)])
    plt = _plt()
    cols = ("histogram_median", "roughness", "particle_contrast")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    colors = plt.cm.viridis(np.linspace(0.1, 0.8, max(1, len(exp.test_sets))))
    for ax, col in zip(axes, cols):
        ax.plot(rhos, stats[col], "o-", color="k", ms=3, label=f"{labels.get(train, train)} + noise")
        for color, test in zip(colors, exp.test_sets):
            row = datasets[datasets["dataset"] == test]
            if len(row) and col in row:
                ax.axhline(float(row[col].iloc[0]), ls=":", color=color, label=labels.get(test, test))
        ax.set_xlabel("ρ")
        ax.set_title(col.replace("_", " "))
    axes[-1].legend(fontsize=7)
    fig.suptitle(f"{exp.title or experiment}: augmented training data vs real datasets")
    return _save(fig, path)


def draw_all(plan, results: pd.DataFrame, datasets: pd.DataFrame, out_dir) -> dict:
    """Every figure of the study; returns name -> PNG path (in drawing order)."""
    out_dir = Path(out_dir)
    figs = {}
    present = set(results["experiment"])
    for name, exp in plan.spec.experiments.items():
        if name not in present:
            continue
        labels = _labels(plan, name)
        title = exp.title or name
        if exp.kind == "matrix":
            names = list(dict.fromkeys(exp.train + exp.test_sets))
            order = names if exp.order == "spec" else parameter_order(plan, names)
            mean, std = matrix(results, name, order=order, extra=True)
            extras = extra_rows(results, name)
            figs[f"matrix_{name}"] = draw_matrix(
                mean, std, labels, title, out_dir / f"matrix_{name}.png", n_extra=len(extras)
            )
            if exp.normalize_by_diagonal:
                diag = pd.Series({c: mean.loc[c, c] for c in mean.columns if c in mean.index})
                figs[f"matrix_{name}_normalized"] = draw_matrix(
                    mean / diag,
                    std / diag,
                    labels,
                    f"{title}, / test set's in-distribution dice",
                    out_dir / f"matrix_{name}_normalized.png",
                    vmax=None,
                    n_extra=len(extras),
                )
            figs[f"fpfn_{name}"] = draw_fpfn(
                results,
                name,
                labels,
                [r for r in mean.index if r not in extras],
                f"{title}: FP / FN shares",
                out_dir / f"fpfn_{name}.png",
            )
        elif exp.kind == "rescaling":
            figs[f"rescaling_{name}"] = draw_rescaling(results, name, labels, title, out_dir / f"rescaling_{name}.png")
        elif exp.kind == "noise":
            figs[f"noise_{name}"] = draw_noise(results, plan, name, labels, title, out_dir / f"noise_{name}.png")
            if exp.grid is not None and exp.grid.param == "noise_rho":
                p = draw_noise_stats(plan, name, datasets, labels, out_dir / f"noisestats_{name}.png")
                if p is not None:
                    figs[f"noisestats_{name}"] = p
    if len(datasets):
        figs["datasets"] = draw_dataset_stats(datasets, _labels(plan), out_dir / "datasets.png")
    return figs
