"""Pixel-noise level of an image: Immerkaer's estimator.

The image is filtered with the separable kernel ``[1, -2, 1] x [1, -2, 1]``, which cancels
anything linear along either axis (smooth illumination and most of the lattice-fringe
signal), so what remains is mostly pixel noise, amplified by the kernel's norm, 6.
Pixel-scale matching (:func:`temshift.preprocess.scale.restore_noise`) and the SNR of the
dataset statistics (:mod:`temshift.datasets.statistics`) both measure noise this way.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

KERNEL_NORM = 6.0
"""Norm of the ``[1, -2, 1] x [1, -2, 1]`` kernel: residual SD / noise SD for white noise."""


def immerkaer_residual(image: ArrayLike) -> np.ndarray:
    """The image filtered with ``[1, -2, 1] x [1, -2, 1]`` (valid part, float64).

    Parameters
    ----------
    image : array_like
        (H, W) image, any intensity units.

    Returns
    -------
    numpy.ndarray
        (H - 2, W - 2) float64 residual, same units; its SD / :data:`KERNEL_NORM` is the pixel-noise SD.
    """
    t = np.asarray(image, dtype=np.float64)
    lap = t[:-2] - 2 * t[1:-1] + t[2:]
    out: np.ndarray = lap[:, :-2] - 2 * lap[:, 1:-1] + lap[:, 2:]
    return out


def noise_sd(tile: ArrayLike) -> float:
    """Immerkaer noise SD of a tile (robust: 1.4826 MAD of the residual), same units as the tile."""
    lap = immerkaer_residual(tile)
    return float(1.4826 * np.median(np.abs(lap - np.median(lap))) / KERNEL_NORM)
