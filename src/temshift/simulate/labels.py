"""Exact ground-truth labels from the particles alone.

A particle's label is its projected footprint: the region of the frame where the beam
crosses the particle. The particles are convex (ellipsoids, faceted for fcc), so the
footprint is exactly the convex hull of the projected atom centres grown by the atomic
radius -- the same region where the particle's projected potential exceeds the vacuum
level, with the atomic-scale surface steps and the dips between surface columns bridged
(by at most ~1.6 A), as an annotator's outline would. It is computed from atom coordinates,
never from the (noisy) image, so it is correct for every orientation and at every pixel
scale; it is filled by construction.
A pixel is particle when its centre lies inside the footprint of any particle.

Detector pixel (i, j) is centred at (y, x) = (i, j) * pixel_scale_A (see `optics`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def footprint_polygon(xy_A: np.ndarray, radius_A: float, n_arc: int = 24) -> np.ndarray:
    """Convex footprint of projected atom centres grown by `radius_A`.

    Parameters
    ----------
    xy_A : (n, 2) array
        Projected atom positions (x, y) in Angstrom.
    radius_A : float
        Atomic radius.

    Returns
    -------
    (k, 2) array
        Polygon vertices (x, y), counter-clockwise. The arcs are circumscribed polygons
        (never inside the true disc).
    """
    from scipy.spatial import ConvexHull

    hull = xy_A[ConvexHull(xy_A).vertices]
    ang = np.linspace(0, 2 * np.pi, n_arc, endpoint=False)
    circle = radius_A / np.cos(np.pi / n_arc) * np.stack([np.cos(ang), np.sin(ang)], 1)
    grown = (hull[:, None, :] + circle[None, :, :]).reshape(-1, 2)
    return grown[ConvexHull(grown).vertices]


def rasterize(polygon_xy_A: np.ndarray, shape, pixel_scale_A: float, out: np.ndarray | None = None) -> np.ndarray:
    """Set pixels whose centres fall inside the polygon (uint8 0/1)."""
    from skimage.draw import polygon as draw_polygon

    out = np.zeros(shape, np.uint8) if out is None else out
    rr, cc = draw_polygon(polygon_xy_A[:, 1] / pixel_scale_A, polygon_xy_A[:, 0] / pixel_scale_A, shape=shape)
    out[rr, cc] = 1
    return out


def particle_label(particles, shape, pixel_scale_A: float) -> np.ndarray:
    """Label mask of a frame.

    Parameters
    ----------
    particles : iterable of (xy_A, radius_A)
        Projected atom positions of each particle in frame coordinates and its atomic radius.
    shape : (int, int)
        Frame shape in detector pixels.
    pixel_scale_A : float

    Returns
    -------
    (H, W) uint8
        1 = particle, 0 = support.
    """
    out = np.zeros(shape, np.uint8)
    for xy, radius in particles:
        rasterize(footprint_polygon(np.asarray(xy, float), radius), shape, pixel_scale_A, out)
    return out


# ----------------------------------------------------------------------------- human labelling (optional)


@dataclass(frozen=True)
class LabelingModel:
    """An optional model of a human annotator; the default (`enabled=False`) gives exact labels.

    Two errors of hand labels drawn on the noisy frame:

    * **missed faint particles**: a particle is labelled only when it is visible, by the
      Rose criterion (A. Rose, "The sensitivity performance of the human eye on an absolute
      scale", J. Opt. Soc. Am. 38, 196-208, 1948: an object of contrast C over N detected
      electrons is seen when ``C sqrt(N) >= k``, k ~ 5). Here C is the particle's mean
      darkening against the background in the noise-free image and N the electrons over its
      footprint times the camera's DQE(0), so that particles are missed at low dose first
      (and particles cut by the frame edge, whose visible sliver is small);
    * **outline error**: the drawn outline is the exact footprint moved outward by
      `boundary_offset_nm` (negative: drawn inside) plus a smooth random radial displacement
      of rms `boundary_jitter_nm` (harmonics 2-6 of the polar angle, random phases).

    Attributes
    ----------
    enabled : bool
        Apply the model (False: exact labels).
    rose_threshold : float
        Visibility threshold k of the Rose criterion (dimensionless).
    boundary_offset_nm : float
        Mean signed outline offset, nm.
    boundary_jitter_nm : float
        Rms of the smooth outline displacement, nm.
    """

    enabled: bool = False
    rose_threshold: float = 5.0
    boundary_offset_nm: float = 0.0
    boundary_jitter_nm: float = 0.0

    def as_dict(self) -> dict:
        """Parameters as a plain dict."""
        return asdict(self)


def drawn_outline(polygon_xy_A: np.ndarray, offset_A: float, jitter_A: float, rng) -> np.ndarray:
    """Move a convex polygon's vertices radially (about its centroid) by an offset plus smooth jitter.

    Parameters
    ----------
    polygon_xy_A : (k, 2) array
        Vertices (x, y) in Angstrom.
    offset_A : float
        Mean radial displacement (positive = outward).
    jitter_A : float
        Rms of the angle-dependent part (harmonics 2-6 of equal weight).
    rng : numpy.random.Generator
    """
    # densify so that the displacement follows the angle, not the few hull vertices
    closed = np.vstack([polygon_xy_A, polygon_xy_A[:1]])
    pts = np.asarray(
        [
            closed[i] + (closed[i + 1] - closed[i]) * t
            for i in range(len(polygon_xy_A))
            for t in np.linspace(0, 1, 8, endpoint=False)
        ]
    )
    c = pts.mean(0)
    d = pts - c
    r = np.hypot(d[:, 0], d[:, 1])
    theta = np.arctan2(d[:, 1], d[:, 0])
    orders = np.arange(2, 7)
    amp = jitter_A * np.sqrt(2.0 / len(orders))  # rms of a sum of cosines of equal amplitude
    phase = rng.uniform(0, 2 * np.pi, len(orders))
    dr = offset_A + amp * np.cos(orders[None, :] * theta[:, None] + phase[None, :]).sum(1)
    scale = np.clip(r + dr, 0.0, None) / np.maximum(r, 1e-9)
    return c + d * scale[:, None]


def particle_visibility(intensity: np.ndarray, masks, electrons_per_px: float, dqe_zero: float) -> np.ndarray:
    """Rose signal-to-noise ratio ``C sqrt(N DQE(0))`` of each particle in a noise-free image.

    Parameters
    ----------
    intensity : (H, W) float array
        Noise-free pixel-integrated intensity (1 = beam).
    masks : sequence of (H, W) bool arrays
        Each particle's footprint in the frame.
    electrons_per_px : float
        Mean electrons per pixel of the unscattered beam.
    dqe_zero : float
        Camera DQE(0).
    """
    any_particle = np.zeros(intensity.shape, bool)
    for m in masks:
        any_particle |= m
    bg = float(np.mean(intensity[~any_particle])) if (~any_particle).any() else 1.0
    out = []
    for m in masks:
        n_px = int(m.sum())
        if n_px == 0:
            out.append(0.0)
            continue
        contrast = abs(1.0 - float(intensity[m].mean()) / bg)
        out.append(contrast * np.sqrt(n_px * electrons_per_px * bg * dqe_zero))
    return np.asarray(out, float)


def human_label(
    particles,
    shape,
    pixel_scale_A: float,
    model: LabelingModel,
    rng,
    intensity=None,
    electrons_per_px: float | None = None,
    dqe_zero: float = 1.0,
):
    """Label mask as a human annotator following `model` would draw it.

    Parameters
    ----------
    particles : iterable of (xy_A, radius_A)
        As for `particle_label`.
    shape : (int, int)
    pixel_scale_A : float
    model : LabelingModel
    rng : numpy.random.Generator
    intensity : (H, W) array, optional
        Noise-free image, needed for the visibility test (skipped when None).
    electrons_per_px : float, optional
        Beam electrons per pixel (visibility test).
    dqe_zero : float
        Camera DQE(0) (visibility test).

    Returns
    -------
    label : (H, W) uint8
    labelled : (n,) bool array
        Which particles were labelled.
    visibility : (n,) float array
        Their Rose SNR (nan without `intensity`).
    """
    polys = [footprint_polygon(np.asarray(xy, float), radius) for xy, radius in particles]
    if intensity is not None and electrons_per_px is not None:
        masks = [rasterize(p, shape, pixel_scale_A).astype(bool) for p in polys]
        vis = particle_visibility(intensity, masks, electrons_per_px, dqe_zero)
        labelled = vis >= model.rose_threshold
    else:
        vis = np.full(len(polys), np.nan)
        labelled = np.ones(len(polys), bool)
    out = np.zeros(shape, np.uint8)
    for p, keep in zip(polys, labelled):
        if keep:
            drawn = drawn_outline(p, model.boundary_offset_nm * 10, model.boundary_jitter_nm * 10, rng)
            rasterize(drawn, shape, pixel_scale_A, out)
    return out, labelled, vis
