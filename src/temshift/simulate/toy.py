"""Toy frames: seconds-fast numpy stand-ins for HRTEM frames, for tests, benchmarks and the demo.

No physics: particles are discs with lattice fringes (~0.235 nm, Au 111) at random positions
and orientations; counts are Poisson. They are good enough to exercise readers, preprocessing,
datasets, training and prediction, never to measure how a model generalizes (use
:func:`temshift.simulate.simulate_frame` for that). Every output is a pure function of its
arguments (``numpy.random.default_rng(seed)``).

* :func:`toy_frame` -- a raw camera-like frame: bright fringed discs on a flat support under a
  tilted illumination, with a few x-ray spikes (what the demo and the benchmarks use).
* :func:`toy_support_frame` -- a raw frame with particles darker than an amorphous, textured
  support (mass-thickness contrast), 10 counts per electron (what the prediction and shift
  tests use).
* :func:`toy_patches` -- already standardized patches and labels, as a dataset holds them
  (what the training tests use).
* :func:`write_toy_repository` -- toy frames, labels and ``catalog.csv`` in the published layout.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_GROUPS", "toy_frame", "toy_patches", "toy_support_frame", "write_toy_repository"]

AU_111_NM = 0.235
"""Lattice-fringe period of the toy particles, nm."""

DEFAULT_GROUPS: tuple[dict, ...] = (
    {
        "material": "Au",
        "dose_e_per_A2": 423,
        "pixel_scale_nm": 0.02,
        "folder": "2021_08_26 5nm Au on C/UTC",
        "date": "08/26/21",
    },
    {
        "material": "Au",
        "dose_e_per_A2": 80,
        "pixel_scale_nm": 0.02,
        "folder": "2021_09_02 5nm Au low dose",
        "date": "09/02/21",
    },
)
"""Catalog groups of :func:`write_toy_repository` by default (two doses of 5 nm Au)."""


def _discs(rng: np.random.Generator, size: int, radius_px: float, n: int) -> Iterator[tuple[np.ndarray, float]]:
    """`n` discs of `radius_px` inside a `size` frame: (boolean mask, fringe orientation in rad) each.

    The draws per disc are centre (y, x) then orientation, in this order, so that a frame is
    reproducible from its seed.
    """
    yy, xx = np.ogrid[:size, :size]
    for _ in range(n):
        cy, cx = rng.uniform(radius_px, size - radius_px, 2)
        theta = rng.uniform(0, np.pi)
        yield (yy - cy) ** 2 + (xx - cx) ** 2 <= radius_px**2, theta


def toy_frame(size: int = 1024, dose_e_per_A2: float = 423.0, pixel_scale_nm: float = 0.02,
              n_particles: int = 3, diameter_nm: float = 5.0,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A raw toy frame and its mask: bright fringed discs, tilted illumination, 3 x-ray spikes.

    Parameters
    ----------
    size : int
        Frame side in pixels.
    dose_e_per_A2 : float
        Electron dose, e/A^2; mean counts per pixel = dose * (10 * pixel_scale_nm)^2.
    pixel_scale_nm : float
        Pixel size, nm.
    n_particles : int
        Discs placed at random (they may overlap).
    diameter_nm : float
        Disc diameter, nm.
    seed : int
        Random seed.

    Returns
    -------
    frame : (size, size) float32
        Counts (one count per electron).
    mask : (size, size) uint8
        1 inside a disc.
    """
    rng = np.random.default_rng(seed)
    counts = dose_e_per_A2 * (10.0 * pixel_scale_nm) ** 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    illum = 1.0 + 0.3 * x - 0.2 * y + 0.1 * x * y
    mask = np.zeros((size, size), np.uint8)
    contrast = np.zeros((size, size), np.float32)
    yy, xx = np.ogrid[:size, :size]
    k = 2 * np.pi / (AU_111_NM / pixel_scale_nm)
    for disc, theta in _discs(rng, size, 0.5 * diameter_nm / pixel_scale_nm, n_particles):
        mask |= disc
        fringes = 0.5 + 0.5 * np.cos(k * (np.cos(theta) * xx + np.sin(theta) * yy))
        contrast = np.where(disc, 0.25 + 0.25 * fringes, contrast)
    frame = rng.poisson(counts * illum * (1.0 + contrast)).astype(np.float32)
    for _ in range(3):  # x-ray spikes
        frame[rng.integers(1, size - 1), rng.integers(1, size - 1)] += rng.uniform(5000, 20000)
    return frame, mask


