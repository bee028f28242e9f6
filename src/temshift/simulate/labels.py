"""Exact ground-truth labels from the particles alone.

A particle's label is its projected footprint: the region of the frame where the beam
crosses the particle. The particles are convex (ellipsoids, faceted for fcc), so the
footprint is exactly the convex hull of the projected atom centres grown by the atomic
radius -- the same region where the particle's projected potential exceeds the vacuum
level, with the atomic-scale surface steps and the dips between surface columns bridged
(by at most ~1.6 A), as an annotator's outline would. It is computed from atom coordinates, never from the (noisy) image, so it is
correct for every orientation and at every pixel scale; it is filled by construction.
A pixel is particle when its centre lies inside the footprint of any particle.

Detector pixel (i, j) is centred at (y, x) = (i, j) * pixel_scale_A (see `optics`).
"""

from __future__ import annotations

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
