"""A page of example frames: raw, flat-fielded, label overlay and a zoom, per group.

One row per (material, size, dose, pixel scale) group of the repository (its first frame),
up to `max_rows` groups chosen so that every material, size, dose and pixel scale present
appears at least once when possible: the raw counts, the frame after X-ray removal and flat-field
correction (`temshift.preprocess`), the same with the label outline, and a zoom
(a 10 nm window on a particle, or the frame centre) showing the lattice fringes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PREVIEW_GROUPS = ("material", "diameter_nm", "dose_e_per_A2", "pixel_scale_nm")


def _limits(img, lo=0.5, hi=99.5):
    a, b = np.percentile(img[:: max(1, img.shape[0] // 512), :: max(1, img.shape[1] // 512)], [lo, hi])
    return float(a), float(b if b > a else a + 1)


def _zoom_window(label, pixel_scale_nm, width_nm=10.0):
    n = label.shape[0]
    w = int(min(n, max(64, round(width_nm / pixel_scale_nm))))
    ys, xs = np.nonzero(label)
    if len(ys):
        # the labelled pixel nearest the frame centre
        k = int(np.argmin((ys - n / 2) ** 2 + (xs - n / 2) ** 2))
        cy, cx = ys[k], xs[k]
    else:
        cy = cx = n // 2
    y0 = int(np.clip(cy - w // 2, 0, n - w))
    x0 = int(np.clip(cx - w // 2, 0, label.shape[1] - w))
    return slice(y0, y0 + w), slice(x0, x0 + w)


def _diverse_groups(df, max_rows: int):
    """First frame of up to `max_rows` groups, greedily covering every value of each field."""
    firsts = df.groupby(list(PREVIEW_GROUPS), sort=True).head(1)
    chosen, seen = [], {f: set() for f in PREVIEW_GROUPS}
    while len(chosen) < min(max_rows, len(firsts)):
        gains = [(sum(row[f] not in seen[f] for f in PREVIEW_GROUPS), -k)
                 for k, (idx, row) in enumerate(firsts.iterrows()) if idx not in chosen]
        best_gain, neg_k = max(gains)
        idx = firsts.index[-neg_k]
        chosen.append(idx)
        for f in PREVIEW_GROUPS:
            seen[f].add(firsts.loc[idx, f])
    return firsts.loc[sorted(chosen, key=list(firsts.index).index)]


def write_preview(repo, out_png, max_rows: int = 12, catalog=None) -> Path:
    """Write the example page of a synthetic (or real) repository.

    Parameters
    ----------
    repo : str or Path
        Repository root holding ``catalog.csv``.
    out_png : str or Path
        Output PNG.
    max_rows : int
        At most this many groups.
    catalog : Catalog, optional
        Use this catalog instead of ``repo/catalog.csv``.

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from temshift.catalog import Catalog
    from temshift.io import read_frame, read_label
    from temshift.io.atomic import atomic_path
    from temshift.preprocess import flatfield_correct, remove_xrays

    repo = Path(repo)
    cat = catalog if catalog is not None else Catalog.read(repo / "catalog.csv")
    firsts = _diverse_groups(cat.df, max_rows)
    n = len(firsts)
    fig, axes = plt.subplots(n, 4, figsize=(13, 3.3 * n + 0.4), squeeze=False)
    for ax_row, (_, row) in zip(axes, firsts.iterrows()):
        frame = read_frame(cat.frame_path(row, repo)).data
        label = read_label(cat.label_path(row, repo), shape=frame.shape)
        flat = flatfield_correct(remove_xrays(frame, 1500.0))
        step = max(1, frame.shape[0] // 1024)
        ax_row[0].imshow(frame[::step, ::step], cmap="gray", vmin=_limits(frame)[0], vmax=_limits(frame)[1])
        ax_row[1].imshow(flat[::step, ::step], cmap="gray", vmin=_limits(flat)[0], vmax=_limits(flat)[1])
        ax_row[2].imshow(flat[::step, ::step], cmap="gray", vmin=_limits(flat)[0], vmax=_limits(flat)[1])
        if label.any():
            ax_row[2].contour(label[::step, ::step], levels=[0.5], colors="tab:red", linewidths=0.8)
        sy, sx = _zoom_window(label, float(row["pixel_scale_nm"]))
        z = flat[sy, sx]
        ax_row[3].imshow(z, cmap="gray", vmin=_limits(z, 1, 99)[0], vmax=_limits(z, 1, 99)[1])
        if label[sy, sx].any() and not label[sy, sx].all():
            ax_row[3].contour(label[sy, sx], levels=[0.5], colors="tab:red", linewidths=0.6, alpha=0.6)
        title = (f"{row['material']} {row['diameter_nm']:g} nm, {row['dose_e_per_A2']:g} e/Å², "
                 f"{row['pixel_scale_nm']:g} nm/px")
        ax_row[0].set_title(f"raw counts\n{title}", fontsize=8)
        ax_row[1].set_title("x-rays removed, flat-fielded", fontsize=8)
        ax_row[2].set_title("label outline", fontsize=8)
        ax_row[3].set_title(f"zoom {z.shape[0] * float(row['pixel_scale_nm']):.1f} nm", fontsize=8)
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"synthetic HRTEM repository {repo.name}: {len(cat)} frames, first frame of each group", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return out_png
