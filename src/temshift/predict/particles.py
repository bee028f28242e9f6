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
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = [
    "particle",
    "centroid_row_px",
    "centroid_col_px",
    "centroid_y_nm",
    "centroid_x_nm",
    "area_px",
    "area_nm2",
    "equivalent_diameter_nm",
    "perimeter_nm",
    "circularity",
    "touches_border",
]
CONFIDENCE_COLUMNS = ["mean_probability", "mean_std", "agreement", "confidence"]
"""Added by :func:`particle_table` when the prediction's probabilities are given."""


def label_particles(
    mask: np.ndarray, *, watershed: bool = False, min_area_px: int = 16, h_px: float = 2.0
) -> np.ndarray:
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

    mask = np.asarray(mask) != 0
    if min_area_px > 1:
        mask = _remove_small(mask, min_area_px)
    # SciPy labels components in raster order, as skimage.measure.label(connectivity=2) does (tested
    # equal); it spares importing scikit-image (~0.3 s) when nothing is split
    labels, _ = ndi.label(mask, structure=np.ones((3, 3), bool))
    if watershed and labels.max() > 0:
        from skimage.measure import label
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


def _remove_small(mask: np.ndarray, min_area_px: int) -> np.ndarray:
    """`mask` without its 4-connected components of fewer than `min_area_px` pixels: what
    ``skimage.morphology.remove_small_objects(mask, max_size=min_area_px - 1)`` does (tested equal)."""
    from scipy import ndimage as ndi

    components = np.zeros(mask.shape, dtype=np.int32)
    ndi.label(mask, ndi.generate_binary_structure(2, 1), output=components)
    too_small = np.bincount(components.ravel()) < min_area_px
    too_small[0] = False
    out = mask.copy()
    if too_small.any():
        out[too_small[components]] = False
    return out


def _relabel(labels: np.ndarray) -> np.ndarray:
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)[0]


