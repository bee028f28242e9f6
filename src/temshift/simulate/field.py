"""Where the particles lie in the field of view: sparse, partly clustered.

The density parameter is the particle **area fraction** (projected particle area / frame
area). A real 5 nm Au frame at 0.02 nm/pixel (4096^2, 82 nm across) holds about 8
particles covering 2.2 % of its area (`BASE_AREA_FRACTION`). Larger particles are
deposited more densely by area in the real repository (assumed: 10 nm x 1.6, 20 nm x 2.5).
When frames are shrunk (``--frame-size`` < 4096) the area fraction is raised by
4096 / frame_size (capped at `MAX_AREA_FRACTION`) so that a 512^2 patch still holds a
particle about as often as a patch of a full frame would after the dataset builder's
empty-patch filter.

Placement: particle centres are drawn over the frame grown by ~a third of a diameter
(particles cut by the frame edge occur, as in real frames); with probability
`CLUSTER_FRACTION` a particle is put next to an already placed one (gap 0.2-1.0 nm, the
ligand shell), otherwise uniformly; particles never overlap in projection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BASE_AREA_FRACTION = 0.022
MAX_AREA_FRACTION = 0.15
CLUSTER_FRACTION = 0.4
FULL_FRAME_PX = 4096


def default_area_fraction(diameter_nm: float, frame_size_px: int = FULL_FRAME_PX, density: float = 1.0) -> float:
    """Area fraction for a nominal size and frame size (see module docstring).

    Parameters
    ----------
    diameter_nm : float
        Nominal particle diameter.
    frame_size_px : int
        Frame side in pixels.
    density : float
        Multiplier of the default.
    """
    size_factor = 1.0 if diameter_nm <= 6 else (1.6 if diameter_nm <= 12 else 2.5)
    shrink = max(1.0, FULL_FRAME_PX / float(frame_size_px))
    return float(min(MAX_AREA_FRACTION, BASE_AREA_FRACTION * size_factor * shrink) * density)


@dataclass
class Placement:
    """Particle centres and radii in frame coordinates (Angstrom)."""

    y_A: np.ndarray
    x_A: np.ndarray
    radius_A: np.ndarray
    clustered: np.ndarray

    def __len__(self) -> int:
        return len(self.x_A)


def expected_count(area_fraction: float, extent_A: float, diameter_A: float) -> float:
    """Expected number of particles for an area fraction over a square field."""
    return area_fraction * extent_A**2 / (np.pi * diameter_A**2 / 4)


def place_particles(
    radii_A, extent_A: float, rng, cluster_fraction: float = CLUSTER_FRACTION, max_tries: int = 200
) -> Placement:
    """Place particles of the given bounding radii without overlap.

    Parameters
    ----------
    radii_A : sequence of float
        Bounding radius of each particle, in placement order.
    extent_A : float
        Side of the square field.
    rng : numpy.random.Generator
    cluster_fraction : float
        Probability that a particle is placed touching (across a ligand gap) a previous one.

    Returns
    -------
    Placement
        Particles that could be placed (a crowded field may drop some).
    """
    ys: list[float] = []
    xs: list[float] = []
    rs: list[float] = []
    cl: list[bool] = []

    def free(y, x, r):
        if not ys:
            return True
        d = np.hypot(np.asarray(ys) - y, np.asarray(xs) - x)
        return bool((d >= np.asarray(rs) + r + 2.0).all())

    for r in radii_A:
        r = float(r)
        lo, hi = -r / 1.5, extent_A + r / 1.5
        placed = False
        if ys and rng.random() < cluster_fraction:
            for _ in range(max_tries // 4):
                k = int(rng.integers(len(ys)))
                ang = rng.uniform(0, 2 * np.pi)
                dist = rs[k] + r + rng.uniform(2.0, 10.0)
                y, x = ys[k] + dist * np.sin(ang), xs[k] + dist * np.cos(ang)
                if lo <= y <= hi and lo <= x <= hi and free(y, x, r):
                    ys.append(y)
                    xs.append(x)
                    rs.append(r)
                    cl.append(True)
                    placed = True
                    break
        if not placed:
            for _ in range(max_tries):
                y, x = rng.uniform(lo, hi, 2)
                if free(y, x, r):
                    ys.append(y)
                    xs.append(x)
                    rs.append(r)
                    cl.append(False)
                    break
    return Placement(np.asarray(ys), np.asarray(xs), np.asarray(rs), np.asarray(cl, bool))
