"""The camera: electrons to counts (Gatan OneView-like scintillator-coupled CMOS).

Model, per detector pixel:

1. expected electrons ``lambda = dose_e_per_A2 * pixel_scale_A**2 * I``, with ``I`` the
   pixel-integrated image intensity (1 = unscattered beam) times the session's uneven
   illumination;
2. Poisson shot noise;
3. detector blur (scintillator point spread), applied after the shot noise so that it
   shapes signal and noise alike (noise power ~ MTF^2, as measured on such cameras):
   ``MTF(q) = floor + (1 - floor) / (1 + (q / q0)^2)``, q in cycles per pixel
   (Nyquist = 0.5); the defaults give MTF(Nyquist) ~ 0.4;
4. conversion gain (counts per electron) times the session's gain-reference error, plus
   Gaussian read noise (counts);
5. X-ray hits: rare isolated pixels a few thousand counts above the mean, at random
   positions, Poisson in number (~25 on a 4096^2 frame).

Frames are float32 counts. The background std / mean therefore falls as
1 / sqrt(electrons per pixel) = 1 / sqrt(dose * pixel area), scaled by the MTF's noise
reduction (constant for a given camera).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from temshift.simulate.optics import fft_workers


@dataclass(frozen=True)
class Camera:
    """Camera parameters.

    Attributes
    ----------
    gain_counts_per_e : float
        Mean conversion gain (each session draws its own around it).
    gain_spread : float
        Relative 1-sigma session-to-session spread of the gain.
    read_noise_counts : float
        Gaussian read noise per pixel (counts rms).
    mtf_floor, mtf_q0 : float
        MTF shape (see module docstring); q0 in cycles per pixel.
    xray_rate_per_px : float
        Expected X-ray hits per pixel per frame.
    xray_counts : (float, float)
        Range of counts an X-ray adds above the frame mean (uniform).
    """

    gain_counts_per_e: float = 10.0
    gain_spread: float = 0.12
    read_noise_counts: float = 2.0
    mtf_floor: float = 0.1
    mtf_q0: float = 0.3
    xray_rate_per_px: float = 1.5e-6
    xray_counts: tuple = (2500.0, 9000.0)

    def as_dict(self) -> dict:
        """Parameters as a plain dict."""
        return asdict(self)


def mtf(shape, camera: Camera) -> np.ndarray:
    """Detector MTF on an rfft2 frequency grid of `shape`, float32."""
    qy = np.fft.fftfreq(shape[0])[:, None]
    qx = np.fft.rfftfreq(shape[1])[None, :]
    q2 = (qx * qx + qy * qy) / camera.mtf_q0**2
    return (camera.mtf_floor + (1 - camera.mtf_floor) / (1 + q2)).astype(np.float32)


def apply_mtf(img: np.ndarray, camera: Camera) -> np.ndarray:
    """Blur an image by the detector MTF (float32)."""
    import scipy.fft as sfft

    spec = sfft.rfft2(img.astype(np.float32), workers=fft_workers())
    spec *= mtf(img.shape, camera)
    return sfft.irfft2(spec, s=img.shape, workers=fft_workers()).astype(np.float32)


def electrons_per_pixel(dose_e_per_A2: float, pixel_scale_A: float) -> float:
    """Mean electrons per pixel of the unscattered beam."""
    return float(dose_e_per_A2) * float(pixel_scale_A) ** 2


def plant_xrays(counts: np.ndarray, camera: Camera, rng) -> np.ndarray:
    """Add X-ray hits in place; returns their (row, col) coordinates, shape (n, 2)."""
    n = int(rng.poisson(camera.xray_rate_per_px * counts.size))
    if n == 0:
        return np.empty((0, 2), int)
    rows = rng.integers(1, counts.shape[0] - 1, n)
    cols = rng.integers(1, counts.shape[1] - 1, n)
    lo, hi = camera.xray_counts
    counts[rows, cols] += rng.uniform(lo, hi, n).astype(np.float32) + float(counts.mean())
    return np.stack([rows, cols], 1)


def detect(intensity: np.ndarray, dose_e_per_A2: float, pixel_scale_A: float, rng, camera: Camera | None = None,
           gain_counts_per_e: float | None = None, gain_error: np.ndarray | None = None,
           xrays: bool = True):
    """Turn a pixel-integrated intensity into a raw frame of counts.

    Parameters
    ----------
    intensity : (H, W) float array
        Relative intensity per pixel (1 = unscattered beam), illumination included.
    dose_e_per_A2 : float
        Electron dose.
    pixel_scale_A : float
        Detector pixel size at the specimen, Angstrom.
    rng : numpy.random.Generator
    camera : Camera, optional
    gain_counts_per_e : float, optional
        This session's gain (default: the camera's mean gain).
    gain_error : (H, W) float array, optional
        Multiplicative gain-reference error of this session (1 = perfect).
    xrays : bool
        Plant X-ray hits.

    Returns
    -------
    counts : (H, W) float32
    xray_coords : (n, 2) int array
    """
    camera = camera or Camera()
    gain = camera.gain_counts_per_e if gain_counts_per_e is None else float(gain_counts_per_e)
    lam = np.clip(intensity, 0, None).astype(np.float64) * electrons_per_pixel(dose_e_per_A2, pixel_scale_A)
    electrons = rng.poisson(lam).astype(np.float32)
    del lam
    counts = apply_mtf(electrons, camera)
    counts *= np.float32(gain)
    if gain_error is not None:
        counts *= gain_error.astype(np.float32)
    counts += rng.normal(0.0, camera.read_noise_counts, counts.shape).astype(np.float32)
    coords = plant_xrays(counts, camera, rng) if xrays else np.empty((0, 2), int)
    return counts, coords