def particle_table(
    mask: np.ndarray,
    pixel_scale_nm: float | None = None,
    *,
    watershed: bool = False,
    min_area_px: int = 16,
    probabilities: np.ndarray | None = None,
    std: np.ndarray | None = None,
    members=None,
) -> pd.DataFrame:
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
    probabilities, std : numpy.ndarray, optional
        (H, W) mean particle probability and its standard deviation across the members of
        the prediction (:attr:`temshift.predict.pipeline.Segmentation.std`).
    members : MemberMasks, optional
        Each member's own mask (:attr:`temshift.predict.pipeline.Segmentation.members`). With `probabilities`,
        the table gets the confidence columns :data:`CONFIDENCE_COLUMNS`
        (see :func:`particle_confidence`).

    Returns
    -------
    pandas.DataFrame
        One row per particle, columns :data:`COLUMNS` (+ :data:`CONFIDENCE_COLUMNS`).
    """
    labels = label_particles(mask, watershed=watershed, min_area_px=min_area_px)
    table = _measure(labels, pixel_scale_nm, touching=watershed)
    if probabilities is not None:
        conf = particle_confidence(labels, probabilities, std, members, watershed=watershed, min_area_px=min_area_px)
        table = pd.concat([table, conf.reset_index(drop=True)], axis=1)
    return table


#: skimage's Crofton perimeter weights of the 16 2x2 pixel configurations (4 directions), as a list
#: so that ``CROFTON_WEIGHTS @ histogram`` is the very product skimage computes
CROFTON_WEIGHTS = [
    0,
    np.pi / 4 * (1 + 1 / (np.sqrt(2))),
    np.pi / (4 * np.sqrt(2)),
    np.pi / (2 * np.sqrt(2)),
    0,
    np.pi / 4 * (1 + 1 / (np.sqrt(2))),
    0,
    np.pi / (4 * np.sqrt(2)),
    np.pi / 4,
    np.pi / 2,
    np.pi / (4 * np.sqrt(2)),
    np.pi / (4 * np.sqrt(2)),
    np.pi / 4,
    np.pi / 2,
    0,
    0,
]


def _region_measures(labels: np.ndarray):
    """Per label 1..n: pixel count, centroid (row, col), bounding box and Crofton perimeter, all at once.

    The same numbers as ``skimage.measure.regionprops`` (tested equal) for labels that never touch
    each other (8-connected components): then every 2x2 window holds pixels of at most one label,
    and skimage's per-region histogram of window configurations is the whole image's histogram
    split by the window's label. One pass over the image instead of one Python object per particle.
    """
    from scipy import ndimage as ndi

    n = int(labels.max(initial=0))
    rr, cc = np.nonzero(labels)  # row-major order, as the labels below
    lab = labels[labels != 0]
    area = np.bincount(lab, minlength=n + 1)[1:]
    # sums of integer coordinates are exact in float64, so the means are skimage's to the bit
    centroid_r = np.bincount(lab, weights=rr, minlength=n + 1)[1:] / area
    centroid_c = np.bincount(lab, weights=cc, minlength=n + 1)[1:] / area
    boxes = ndi.find_objects(labels, max_label=n)
    # skimage's configuration code of each 2x2 window (its convolution with [[0,0,0],[0,1,4],[0,2,8]]):
    # output pixel (i, j) of the zero-padded image sees pixels (i, j) 1, (i, j-1) 4, (i-1, j) 2, (i-1, j-1) 8
    padded = np.pad(labels, 1)
    b = (padded > 0).view(np.uint8)
    code = b.copy()
    code[:, 1:] += 4 * b[:, :-1]
    code[1:, :] += 2 * b[:-1, :]
    code[1:, 1:] += 8 * b[:-1, :-1]
    # the label of each window (the largest of its 4 pixels; 0 where the code is 0), for the whole image at
    # once: output pixel (i, j) >= (1, 1) is window [i-1:i+1, j-1:j+1], here at [i-1, j-1]; code is 0 in
    # the first row and column (padding). Windows without particle pixels count for label 0, never read.
    win = np.maximum(padded[1:, 1:], padded[1:, :-1])
    np.maximum(win, padded[:-1, 1:], out=win)
    np.maximum(win, padded[:-1, :-1], out=win)
    key = win.astype(np.int64)
    del win
    key *= 16
    key += code[1:, 1:]
    hist = np.bincount(key.ravel(), minlength=(n + 1) * 16).reshape(n + 1, 16)
    perimeter = np.array([CROFTON_WEIGHTS @ hist[k] for k in range(1, n + 1)], dtype=float)
    return area, centroid_r, centroid_c, boxes, perimeter


def _measure(labels: np.ndarray, pixel_scale_nm, touching: bool = False) -> pd.DataFrame:
    """One row per label; `touching`: labels may touch (watershed), measured region by region."""
    h, w = labels.shape
    s = float(pixel_scale_nm) if pixel_scale_nm else np.nan
    if touching:
        return _measure_regions(labels, s)
    area_px, cr, cc, boxes, crofton = _region_measures(labels)
    rows = []
    for k in range(len(area_px)):
        rs, cs = boxes[k]
        area = float(area_px[k])
        perim = float(crofton[k]) if area > 1 else 4.0
        rows.append(
            {
                "particle": k + 1,
                "centroid_row_px": float(cr[k]),
                "centroid_col_px": float(cc[k]),
                "centroid_y_nm": float(cr[k]) * s,
                "centroid_x_nm": float(cc[k]) * s,
                "area_px": int(area),
                "area_nm2": area * s * s,
                "equivalent_diameter_nm": float(np.sqrt(4.0 * area / np.pi)) * s,
                "perimeter_nm": perim * s,
                "circularity": float(4.0 * np.pi * area / perim**2) if perim > 0 else np.nan,
                "touches_border": bool(rs.start == 0 or cs.start == 0 or rs.stop == h or cs.stop == w),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _measure_regions(labels: np.ndarray, s: float) -> pd.DataFrame:
    from skimage.measure import regionprops

    h, w = labels.shape
    rows = []
    for p in regionprops(labels):
        r0, c0, r1, c1 = p.bbox
        area = float(p.area)
        perim = float(p.perimeter_crofton) if area > 1 else 4.0
        rows.append(
            {
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
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def best_iou(labels: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Best intersection over union of each labelled particle with any reference particle.

    Parameters
    ----------
    labels, reference : numpy.ndarray
        (H, W) integer labels, 0 = background.

    Returns
    -------
    numpy.ndarray
        float64, index ``i - 1`` for label ``i`` (1..labels.max()); 0 where nothing overlaps.
    """
    labels, reference = _label_array(labels), _label_array(reference)
    n, m = int(labels.max(initial=0)), int(reference.max(initial=0))
    best = np.zeros(n + 1)
    both = (labels > 0) & (reference > 0)
    if n and m and both.any():
        key = labels[both].astype(np.int64) * (m + 1) + reference[both]
        if (n + 1) * (m + 1) <= PAIR_TABLE_MAX:  # counts in a table: the same sorted pairs and counts as np.unique
            counts = np.bincount(key, minlength=(n + 1) * (m + 1))
            pairs = np.flatnonzero(counts)
            inter = counts[pairs]
        else:
            pairs, inter = np.unique(key, return_counts=True)
        a, b = pairs // (m + 1), pairs % (m + 1)
        area_a = np.bincount(labels.ravel(), minlength=n + 1)
        area_b = np.bincount(reference.ravel(), minlength=m + 1)
        np.maximum.at(best, a, inter / (area_a[a] + area_b[b] - inter))
    return best[1:]


