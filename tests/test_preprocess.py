"""Preprocessing steps against hand-computed cases and straightforward reference code."""

import numpy as np
import pytest
from pydantic import ValidationError

from temshift.preprocess import (
    PreprocessSettings,
    bernstein_basis,
    block_mean,
    extract_patches,
    fit_coefficients,
    fit_illumination,
    flatfield_correct,
    mean_std,
    min_particle_pixels,
    preprocess_frame,
    remove_xrays,
    rescale,
)
from temshift.preprocess.xrays import clip_and_find_outliers


# ------------------------------------------------------------------ x-rays
def reference_xrays(img, threshold):
    """The protocol, one pixel at a time (slow, obviously right)."""
    x = np.maximum(np.asarray(img, np.float64), 0)
    h, w = x.shape
    limit = np.median(x) + threshold
    mean = x.mean()
    for _ in range(2):
        rr, cc = np.nonzero(x > limit)
        if rr.size == 0:
            break
        for k in np.argsort(-x[rr, cc], kind="stable"):
            r, c = rr[k], cc[k]
            if r in (0, h - 1) or c in (0, w - 1):
                x[r, c] = mean
            else:
                win = x[r - 1 : r + 2, c - 1 : c + 2]
                x[r, c] = (win.sum() - win[1, 1]) / 8
    return x


def test_planted_spike_replaced_by_mean_of_8_neighbours():
    img = np.full((9, 9), 100.0, np.float32)
    img[3:6, 3:6] = np.arange(9).reshape(3, 3) + 100  # neighbours 100..108
    img[4, 4] = 50000.0
    out = remove_xrays(img, 1500)
    expected = (100 + 101 + 102 + 103 + 105 + 106 + 107 + 108) / 8
    assert out[4, 4] == pytest.approx(expected)
    untouched = np.ones_like(img, bool)
    untouched[4, 4] = False
    np.testing.assert_array_equal(out[untouched], img[untouched])
    assert out.dtype == np.float32 and img[4, 4] == 50000.0  # input not modified


def test_negatives_clipped_and_border_spike_gets_image_mean():
    img = np.full((6, 7), 10.0, np.float32)
    img[1, 1] = -5.0
    img[0, 3] = 9000.0
    out = remove_xrays(img, 1500)
    assert out[1, 1] == 0.0
    clipped_mean = (10.0 * 40 + 0.0 + 9000.0) / 42
    assert out[0, 3] == pytest.approx(clipped_mean)


def test_adjacent_spikes_brightest_first():
    img = np.full((8, 8), 100.0, np.float32)
    img[3, 3], img[3, 4] = 9000.0, 5000.0
    out = remove_xrays(img, 1500)
    a = (7 * 100 + 5000) / 8  # brighter one first: its neighbour still holds 5000
    b = (7 * 100 + a) / 8  # then the dimmer one sees the replaced value
    assert out[3, 3] == pytest.approx(a)
    assert out[3, 4] == pytest.approx(b)


def test_second_pass_when_outliers_remain():
    img = np.full((9, 9), 0.0, np.float32)
    img[3:6, 3:6] = 20000.0  # a block: the first sweep leaves some above the limit
    img[4, 4] = 30000.0
    out = remove_xrays(img, 1500)
    np.testing.assert_allclose(out, reference_xrays(img, 1500), rtol=1e-6)
    assert (out[3:6, 3:6] > 1500).any()  # only two passes, as published


@pytest.mark.parametrize("seed", range(6))
def test_xrays_match_reference_on_clusters(seed):
    rng = np.random.default_rng(seed)
    img = rng.poisson(200, (64, 80)).astype(np.float32)
    for _ in range(12):  # clusters of random shapes and brightness, some on the border
        r, c = rng.integers(0, 62), rng.integers(0, 78)
        img[r : r + rng.integers(1, 4), c : c + rng.integers(1, 4)] += rng.uniform(1000, 20000)
    img[rng.integers(0, 64), 0] = 30000.0
    img[10, 10:13] = 5000.0  # equal values: ties go in raster order
    np.testing.assert_allclose(remove_xrays(img, 1500), reference_xrays(img, 1500), rtol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda r: r.poisson(300, (101, 99)),  # counts, odd size
        lambda r: r.poisson(300, (100, 100)),  # counts, even size
        lambda r: r.normal(50, 10, (128, 128)),  # continuous
        lambda r: r.poisson(0.3, (128, 128)),  # mostly zeros
        lambda r: np.sort(r.normal(0, 1, (64, 64)), axis=None).reshape(64, 64),  # sorted: strided sample is biased
    ],
)
def test_fast_median_is_exact(make):
    img = make(np.random.default_rng(1)).astype(np.float32)
    _, _, limit = clip_and_find_outliers(img, 0.0)
    assert limit == pytest.approx(float(np.median(np.maximum(img, 0).astype(np.float64))), abs=1e-6)


