"""Particle statistics from a segmentation mask: one row per connected particle.

Columns: ``particle`` (label id), ``centroid_row_px``, ``centroid_col_px``, ``centroid_y_nm``,
``centroid_x_nm``, ``area_px``, ``area_nm2``, ``equivalent_diameter_nm`` (diameter of the disc
of equal area), ``perimeter_nm`` (Crofton estimate, unbiased for digital discs),
``circularity`` (``4 pi area / perimeter^2``; 1 for a disc, smaller for elongated or ragged
outlines), ``touches_border`` (the particle is cut by the frame edge, so its size is a lower
bound; exclude it from size distributions). Lengths in nm need the pixel scale; without it
the nm columns are NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = [
    "particle", "centroid_row_px", "centroid_col_px", "centroid_y_nm", "centroid_x_nm", "area_px",
    "area_nm2", "equivalent_diameter_nm", "perimeter_nm", "circularity", "touches_border",
]


def label_particles(mask: np.ndarray, *, watershed: bool = False, min_area_px: int = 16,
                    h_px: float = 2.0) -> np.ndarray:
    """Label connected particles (8-connectivity), optionally splitting touching ones.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) mask, nonzero = particle.
    watershed : bool
        Split touching particles: watershed on the negated Euclidean distance transform,
        seeded by its h-maxima (one seed per distance peak that rises at least `h_px`
        above the saddle to its neighbour), so a neck between two round particles is cut
        while noise on one outline does not over-split it.
    min_area_px : int
        Particles smaller than this many pixels are dropped (speckle).
    h_px : float
        Minimum peak height of the distance transform for a separate seed, pixels.

    Returns
    -------
    numpy.ndarray
        (H, W) int32 labels, 0 = background, 1..n particles.
    """
    from scipy import ndimage as ndi
    from skimage.measure import label
    from skimage.morphology import remove_small_objects

    mask = np.asarray(mask) != 0
    if min_area_px > 1:
        mask = remove_small_objects(mask, max_size=min_area_px - 1) if _has_max_size() else \
            remove_small_objects(mask, min_size=min_area_px)
    labels = label(mask, connectivity=2)
    if watershed and labels.max() > 0:
        from skimage.morphology import h_maxima
        from skimage.segmentation import watershed as ws

        dist = ndi.distance_transform_edt(mask)
        seeds = label(h_maxima(dist, h_px), connectivity=2)
        split = ws(-dist, seeds, mask=mask)
        # a component without any seed (thinner than h_px) keeps its own label
        unseeded = (split == 0) & mask
        if unseeded.any():
            extra = label(unseeded, connectivity=2)
            split = np.where(unseeded, extra + split.max(), split)
        labels = _relabel(split)
    return labels.astype(np.int32)


def _has_max_size() -> bool:
    import inspect

    from skimage.morphology import remove_small_objects

    return "max_size" in inspect.signature(remove_small_objects).parameters


def _relabel(labels: np.ndarray) -> np.ndarray:
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)[0]


def particle_table(mask: np.ndarray, pixel_scale_nm: float | None = None, *, watershed: bool = False,
                   min_area_px: int = 16) -> pd.DataFrame:
    """Measure every particle of a mask.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) mask, nonzero = particle.
    pixel_scale_nm : float, optional
        nm per pixel; without it the ``*_nm`` columns are NaN.
    watershed : bool
        Split touching particles (see :func:`label_particles`).
    min_area_px : int
        Smallest particle kept, pixels.

    Returns
    -------
    pandas.DataFrame
        One row per particle, columns :data:`COLUMNS`.
    """
    from skimage.measure import regionprops

    labels = label_particles(mask, watershed=watershed, min_area_px=min_area_px)
    h, w = labels.shape
    s = float(pixel_scale_nm) if pixel_scale_nm else np.nan
    rows = []
    for p in regionprops(labels):
        r0, c0, r1, c1 = p.bbox
        area = float(p.area)
        perim = float(p.perimeter_crofton) if area > 1 else 4.0
        rows.append({
            "particle": int(p.label),
            "centroid_row_px": float(p.centroid[0]),
            "centroid_col_px": float(p.centroid[1]),
            "centroid_y_nm": float(p.centroid[0]) * s,
            "centroid_x_nm": float(p.centroid[1]) * s,
            "area_px": int(area),
            "area_nm2": area * s * s,
            "equivalent_diameter_nm": float(np.sqrt(4.0 * area / np.pi)) * s,
            "perimeter_nm": perim * s,
            "circularity": float(4.0 * np.pi * area / perim**2) if perim > 0 else np.nan,
            "touches_border": bool(r0 == 0 or c0 == 0 or r1 == h or c1 == w),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def write_particle_csv(table: pd.DataFrame, path) -> Path:
    """Write a particle table as CSV, atomically."""
    from temshift.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return path


def combine_tables(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Stack per-frame tables into one, with a leading ``frame`` column (frame name)."""
    parts = [t.assign(frame=name) for name, t in tables.items()]
    if not parts:
        return pd.DataFrame(columns=["frame", *COLUMNS])
    out = pd.concat(parts, ignore_index=True)
    return out[["frame", *COLUMNS]]


def size_histogram_png(table: pd.DataFrame, path, *, exclude_border: bool = True, bins="auto",
                       title: str | None = None) -> Path:
    """Histogram of equivalent diameters (nm; pixels if no scale) as a PNG, atomically.

    Parameters
    ----------
    table : pandas.DataFrame
        Particle table (one frame or combined).
    path : str or Path
        Output PNG.
    exclude_border : bool
        Leave out particles cut by the frame edge (their size is a lower bound).
    bins : int or str
        Passed to :func:`numpy.histogram_bin_edges`.
    title : str, optional
        Plot title.
    """
    # a bare Figure renders with Agg and skips pyplot's import and backend set-up (~0.5-1 s)
    from matplotlib.figure import Figure

    from temshift.io.atomic import atomic_path

    t = table[~table["touches_border"].astype(bool)] if exclude_border and len(table) else table
    d = t["equivalent_diameter_nm"].to_numpy(dtype=float)
    unit = "nm"
    if len(d) and np.isnan(d).all():
        d, unit = np.sqrt(4.0 * t["area_px"].to_numpy(dtype=float) / np.pi), "pixels"
    d = d[np.isfinite(d)]
    fig = Figure(figsize=(5, 3.5), dpi=120)
    ax = fig.subplots()
    if len(d):
        ax.hist(d, bins=np.histogram_bin_edges(d, bins=bins), color="tab:orange", edgecolor="black")
        ax.axvline(np.median(d), color="black", ls="--", lw=1, label=f"median {np.median(d):.3g} {unit}")
        ax.legend(frameon=False)
    else:
        ax.text(0.5, 0.5, "no particles", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"equivalent diameter ({unit})")
    ax.set_ylabel("particles")
    ax.set_title(title or f"{len(d)} particles" + (" (border particles excluded)" if exclude_border else ""))
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
