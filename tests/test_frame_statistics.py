"""The faster frame statistics give exactly the figures of their straightforward definitions."""

from __future__ import annotations

import numpy as np
import pytest

from temshift.simulate.toy import toy_support_frame


def test_local_maxima_match_scipy_find_peaks():
    from scipy.signal import find_peaks

    from temshift.datasets.statistics import local_maxima

    rng = np.random.default_rng(0)
    cases = [
        np.array([]),
        np.array([1.0]),
        np.array([1.0, 2.0]),
        np.array([0, 1, 1, 0.0]),
        np.array([0, 1, 1, 1, 0.0]),
        np.array([1, 1, 1.0]),
        np.array([2, 1, 2.0]),
        np.array([0, 2, 2, 3, 3, 1, 1, 4, 0.0]),
    ]
    cases += [rng.integers(0, 4, size=n).astype(float) for n in (5, 17, 64, 255)]  # many plateaus
    cases += [rng.normal(size=n) for n in (3, 10, 256)]
    for x in cases:
        np.testing.assert_array_equal(local_maxima(x), find_peaks(x)[0], err_msg=str(x))


def _radial_log_power_reference(tile):
    """The definition, written out (full FFT, per-call window and bins)."""
    tile = np.asarray(tile, dtype=np.float64)
    n = min(tile.shape)
    tile = tile[:n, :n] - tile[:n, :n].mean()
    win = np.hanning(n)
    power = np.abs(np.fft.fft2(tile * np.outer(win, win))) ** 2
    f = np.fft.fftfreq(n)
    idx = np.rint(np.sqrt(f[:, None] ** 2 + f[None, :] ** 2) * n).astype(np.int64)
    keep = idx < n // 2
    sums = np.bincount(idx[keep], weights=power[keep], minlength=n // 2)
    counts = np.bincount(idx[keep], minlength=n // 2)
    return np.log(np.maximum(sums / np.maximum(counts, 1), 1e-30))


def test_radial_log_power_is_the_definition_bit_for_bit():
    from temshift.datasets.statistics import radial_log_power

    rng = np.random.default_rng(1)
    for shape in ((64, 64), (96, 80), (128, 128)):
        tile = rng.normal(size=shape).astype(np.float32)
        np.testing.assert_array_equal(radial_log_power(tile), _radial_log_power_reference(tile))


@pytest.mark.parametrize("with_mask", [False, True])
def test_image_statistics_do_not_depend_on_the_thread_count(monkeypatch, with_mask):
    from temshift.datasets import statistics as st
    from temshift.preprocess import PreprocessSettings, preprocess_frame

    raw, label = toy_support_frame(512, n_particles=8, seed=2)
    image = preprocess_frame(raw, PreprocessSettings())
    mask = label if with_mask else None
    threaded = st.image_statistics(image, mask, tile=128)
    monkeypatch.setattr(st.os, "cpu_count", lambda: 1)
    serial = st.image_statistics(image, mask, tile=128)
    assert threaded == serial
    assert threaded["n_tiles"] == 16 and threaded["fringe_period_px"] == pytest.approx(0.235 / 0.02, rel=0.05)
    if with_mask:
        assert threaded["contrast"] is not None
