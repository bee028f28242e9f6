"""Particle contrast: the three statistics the project reports, defined side by side.

They answer different questions and are not interchangeable, so each has its own name:

:func:`median_contrast`
    ``median(background) - median(particle)`` over all pixels of a set of labelled patches, in
    the units of the standardized frames (mean 0, SD 1 per frame). The real-data reference
    (``temshift/data/real_reference.json``) is defined this way; the realism study compares
    synthetic datasets with it.
:func:`particle_contrast`
    :func:`median_contrast` divided by the standard deviation of the background pixels: the
    contrast in units of the background fluctuation, the dataset statistic of the studies'
    Fig S7 (:func:`temshift.studies.stats.patch_statistics`).
:func:`core_contrast`
    Per tile of a model input with a *predicted* mask (shift reports,
    :func:`temshift.datasets.statistics.tile_statistics`): particle cores (mask eroded by
    2 px) against background >= 2 px from the mask, after a Gaussian smoothing of 2 px,
    ``|median(core) - median(background)| / robust SD(background)``. Erosion and the margin
    keep a mask edge that is off by a pixel or two from diluting it; the smoothing suppresses
    shot noise so that the statistic tracks the particles' mean level, not the dose.

Background is label 0 and particle label 1 (nonzero) throughout.
"""

from __future__ import annotations

import numpy as np


def _median_difference(background: np.ndarray, particle: np.ndarray) -> np.floating:
    """``median(background) - median(particle)`` in the arrays' own float type."""
    return np.median(background) - np.median(particle)


def median_contrast(images: np.ndarray, labels: np.ndarray) -> float:
    """Median of the background pixels minus median of the particle pixels (see module docstring).

    Parameters
    ----------
    images : (N, H, W) float array
        Standardized patches.
    labels : (N, H, W) {0, 1} array
        Particle masks.

    Returns
    -------
    float
        Positive when particles are darker than the support; NaN when either class has no pixels.
    """
    images = np.asarray(images, dtype=np.float32)
    m = np.asarray(labels) != 0
    if not m.any() or m.all():
        return float("nan")
    return float(_median_difference(images[~m], images[m]))


def particle_contrast(images: np.ndarray, labels: np.ndarray) -> float:
    """:func:`median_contrast` in units of the background standard deviation (Fig S7).

    Parameters
    ----------
    images : (N, H, W) float array
        Preprocessed patches.
    labels : (N, H, W) {0, 1} array
        Particle masks.

    Returns
    -------
    float
        NaN when either class has no pixels or the background is constant.
    """
    images = np.asarray(images, dtype=np.float32)
    m = np.asarray(labels) != 0
    bg, fg = images[~m], images[m]
    if not (fg.size and bg.size):
        return float("nan")
    sd = bg.std()
    if not sd > 0:
        return float("nan")
    return float(_median_difference(bg, fg) / sd)


def core_contrast(tile: np.ndarray, mask: np.ndarray, near: np.ndarray) -> float:
    """Contrast of one tile with a (predicted) particle mask, for shift reports (see module docstring).

    Parameters
    ----------
    tile : (h, w) float64 array
        Preprocessed model-input tile.
    mask : (h, w) bool array
        Particle mask.
    near : (h, w) bool array
        The mask dilated by 2 px (pixels < 2 px from a particle).

    Returns
    -------
    float
        NaN when the background is constant.
    """
    from scipy.ndimage import binary_erosion, gaussian_filter

    core = binary_erosion(mask, iterations=2)
    core = core if core.any() else mask
    away = ~near
    away = away if away.any() else ~mask
    s = gaussian_filter(tile, 2.0)
    bg = tile[away]
    sd_bg = float(1.4826 * np.median(np.abs(bg - np.median(bg))))
    if sd_bg > 0:
        return float(abs(np.median(s[core]) - np.median(s[away])) / sd_bg)
    return float("nan")
