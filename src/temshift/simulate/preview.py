"""A page of example frames: raw, flat-fielded, label overlay and a zoom, per group.

One row per (material, size, dose, pixel scale) group of the repository (its first frame),
up to `max_rows` groups chosen so that every material, size, dose and pixel scale present
appears at least once when possible: the raw counts, the frame after X-ray removal and flat-field
correction (`temshift.preprocess`), the same with the label outline, and a zoom
(a 10 nm window on a particle, or the frame centre) showing the lattice fringes; every
image has a scale bar in nm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PREVIEW_GROUPS = ("material", "diameter_nm", "dose_e_per_A2", "pixel_scale_nm")


def _limits(img, lo=0.5, hi=99.5):
    a, b = np.percentile(img[:: max(1, img.shape[0] // 512), :: max(1, img.shape[1] // 512)], [lo, hi])
    return float(a), float(b if b > a else a + 1)


def _zoom_window(label, pixel_scale_nm, width_nm=10.0, margin=1.3):
    """Square window on the particle nearest the frame centre, wide enough to hold all of it.

    Centred on that particle's bounding box (not on its nearest pixel, which lies on its
    edge) and at least `margin` times its extent, so the particle is never cut off.
    """
    from scipy import ndimage

    n_y, n_x = label.shape
    w = int(round(width_nm / pixel_scale_nm))
    cy, cx = n_y // 2, n_x // 2
    components, count = ndimage.label(label > 0)
    if count:
        ys, xs = np.nonzero(components)
        k = int(np.argmin((ys - n_y / 2) ** 2 + (xs - n_x / 2) ** 2))
        box = ndimage.find_objects((components == components[ys[k], xs[k]]).astype(np.int32))[0]
        cy, cx = (box[0].start + box[0].stop) // 2, (box[1].start + box[1].stop) // 2
        w = max(w, int(np.ceil(margin * max(box[0].stop - box[0].start, box[1].stop - box[1].start))))
    w = int(min(n_y, n_x, max(64, w)))
    y0 = int(np.clip(cy - w // 2, 0, n_y - w))
    x0 = int(np.clip(cx - w // 2, 0, n_x - w))
    return slice(y0, y0 + w), slice(x0, x0 + w)


def _nice_length_nm(width_nm: float) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k nm) near a fifth of the field of view."""
    target = width_nm / 5
    base = 10 ** np.floor(np.log10(target))
    return float(max(m * base for m in (1, 2, 5) if m * base <= target))


def add_scale_bar(ax, pixel_scale_nm: float, width_px: int, step: int = 1):
    """Draw a scale bar in nm on an image axis showing `width_px` pixels (every `step`-th)."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length_nm = _nice_length_nm(width_px * pixel_scale_nm)
    bar = AnchoredSizeBar(
        ax.transData,
        length_nm / (pixel_scale_nm * step),
        f"{length_nm:g} nm",
        "lower right",
        pad=0.3,
        borderpad=0.3,
        sep=2,
        color="white",
        frameon=True,
        size_vertical=max(1, width_px / step / 80),
        fontproperties={"size": 7},
    )
    bar.patch.set(facecolor="black", alpha=0.55, edgecolor="none")  # readable on bright and dark frames
    ax.add_artist(bar)
    return bar


def _diverse_groups(df, max_rows: int):
    """First frame of up to `max_rows` groups, greedily covering every value of each field."""
    firsts = df.groupby(list(PREVIEW_GROUPS), sort=True).head(1)
    chosen: list[Any] = []
    seen: dict[str, set[Any]] = {f: set() for f in PREVIEW_GROUPS}
    while len(chosen) < min(max_rows, len(firsts)):
        gains = [
            (sum(row[f] not in seen[f] for f in PREVIEW_GROUPS), -k)
            for k, (idx, row) in enumerate(firsts.iterrows())
            if idx not in chosen
        ]
        _best_gain, neg_k = max(gains)
        idx = firsts.index[-neg_k]
        chosen.append(idx)
        for f in PREVIEW_GROUPS:
            seen[f].add(firsts.loc[idx, f])
    return firsts.loc[sorted(chosen, key=list(firsts.index).index)]


def preview_figure(repo, max_rows: int = 12, catalog=None):
    """The example page as a matplotlib figure (see :func:`write_preview`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from temshift.catalog import Catalog
    from temshift.io import read_frame, read_label
    from temshift.preprocess import flatfield_correct, remove_xrays

    repo = Path(repo)
    cat = catalog if catalog is not None else Catalog.read(repo / "catalog.csv")
    firsts = _diverse_groups(cat.df, max_rows)
    n = len(firsts)
    # constrained layout makes room for the figure title and the two-line row titles
    fig, axes = plt.subplots(n, 4, figsize=(13, 3.5 * n + 0.6), squeeze=False, layout="constrained")
    for ax_row, (_, row) in zip(axes, firsts.iterrows()):
        scale = float(row["pixel_scale_nm"])
        frame = read_frame(cat.frame_path(row, repo)).data
        label = read_label(cat.label_path(row, repo), shape=frame.shape)
        flat = flatfield_correct(remove_xrays(frame, 1500.0))
        step = max(1, frame.shape[0] // 1024)
        ax_row[0].imshow(frame[::step, ::step], cmap="gray", vmin=_limits(frame)[0], vmax=_limits(frame)[1])
        ax_row[1].imshow(flat[::step, ::step], cmap="gray", vmin=_limits(flat)[0], vmax=_limits(flat)[1])
        ax_row[2].imshow(flat[::step, ::step], cmap="gray", vmin=_limits(flat)[0], vmax=_limits(flat)[1])
        if label.any():
            ax_row[2].contour(label[::step, ::step], levels=[0.5], colors="tab:red", linewidths=0.8)
        sy, sx = _zoom_window(label, scale)
        z = flat[sy, sx]
        ax_row[3].imshow(z, cmap="gray", vmin=_limits(z, 1, 99)[0], vmax=_limits(z, 1, 99)[1])
        if label[sy, sx].any() and not label[sy, sx].all():
            ax_row[3].contour(label[sy, sx], levels=[0.5], colors="tab:red", linewidths=0.6, alpha=0.6)
        for ax in ax_row[:3]:
            add_scale_bar(ax, scale, frame.shape[1], step)
        add_scale_bar(ax_row[3], scale, z.shape[1])
        title = f"{row['material']} {row['diameter_nm']:g} nm, {row['dose_e_per_A2']:g} e/Å², {scale:g} nm/px"
        ax_row[0].set_title(f"raw counts\n{title}", fontsize=8)
        ax_row[1].set_title("x-rays removed, flat-fielded", fontsize=8)
        ax_row[2].set_title("label outline", fontsize=8)
        ax_row[3].set_title(f"zoom {z.shape[0] * scale:.1f} nm", fontsize=8)
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"HRTEM repository {repo.name}: {len(cat)} frames, first frame of each group", fontsize=10)
    return fig


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
    import matplotlib.pyplot as plt

    from temshift.io.atomic import atomic_path

    fig = preview_figure(repo, max_rows, catalog)
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return out_png