def test_no_outliers_returns_clipped_copy():
    img = np.arange(12, dtype=np.float64).reshape(3, 4) - 2
    out = remove_xrays(img, 1500)
    np.testing.assert_array_equal(out, np.maximum(img, 0))


# ------------------------------------------------------------------ flat field
def test_bernstein_basis_partition_of_unity():
    b = bernstein_basis(11, 2)
    x = np.linspace(0, 1, 11)
    np.testing.assert_allclose(b.sum(axis=1), 1.0)
    np.testing.assert_allclose(b[:, 1], 2 * x * (1 - x))


def test_block_mean_matches_reshape():
    img = np.random.default_rng(0).random((66, 41)).astype(np.float32)
    ref = img[:64, :40].reshape(16, 4, 10, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(block_mean(img, 4), ref, rtol=1e-6)


def _reference_fit(img, iterations=2):
    """Full (H*W, 9) basis, block-mean downscale, weighted lstsq (the straightforward way)."""
    h, w = img.shape
    by, bx = bernstein_basis(h, 2), bernstein_basis(w, 2)
    basis = np.einsum("ia,jb->ijab", by, bx).reshape(h, w, 9)
    small = img.reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3)).reshape(-1)
    a = basis.reshape(h // 4, 4, w // 4, 4, 9).mean(axis=(1, 3)).reshape(-1, 9)
    wts = np.ones_like(small)
    for _ in range(iterations):
        s = np.sqrt(wts)
        coef = np.linalg.lstsq(a * s[:, None], small * s, rcond=None)[0]
        e = (a @ coef - small) ** 2
        wts = np.exp(-3 * e / (2 * e.mean()))
    return coef.reshape(3, 3), (basis.reshape(-1, 9) @ coef).reshape(h, w)


def test_fit_matches_straightforward_weighted_lstsq():
    rng = np.random.default_rng(3)
    img = rng.poisson(500 * (1 + 0.5 * rng.random((1, 1))), (96, 128)).astype(np.float64)
    img[20:40, 30:60] *= 0.6  # a "particle" the weights should discount
    coef_ref, bg_ref = _reference_fit(img)
    np.testing.assert_allclose(fit_coefficients(img), coef_ref, rtol=1e-5)  # float32 grid sums
    np.testing.assert_allclose(fit_illumination(img), bg_ref, rtol=1e-5)


def test_known_illumination_recovered_and_divided_out_within_1_percent():
    rng = np.random.default_rng(4)
    h, w = 256, 320
    y = np.linspace(0, 1, h)[:, None]
    x = np.linspace(0, 1, w)[None, :]
    illum = 1.0 + 0.4 * x - 0.3 * y + 0.2 * x * y - 0.25 * (x - 0.5) ** 2  # degree <= 2 per axis
    img = rng.poisson(2000 * illum).astype(np.float32)
    bg = fit_illumination(img)
    assert np.abs(bg / (2000 * illum) - 1).max() < 0.01
    corrected = flatfield_correct(img)
    smooth = block_mean(corrected, 16)  # the corrected frame is flat: ~1 everywhere
    assert np.abs(smooth - 1).max() < 0.01
    assert corrected.dtype == np.float32


def test_flatfield_rejects_empty_frame():
    with pytest.raises(ValueError, match="not positive"):
        flatfield_correct(np.zeros((32, 32), np.float32))


# ------------------------------------------------------------------ rescale
def test_standardize_mean0_std1():
    img = np.random.default_rng(5).gamma(2.0, 100.0, (300, 200)).astype(np.float32) + 1000
    out = rescale(img, "standardize")
    assert abs(out.astype(np.float64).mean()) < 1e-5
    assert out.astype(np.float64).std() == pytest.approx(1.0, abs=1e-5)


def test_mean_std_matches_float64():
    img = np.random.default_rng(6).normal(1000.0, 0.5, (512, 700)).astype(np.float32)
    m, s = mean_std(img)
    assert m == pytest.approx(img.astype(np.float64).mean(), rel=1e-9)
    assert s == pytest.approx(img.astype(np.float64).std(), rel=1e-5)


def test_normalize_min0_max1():
    img = np.array([[2.0, 4.0], [6.0, 10.0]], np.float32)
    np.testing.assert_allclose(rescale(img, "normalize"), [[0, 0.25], [0.5, 1.0]])


def test_histogram_clips_1st_99th_percentile_then_normalizes():
    img = np.arange(101, dtype=np.float32).reshape(1, 101)  # percentiles 1 and 99 are 1 and 99
    out = rescale(img, "histogram")
    np.testing.assert_allclose(out[0], (np.clip(np.arange(101), 1, 99) - 1) / 98, atol=1e-7)
    assert out.min() == 0 and out.max() == 1


def test_none_and_constant_and_unknown():
    img = np.full((4, 4), 3.0)
    np.testing.assert_array_equal(rescale(img, "none"), img)
    for method in ("standardize", "normalize", "histogram"):
        np.testing.assert_array_equal(rescale(img, method), 0)
    with pytest.raises(ValueError, match="unknown rescale"):
        rescale(img, "zscore")


# ------------------------------------------------------------------ patches
def test_threshold_scales_with_area():
    assert min_particle_pixels(512) == 400
    assert min_particle_pixels(256) == 100
    assert min_particle_pixels(1024) == 1600


def test_patches_in_frame_order_with_threshold():
    img = np.arange(300 * 420, dtype=np.float32).reshape(300, 420)  # partial tiles at the edges
    lab = np.zeros((300, 420), np.uint8)
    lab[0:20, 0:20] = 1  # tile (0, 0): 400 pixels -> dropped ("400 or fewer")
    lab[0:1, 100:101] = 7  # tile (0, 1): 401 pixels with this one -> kept, any nonzero counts
    lab[0:20, 120:140] = 1
    lab[200:210, 300:341] = 1  # tile (2, 3): 410 pixels -> kept
    lab[290:300, 400:420] = 1  # partial tile: ignored
    patches, labels, coords = extract_patches(img, lab, 100, 400)
    np.testing.assert_array_equal(coords, [[0, 100], [200, 300]])
    np.testing.assert_array_equal(patches[1], img[200:300, 300:400])
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1}
    assert labels[0].sum() == 401