PAIR_TABLE_MAX = 1 << 25
"""Largest (labels + 1) x (reference labels + 1) for which :func:`best_iou` counts overlapping pairs in a
table (int64, 256 MB at most; a 4096^2 mask with 1500 particles against one with 1500: 18 MB, ~10x faster
than sorting them)."""


def _label_array(labels) -> np.ndarray:
    """`labels` as an integer array: int32 and smaller as they are (no int64 copy of a frame), others as int64."""
    a = np.asarray(labels)
    return a if a.dtype.kind in "iu" and a.dtype.itemsize <= 4 else a.astype(np.int64)


def particle_confidence(
    labels: np.ndarray,
    probabilities: np.ndarray,
    std: np.ndarray | None = None,
    members=None,
    *,
    watershed: bool = False,
    min_area_px: int = 16,
    match_iou: float = 0.5,
) -> pd.DataFrame:
    """Per-particle confidence from the members of a prediction.

    Columns (one row per label 1..n, in label order):

    ``mean_probability``
        Mean particle probability (ensemble / TTA mean) over the particle's pixels; > 0.5
        inside a mask thresholded at 0.5 (`temshift.models.inference.particle_mask`).
    ``mean_std``
        Mean over the particle's pixels of the standard deviation of the probability across
        members (NaN without `std`).
    ``agreement``
        Fraction of members (models x dihedral variants) whose own mask, labelled the same
        way, holds a particle matching this one with IoU >= `match_iou` (NaN without
        `members`).
    ``confidence``
        ``(2 * mean_probability - 1) * agreement``, in [0, 1]: 0 for a particle no member
        finds on its own or whose pixels sit at the threshold, 1 for one every member finds
        with probability 1. Without members it is ``2 * mean_probability - 1``. Measured in
        benchmarks/uncertainty.py (right = IoU >= 0.5 with a true particle; ROC AUC 0.996-1.000
        with TTA or an ensemble, 0.98-0.99 on particles >= 1 nm), it ties the mean probability
        (within 0.001) and beats agreement alone, which fails on full-sized particles: all
        members find them whether their outline is right or wrong.

    Parameters
    ----------
    labels : numpy.ndarray
        (H, W) particle labels of the final mask (:func:`label_particles`).
    probabilities, std : numpy.ndarray
        (H, W) mean probability and its standard deviation across members.
    members : MemberMasks, optional
        Each member's mask (:class:`temshift.predict.uncertainty.MemberMasks`).
    watershed, min_area_px
        How member masks are labelled (as the final mask).
    match_iou : float
        IoU from which a member's particle counts as the same particle.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CONFIDENCE_COLUMNS`.
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    idx = np.arange(1, int(labels.max(initial=0)) + 1)
    if len(idx) == 0:
        return pd.DataFrame(columns=CONFIDENCE_COLUMNS, dtype=float)
    mean_p = np.asarray(ndi.mean(np.asarray(probabilities, dtype=np.float64), labels, idx), dtype=float)
    mean_s = (
        np.asarray(ndi.mean(np.asarray(std, dtype=np.float64), labels, idx), dtype=float)
        if std is not None
        else np.full(len(idx), np.nan)
    )
    if members is not None and len(members):
        hits = np.zeros(len(idx))
        for k in range(len(members)):
            own = label_particles(members.mask(k), watershed=watershed, min_area_px=min_area_px)
            hits += best_iou(labels, own) >= match_iou
        agree = hits / len(members)
    else:
        agree = np.full(len(idx), np.nan)
    conf = confidence_score(mean_p, mean_s, agree)
    return pd.DataFrame({"mean_probability": mean_p, "mean_std": mean_s, "agreement": agree, "confidence": conf})


def confidence_score(mean_probability, mean_std, agreement) -> np.ndarray:
    """The ``confidence`` column from the per-particle quantities (see :func:`particle_confidence`)."""
    p = np.clip(2.0 * np.asarray(mean_probability, dtype=float) - 1.0, 0.0, 1.0)
    a = np.asarray(agreement, dtype=float)
    return np.where(np.isfinite(a), p * a, p)


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
    return out[["frame", *[c for c in out.columns if c != "frame"]]]


N_BOOT = 1000
"""Bootstrap replicates for the confidence intervals."""
BOOT_SEED = 12
"""Seed of the bootstrap's numpy generator (the intervals are reproducible)."""


