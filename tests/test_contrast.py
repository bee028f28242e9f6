"""The three particle-contrast statistics: named apart, each defined once (issue 13, point 3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from temshift.datasets.contrast import core_contrast, median_contrast, particle_contrast


def _patches(offset: float = -1.5, sd: float = 2.0):
    rng = np.random.default_rng(0)
    img = rng.normal(0.0, sd, (4, 64, 64)).astype(np.float32)
    lab = np.zeros((4, 64, 64), np.uint8)
    lab[:, 20:40, 20:40] = 1
    img[lab == 1] += offset
    return img, lab


def test_median_and_particle_contrast_share_the_median_difference():
    img, lab = _patches()
    diff = np.median(img[lab == 0]) - np.median(img[lab == 1])
    assert median_contrast(img, lab) == pytest.approx(float(diff))
    assert particle_contrast(img, lab) == pytest.approx(float(diff / img[lab == 0].std()))
    assert particle_contrast(img, lab) == pytest.approx(median_contrast(img, lab) / 2.0, rel=0.05)  # SD ~2


def test_contrast_is_nan_without_particles_or_background():
    img, lab = _patches()
    for labels in (np.zeros_like(lab), np.ones_like(lab)):
        assert math.isnan(median_contrast(img, labels)) and math.isnan(particle_contrast(img, labels))
    assert math.isnan(particle_contrast(np.ones_like(img), lab))  # constant background


def test_core_contrast_ignores_a_mask_edge_that_is_off_by_a_pixel():
    from scipy.ndimage import binary_dilation

    img, lab = _patches(offset=-3.0, sd=1.0)
    tile, mask = img[0].astype(np.float64), lab[0] != 0
    grown = binary_dilation(mask, iterations=1)  # a predicted mask one pixel too large
    exact = core_contrast(tile, mask, binary_dilation(mask, iterations=2))
    off = core_contrast(tile, grown, binary_dilation(grown, iterations=2))
    assert exact > 2.0 and off == pytest.approx(exact, rel=0.1)