def toy_support_frame(size: int = 1024, dose_e_per_A2: float = 423.0, pixel_scale_nm: float = 0.02,
                      spacing_nm: float = AU_111_NM, radius_nm: float = 1.0, n_particles: int = 3,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A raw toy frame and its label: dark fringed discs on an amorphous, textured support.

    The support's intensity varies by 15 % (Gaussian noise smoothed over 0.1 nm, a stand-in
    for amorphous-carbon phase contrast); inside a particle the intensity is 0.85 with fringes
    of amplitude 0.12. Counts are Poisson electrons times a gain of 10 counts per electron.

    Parameters
    ----------
    size : int
        Frame side in pixels.
    dose_e_per_A2 : float
        Electron dose, e/A^2 (electrons per pixel = dose * (10 * pixel_scale_nm)^2).
    pixel_scale_nm : float
        Pixel size, nm.
    spacing_nm : float
        Lattice-fringe period, nm.
    radius_nm : float
        Particle radius, nm.
    n_particles : int
        Discs placed at random.
    seed : int
        Random seed.

    Returns
    -------
    counts : (size, size) float32
    label : (size, size) uint8
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    texture = ndi.gaussian_filter(rng.normal(size=(size, size)).astype(np.float32), 0.1 / pixel_scale_nm)
    intensity = 1.0 + 0.15 * texture / texture.std()
    label = np.zeros((size, size), np.uint8)
    period = spacing_nm / pixel_scale_nm
    for d, theta in _discs(rng, size, radius_nm / pixel_scale_nm, n_particles):
        phase = 2 * np.pi * (yy[d] * np.cos(theta) + xx[d] * np.sin(theta)) / period
        intensity[d] = 0.85 + 0.12 * np.cos(phase)
        label[d] = 1
    e_per_px = dose_e_per_A2 * (pixel_scale_nm * 10.0) ** 2
    counts = rng.poisson(intensity * e_per_px).astype(np.float32) * 10.0
    return counts, label


def toy_patches(n: int = 40, size: int = 64, seed: int = 0, noise: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Standardized toy patches and their labels, as a dataset file holds them.

    Each patch has 1-3 discs (radius 5-11 pixels, fringe period 3.5 pixels, darker on
    average) on Gaussian noise of standard deviation `noise`, then is standardized to zero
    mean and unit variance.

    Returns
    -------
    images : (n, size, size) float32
    labels : (n, size, size) uint8
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    images = np.empty((n, size, size), np.float32)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        img = rng.normal(0, noise, (size, size)).astype(np.float32)
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(8, size - 8, 2)
            r = rng.uniform(5, 11)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            angle = rng.uniform(0, np.pi)
            fringes = np.cos(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / 3.5)
            img = np.where(disc, img - 0.6 + 0.9 * fringes, img)
            labels[i][disc] = 1
        images[i] = (img - img.mean()) / img.std()
    return images, labels


def write_toy_repository(
    out: str | Path, groups: Sequence[dict] | None = None, frames_per_group: int = 2, size: int = 1024, seed: int = 0
) -> Path:
    """Write :func:`toy_frame` frames (``.tif``), labels and ``catalog.csv`` in the published layout.

    Parameters
    ----------
    out : str or Path
        Repository root.
    groups : sequence of dict, optional
        Each with ``material``, ``dose_e_per_A2``, ``pixel_scale_nm``, ``folder``, ``date``
        (default :data:`DEFAULT_GROUPS`).
    frames_per_group : int
        Frames written per group; frame ``k`` of the whole repository uses seed ``seed + k``.
    size : int
        Frame side in pixels.
    seed : int
        Seed of the first frame.

    Returns
    -------
    Path
        The written ``catalog.csv``.
    """
    import pandas as pd

    from temshift.catalog import Catalog
    from temshift.io import write_label_png, write_tiff_frame

    out = Path(out)
    rows, k = [], 0
    for g in groups or DEFAULT_GROUPS:
        for i in range(frames_per_group):
            stem = f"{g['material']}_{g['dose_e_per_A2']}e_{i + 1:02d}"
            frame, mask = toy_frame(size, g["dose_e_per_A2"], g["pixel_scale_nm"], seed=seed + k)
            k += 1
            write_tiff_frame(out / g["folder"] / f"{stem}.tif", frame, g["pixel_scale_nm"])
            write_label_png(out / g["folder"] / "Labels" / f"{stem}_label.png", mask)
            rows.append({
                "File name": f"{stem}.tif", "Date": g["date"], "Material": g["material"],
                "Nanoparticle Size (nm)": 5, "Nanoparticle Shape": "Sphere", "Support": "UT Carbon",
                "Instrument": "Synthetic", "Dosage (e/A2)": g["dose_e_per_A2"],
                "Pixel Scale (nm)": g["pixel_scale_nm"], "Folder": g["folder"],
            })  # fmt: skip
    return Catalog(pd.DataFrame(rows), source="synthetic").to_published_csv(out / "catalog.csv")
