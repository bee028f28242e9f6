"""Dataset statistics (Fig S7): histogram median, image roughness, particle contrast.

Not the shift-report statistics of new frames (:func:`temshift.datasets.statistics.image_statistics`):
these summarize a whole dataset of labelled patches; the particle contrast is
:func:`temshift.datasets.contrast.particle_contrast`.
"""

from __future__ import annotations

import numpy as np

from temshift.datasets.contrast import particle_contrast


def patch_statistics(images: np.ndarray, labels: np.ndarray) -> dict:
    """Summary statistics of preprocessed patches.

    Parameters
    ----------
    images : (N, H, W) float array
        Preprocessed patches (dimensionless after rescaling).
    labels : (N, H, W) {0, 1} array
        Particle masks.

    Returns
    -------
    dict
        ``histogram_median``: median of all pixel values (tracks particle contrast and the
        share of particle area); ``roughness``: median over patches of the RMS difference
        between horizontally adjacent background pixels divided by sqrt(2), i.e. the
        pixel-to-pixel noise level; ``particle_contrast``: (median background - median
        particle) / background standard deviation
        (:func:`temshift.datasets.contrast.particle_contrast`); ``particle_fraction``: share of particle
        pixels; ``n_patches``.
    """
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels).astype(bool)
    out = {
        "n_patches": int(images.shape[0]),
        "particle_fraction": float(labels.mean()) if labels.size else float("nan"),
    }
    if images.size == 0:
        return {**out, "histogram_median": float("nan"), "roughness": float("nan"), "particle_contrast": float("nan")}
    out["histogram_median"] = float(np.median(images))
    diff = np.diff(images, axis=2)
    bg_pair = ~(labels[:, :, 1:] | labels[:, :, :-1])
    rough = []
    for d, m in zip(diff, bg_pair):
        if m.sum() > 16:
            rough.append(float(np.sqrt(np.mean(d[m] ** 2) / 2.0)))
    out["roughness"] = float(np.median(rough)) if rough else float("nan")
    out["particle_contrast"] = particle_contrast(images, labels)
    return out


def with_noise(images: np.ndarray, rho: float, seed: int = 0) -> np.ndarray:
    """The noise augmentation ``(x + N(0, rho^2)) / sqrt(1 + rho^2)`` applied to `images`."""
    rng = np.random.default_rng(seed)
    noisy = images + rng.normal(0.0, rho, size=images.shape).astype(np.float32)
    return (noisy / np.sqrt(1.0 + rho * rho)).astype(np.float32)