def _sized(table: pd.DataFrame, exclude_border: bool) -> tuple[np.ndarray, str]:
    """Equivalent diameter of every row (NaN where excluded or unknown) and its unit (nm, else pixels)."""
    if not len(table):
        return np.zeros(0), "nm"
    d = table["equivalent_diameter_nm"].to_numpy(dtype=float)
    unit = "nm"
    if np.isnan(d).all():
        d, unit = np.sqrt(4.0 * table["area_px"].to_numpy(dtype=float) / np.pi), "pixels"
    if exclude_border:
        d = np.where(table["touches_border"].astype(bool).to_numpy(), np.nan, d)
    return d, unit


def _replicate_weights(frame_index: np.ndarray, n_frames: int, n_boot: int, rng, chunk: int = 250):
    """Bootstrap weights of the particles, `chunk` replicates at a time, (chunk, n_particles) int.

    Frames are drawn with replacement (a frame drawn c times contributes c copies), and
    within them every particle gets a Poisson(1) weight per copy, i.e. Poisson(c) in all.
    """
    p = np.full(n_frames, 1.0 / n_frames)
    for start in range(0, n_boot, chunk):
        copies = rng.multinomial(n_frames, p, size=min(chunk, n_boot - start))
        yield rng.poisson(copies[:, frame_index])


