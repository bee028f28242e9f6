"""Pixel-scale matching: resample a frame to the model's training pixel scale and back.

CNNs are not scale-invariant: lattice fringes of a given spacing in nm have a period in
pixels that is set by the pixel scale, and the paper's magnification study shows that models
fail on other pixel scales. Before inference the (preprocessed) frame is resampled so that
one pixel covers the training pixel scale; probabilities are resampled back to the frame's
own grid afterwards. Downsampling uses Gaussian anti-aliasing (scikit-image's default sigma,
``(factor - 1) / 2``), so no aliased fringes appear.

Resampling moves the fringes to the right period but not the noise: at a fixed dose a
detector pixel of edge ``p`` collects ``dose * p**2`` electrons, so its relative shot noise
scales as ``1 / p``. A frame recorded at 0.042 nm/px and interpolated to 0.020 nm/px has
smooth, correlated noise about two times too weak for a model trained at 0.020 nm/px, which
then over-segments (the same failure as testing at a higher dose). :func:`restore_noise`
adds the missing white noise, so the resampled frame has the pixel noise a detector at the
training scale would have recorded at the same dose.
"""

from __future__ import annotations

import numpy as np

from temshift.preprocess.noise import noise_sd

SCALE_TOLERANCE = 0.02
"""Relative pixel-scale difference below which no resampling is done (calibration precision)."""


def zoom_factor(pixel_scale_nm: float | None, target_pixel_scale_nm: float | None) -> float:
    """Factor by which the frame's pixel count per axis changes when matched to the target.

    Parameters
    ----------
    pixel_scale_nm : float or None
        Frame pixel scale, nm/pixel.
    target_pixel_scale_nm : float or None
        Model training pixel scale, nm/pixel.

    Returns
    -------
    float
        ``pixel_scale_nm / target_pixel_scale_nm``, or 1.0 when either is unknown or they
        agree within :data:`SCALE_TOLERANCE`.
    """
    if not pixel_scale_nm or not target_pixel_scale_nm:
        return 1.0
    f = float(pixel_scale_nm) / float(target_pixel_scale_nm)
    if abs(f - 1.0) <= SCALE_TOLERANCE:
        return 1.0
    return f


def resample_image(image: np.ndarray, factor: float, order: int = 1) -> np.ndarray:
    """Resample a 2-D image by `factor` per axis (shape rounded to whole pixels).

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) image.
    factor : float
        Output pixels per input pixel along each axis (> 1 enlarges).
    order : int
        Spline order (1 = bilinear).

    Returns
    -------
    numpy.ndarray
        (round(H * factor), round(W * factor)) float32 image.
    """
    if factor == 1.0:
        return np.asarray(image, dtype=np.float32)
    from skimage.transform import resize

    shape = (max(1, round(image.shape[0] * factor)), max(1, round(image.shape[1] * factor)))
    out = resize(
        np.asarray(image, dtype=np.float32),
        shape,
        order=order,
        mode="reflect",
        anti_aliasing=factor < 1.0,
        preserve_range=True,
    )
    result: np.ndarray = out.astype(np.float32, copy=False)
    return result


def resample_to_shape(maps: np.ndarray, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    """Resample (H, W) or (C, H, W) maps (e.g. class probabilities) to a 2-D `shape`.

    Parameters
    ----------
    maps : numpy.ndarray
        (H, W) or (C, H, W) float maps.
    shape : tuple of int
        Target (H, W), pixels (the original frame shape).
    order : int
        Spline order (1 = bilinear; probabilities stay in [0, 1]).

    Returns
    -------
    numpy.ndarray
        float32 maps of the target shape (channel axis kept).
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape[-2:] == tuple(shape):
        return maps
    from skimage.transform import resize

    downsampling = maps.shape[-1] > shape[-1]
    if maps.ndim == 2:
        out: np.ndarray = resize(
            maps, shape, order=order, mode="edge", anti_aliasing=downsampling, preserve_range=True
        ).astype(np.float32)
        return out
    return np.stack([resample_to_shape(m, shape, order) for m in maps])


NOISE_CROP = 2048
"""Edge (pixels) of the central crop on which the noise level is measured (speed)."""


def _central_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape
    r, c = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[r : r + size, c : c + size]


def restore_noise(resampled: np.ndarray, original: np.ndarray, factor: float, seed: int = 0) -> np.ndarray:
    """Add the pixel noise that resampling by `factor` removed.

    The target is the original frame's pixel noise SD times `factor` (shot noise per pixel
    at a fixed dose is inversely proportional to the pixel edge); Gaussian white noise makes
    up the difference when the resampled frame has less. Noise is never removed.

    Parameters
    ----------
    resampled : numpy.ndarray
        (H', W') frame after :func:`resample_image` (intensity units of `original`).
    original : numpy.ndarray
        (H, W) frame before resampling.
    factor : float
        Resampling factor used (output pixels per input pixel along each axis).
    seed : int
        Seed of the added noise (predictions are reproducible).

    Returns
    -------
    numpy.ndarray
        float32 frame of the shape of `resampled`.
    """
    resampled = np.asarray(resampled, dtype=np.float32)
    target = noise_sd(_central_crop(np.asarray(original), NOISE_CROP)) * float(factor)
    have = noise_sd(_central_crop(resampled, NOISE_CROP))
    if not np.isfinite(target) or target <= have:
        return resampled
    sd = np.float32(np.sqrt(target**2 - have**2))
    noise = np.random.default_rng(seed).standard_normal(resampled.shape, dtype=np.float32)
    out: np.ndarray = resampled + sd * noise
    return out
