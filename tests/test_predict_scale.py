"""Pixel-scale matching: factors, round-trip shapes, value preservation."""

from __future__ import annotations

import numpy as np
import pytest

from temshift.preprocess.scale import resample_image, resample_to_shape, zoom_factor


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


def _detector_frame(dose_e_per_A2, pixel_A, n, seed):
    """Flat-beam shot-noise frame (electrons) with a smooth object, at one pixel size."""
    extent = n * pixel_A
    yy, xx = (np.mgrid[:n, :n] + 0.5) * pixel_A
    obj = 1 - 0.3 * np.exp(-((yy - extent / 2) ** 2 + (xx - extent / 2) ** 2) / (2 * (extent / 6) ** 2))
    return np.random.default_rng(seed).poisson(dose_e_per_A2 * pixel_A**2 * obj).astype(np.float32)


def test_restore_noise_gives_a_resampled_frame_the_pixel_noise_of_the_finer_detector():
    from temshift.preprocess.noise import noise_sd
    from temshift.preprocess.scale import restore_noise

    fine = _detector_frame(400, 0.2, 512, 1)  # 0.02 nm/px
    coarse = _detector_frame(400, 0.4, 256, 2)  # 0.04 nm/px, same dose and field
    fine_rel = noise_sd(fine) / fine.mean()
    up = resample_image(coarse, 2.0)
    assert noise_sd(up) / up.mean() < 0.6 * fine_rel  # interpolation smooths the noise away
    restored = restore_noise(up, coarse, 2.0)
    assert noise_sd(restored) / restored.mean() == pytest.approx(fine_rel, rel=0.1)
    assert np.array_equal(restored, restore_noise(up, coarse, 2.0))  # reproducible
    assert abs(restored.mean() - up.mean()) < 0.01 * up.mean()  # signal untouched on average


def test_restore_noise_never_removes_noise():
    from temshift.preprocess.scale import restore_noise

    img = np.random.default_rng(0).normal(size=(128, 128)).astype(np.float32)
    noisy = img + np.random.default_rng(1).normal(size=img.shape).astype(np.float32) * 5
    assert np.array_equal(restore_noise(noisy, img, 1.0), noisy)
