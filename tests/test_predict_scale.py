"""Pixel-scale matching: factors, round-trip shapes, value preservation."""

from __future__ import annotations

import numpy as np
import pytest

from temshift.predict.scale import resample_image, resample_to_shape, zoom_factor


def test_zoom_factor():
    assert zoom_factor(0.033, 0.02) == pytest.approx(1.65)
    assert zoom_factor(0.0201, 0.02) == 1.0  # within calibration tolerance
    assert zoom_factor(None, 0.02) == 1.0 and zoom_factor(0.02, None) == 1.0


@pytest.mark.parametrize("shape,factor", [((4096 // 8, 4096 // 8), 1.65), ((333, 517), 0.6), ((100, 100), 2.1)])
def test_round_trip_shapes(shape, factor):
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    up = resample_image(img, factor)
    assert up.shape == (round(shape[0] * factor), round(shape[1] * factor))
    assert up.dtype == np.float32
    back = resample_to_shape(np.stack([up, 1 - up]), shape)
    assert back.shape == (2, *shape)
    assert resample_to_shape(up, shape).shape == shape


def test_smooth_content_survives_round_trip_and_probabilities_stay_in_range():
    yy, xx = np.mgrid[:256, :256]
    img = (0.5 + 0.5 * np.sin(xx / 20.0) * np.cos(yy / 15.0)).astype(np.float32)
    for f in (1.65, 0.6):
        back = resample_to_shape(resample_image(img, f), img.shape)
        assert np.abs(back - img)[8:-8, 8:-8].max() < 0.05
        assert back.min() >= -1e-6 and back.max() <= 1 + 1e-6


def test_no_factor_no_copy_semantics():
    img = np.ones((10, 10), np.float32)
    assert resample_image(img, 1.0) is img or np.array_equal(resample_image(img, 1.0), img)
    assert resample_to_shape(img, (10, 10)) is img