def test_patches_default_threshold():
    lab = np.zeros((256, 256), np.uint8)
    lab[:5, :5] = 1  # 25 pixels = 400 * (128 / 512)^2: dropped
    lab[128:141, 128:130] = 1  # 26: kept
    _, _, coords = extract_patches(np.zeros((256, 256)), lab, 128)
    np.testing.assert_array_equal(coords, [[128, 128]])


# ------------------------------------------------------------------ pipeline
def test_pipeline_equals_composition_of_steps():
    rng = np.random.default_rng(7)
    img = rng.poisson(400, (128, 160)).astype(np.float32)
    img[50, 60] = 40000
    for method in ("standardize", "normalize", "histogram", "none"):
        s = PreprocessSettings(rescale=method)
        expected = rescale(flatfield_correct(remove_xrays(img, 1500)), method)
        np.testing.assert_allclose(preprocess_frame(img, s), expected, rtol=1e-5, atol=1e-5)
    off = PreprocessSettings(xray_threshold=None, flatfield=False, rescale="none")
    np.testing.assert_array_equal(preprocess_frame(img, off), img)


def test_settings_validate():
    with pytest.raises(ValidationError):
        PreprocessSettings(rescale="zscore")
    with pytest.raises(ValidationError):
        PreprocessSettings(flatfeld=False)
    assert PreprocessSettings().xray_threshold == 1500


def test_saturated_plateau_matches_reference(monkeypatch):
    import temshift.preprocess.xrays as xr

    img = np.random.default_rng(8).poisson(100, (40, 40)).astype(np.float32)
    img[5:15, 8:20] = 65535.0  # equal values: a raster-order wavefront, many rounds
    img[0:3, 30:33] = 65535.0  # touching the border
    ref = reference_xrays(img, 1500)
    np.testing.assert_allclose(remove_xrays(img, 1500), ref, rtol=1e-6)
    monkeypatch.setattr(xr, "MAX_ROUNDS", 3)  # force the sequential finish
    np.testing.assert_allclose(remove_xrays(img, 1500), ref, rtol=1e-6)


def test_many_small_tiles_count_like_few_large():
    lab = (np.random.default_rng(9).random((512, 512)) > 0.99).astype(np.uint8)
    for p in (16, 256):  # 1024 tiles (tiled reduction) and 4 tiles (per-tile counts)
        _, labels, coords = extract_patches(np.zeros((512, 512)), lab, p, 0)
        ref = [(r, c) for r in range(0, 512, p) for c in range(0, 512, p) if lab[r : r + p, c : c + p].any()]
        assert [tuple(x) for x in coords] == ref
        assert all(labels[k].sum() == lab[r : r + p, c : c + p].sum() for k, (r, c) in enumerate(ref))


@pytest.mark.parametrize("seed", range(20))
def test_fast_median_exact_on_mixed_data(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(20, 700, 2)
    kind = seed % 4
    if kind == 0:  # few distinct values
        img = rng.integers(0, 4, (h, w)).astype(np.float32)
    elif kind == 1:  # integers plus a sprinkle of fractional values near the median
        img = rng.poisson(50, (h, w)).astype(np.float32)
        img.flat[rng.integers(0, img.size, img.size // 50)] = 50.5
    elif kind == 2:  # continuous, heavy tail
        img = rng.standard_cauchy((h, w)).astype(np.float32)
    else:  # counts with a gain: a few distinct non-integer levels
        img = (rng.poisson(3, (h, w)) * 7.3).astype(np.float32)
    _, _, limit = clip_and_find_outliers(img, 0.0)
    assert limit == pytest.approx(float(np.median(np.maximum(img, 0).astype(np.float64))), abs=1e-6)