def _weighted_median(sorted_values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Median of each row of `weights` over `sorted_values` (mean of the lower and upper median)."""
    cum = np.cumsum(weights, axis=1)
    half = cum[:, -1:] / 2.0
    lo = np.argmax(cum >= half, axis=1)
    hi = np.argmax(cum > half, axis=1)
    out = 0.5 * (sorted_values[lo] + sorted_values[hi])
    return np.where(cum[:, -1] > 0, out, np.nan)


def _bootstrap(table: pd.DataFrame, frames, exclude_border: bool, bins, n_boot: int, level: float, seed: int):
    """Point estimates and bootstrap intervals of counts, diameters and histogram bins of a table."""
    d, unit = _sized(table, exclude_border)
    has_frames = "frame" in table and len(table) > 0
    if frames is None:
        frames = list(pd.unique(table["frame"])) if has_frames else []
    names = list(frames) or ["frame"]
    if has_frames:
        index = {n: i for i, n in enumerate(names)}
        missing = set(table["frame"]) - set(index)
        if missing:
            raise ValueError(f"particle table has frames not in `frames`: {sorted(missing)[:3]}")
        frame_index = table["frame"].map(index).to_numpy(dtype=np.int64)
    else:
        frame_index = np.zeros(len(table), dtype=np.int64)
    ok = np.isfinite(d)
    order = np.argsort(d[ok], kind="stable")
    d_sorted = d[ok][order]
    edges = np.histogram_bin_edges(d_sorted, bins=bins) if len(d_sorted) else np.zeros(0)
    n_bins = max(len(edges) - 1, 0)
    onehot = np.zeros((len(d_sorted), n_bins))
    if n_bins:
        onehot[np.arange(len(d_sorted)), np.clip(np.searchsorted(edges, d_sorted, side="right") - 1, 0, n_bins - 1)] = 1
    reps: dict[str, list[Any]] = {"count": [], "mean": [], "median": [], "hist": []}
    rng = np.random.default_rng(seed)
    for w in _replicate_weights(frame_index, len(names), n_boot, rng):
        reps["count"].append(w.sum(axis=1))
        ws = w[:, ok][:, order].astype(float)
        tot = ws.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            reps["mean"].append(np.where(tot > 0, ws @ d_sorted / tot, np.nan))
        reps["median"].append(_weighted_median(d_sorted, ws) if len(d_sorted) else np.full(len(w), np.nan))
        reps["hist"].append(ws @ onehot)
    q = 100.0 * np.array([(1 - level) / 2, (1 + level) / 2])

    def ci(values):
        values = np.asarray(values, dtype=float)
        if values.size == 0 or np.isnan(values).all(axis=0).all():
            return np.full((2, *values.shape[1:]), np.nan)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no sized particle)
            return np.nanpercentile(values, q, axis=0)

    ones = np.ones((1, len(d_sorted)))
    point = {
        "count": float(len(table)),
        "mean": float(d_sorted.mean()) if len(d_sorted) else np.nan,
        "median": float(_weighted_median(d_sorted, ones)[0]) if len(d_sorted) else np.nan,
        "hist": onehot.sum(axis=0),
    }
    intervals = {k: ci(np.concatenate(v)) for k, v in reps.items()}
    if len(d_sorted) < 2:  # resampling one diameter says nothing about its spread
        intervals["mean"] = intervals["median"] = np.full(2, np.nan)
    return point, intervals, edges, unit, int(ok.sum())


def particle_summary(
    table: pd.DataFrame,
    frames=None,
    *,
    exclude_border: bool = True,
    n_boot: int = N_BOOT,
    level: float = 0.95,
    seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """Particle counts and diameters per frame and over all frames, with bootstrap intervals.

    Method: percentile bootstrap with `n_boot` replicates from ``numpy.random.default_rng(seed)``.
    Frames are resampled with replacement (frame-to-frame variation) and, within each drawn
    frame, every particle gets a Poisson(1) weight (counting noise: a particle count is
    itself random, which resampling a fixed number of particles would hide). A frame's own
    row therefore has the counting noise only. The interval is the central `level` share of
    the replicates. Counts include particles cut by the frame edge; diameters (equivalent
    disc diameter, nm, or pixels without a pixel scale) leave them out when `exclude_border`;
    with fewer than two sized particles the diameter intervals are NaN.

    Parameters
    ----------
    table : pandas.DataFrame
        Particle table of one frame or :func:`combine_tables` output (``frame`` column).
    frames : list of str, optional
        All frame names, including frames without particles (default: those in `table`).
    exclude_border : bool
        Leave particles cut by the frame edge out of the diameters.
    n_boot : int
        Bootstrap replicates.
    level : float
        Confidence level of the intervals (0.95: 2.5th to 97.5th percentile).
    seed : int
        Seed of the generator.

    Returns
    -------
    pandas.DataFrame
        One row per frame, then ``all``: ``frame, frames, particles, particles_ci_low,
        particles_ci_high, sized_particles, mean_diameter, mean_diameter_ci_low,
        mean_diameter_ci_high, median_diameter, median_diameter_ci_low, median_diameter_ci_high,
        diameter_unit``.
    """
    return _summary(table, frames, exclude_border, n_boot, level, seed)


def _frame_names(table: pd.DataFrame, frames) -> list:
    """`frames` as a list; by default the table's frames in order of appearance (``["frame"]`` if none)."""
    if frames is None:
        return list(pd.unique(table["frame"])) if "frame" in table and len(table) else ["frame"]
    return list(frames)


def _summary(table: pd.DataFrame, frames, exclude_border: bool, n_boot: int, level: float, seed: int, whole=None):
    """:func:`particle_summary`; `whole`: the ``_bootstrap`` of all of `table` over `frames` with
    automatic bins, made already (the batch's row, or the one frame's row, need no second run)."""
    frames = _frame_names(table, frames)
    groups = [(name, table[table["frame"] == name] if "frame" in table else table) for name in frames]
    if len(frames) > 1:
        groups.append(("all", table))
    rows = []
    for name, sub in groups:
        # the same rows in the same order, over the same frames: the same bootstrap, to the bit
        same = whole is not None and (name == "all" or (len(frames) == 1 and len(sub) == len(table)))
        point, iv, _, unit, sized = (
            whole
            if same
            else _bootstrap(sub, frames if name == "all" else [name], exclude_border, "auto", n_boot, level, seed)
        )
        rows.append(
            {
                "frame": name,
                "frames": len(frames) if name == "all" else 1,
                "particles": int(point["count"]),
                "particles_ci_low": iv["count"][0],
                "particles_ci_high": iv["count"][1],
                "sized_particles": sized,
                "mean_diameter": point["mean"],
                "mean_diameter_ci_low": iv["mean"][0],
                "mean_diameter_ci_high": iv["mean"][1],
                "median_diameter": point["median"],
                "median_diameter_ci_low": iv["median"][0],
                "median_diameter_ci_high": iv["median"][1],
                "diameter_unit": unit,
            }
        )
    return pd.DataFrame(rows)


def size_histogram_table(
    table: pd.DataFrame,
    frames=None,
    *,
    exclude_border: bool = True,
    bins="auto",
    n_boot: int = N_BOOT,
    level: float = 0.95,
    seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """Size histogram (bins of :func:`size_histogram_png`) with bootstrap intervals per bin.

    The bootstrap is that of :func:`particle_summary` (frames resampled, Poisson particle
    weights); parameters as there.

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``bin_low, bin_high, unit, particles, ci_low, ci_high``.
    """
    return _histogram_table(_bootstrap(table, frames, exclude_border, bins, n_boot, level, seed))


def summary_and_histogram(table: pd.DataFrame, frames=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(particle_summary(table, frames), size_histogram_table(table, frames))`` with the default
    settings, the bootstrap of the whole table run once for both (the same tables)."""
    names = _frame_names(table, frames)
    whole = _bootstrap(table, names, True, "auto", N_BOOT, 0.95, BOOT_SEED)
    return _summary(table, names, True, N_BOOT, 0.95, BOOT_SEED, whole=whole), _histogram_table(whole)


def _histogram_table(boot) -> pd.DataFrame:
    point, iv, edges, unit, _ = boot
    return pd.DataFrame(
        {
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "unit": unit,
            "particles": point["hist"].astype(int),
            "ci_low": iv["hist"][0] if len(edges) else [],
            "ci_high": iv["hist"][1] if len(edges) else [],
        }
    )


def size_histogram_png(
    table: pd.DataFrame,
    path,
    *,
    exclude_border: bool = True,
    bins="auto",
    title: str | None = None,
    ci: pd.DataFrame | None = None,
) -> Path:
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
    ci : pandas.DataFrame, optional
        :func:`size_histogram_table` of the same table: its bins are used and its intervals
        drawn as error bars.
    """
    from temshift.predict.histogram import draw_size_histogram, histogram_inputs

    return draw_size_histogram(
        path, bins=bins, title=title, **histogram_inputs(table, exclude_border=exclude_border, ci=ci)
    )
