"""Particle statistics on hand-made masks of known discs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from temshift.predict.particles import combine_tables, particle_table, size_histogram_png, write_particle_csv


def disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def test_single_disc_measures():
    mask = disc((200, 300), 90, 140, 40)
    t = particle_table(mask, pixel_scale_nm=0.02)
    assert len(t) == 1
    row = t.iloc[0]
    assert row["centroid_row_px"] == pytest.approx(90, abs=0.01)
    assert row["centroid_col_px"] == pytest.approx(140, abs=0.01)
    assert row["centroid_x_nm"] == pytest.approx(140 * 0.02, abs=1e-3)
    assert row["area_px"] == mask.sum()
    assert row["area_nm2"] == pytest.approx(mask.sum() * 0.02**2)
    assert row["equivalent_diameter_nm"] == pytest.approx(80 * 0.02, rel=0.01)
    assert row["circularity"] == pytest.approx(1.0, abs=0.05)
    assert not row["touches_border"]


def test_border_flag_and_no_scale():
    mask = disc((100, 100), 5, 50, 20) | disc((100, 100), 60, 60, 10)
    t = particle_table(mask).sort_values("centroid_row_px")
    assert t["touches_border"].tolist() == [True, False]
    assert t["equivalent_diameter_nm"].isna().all()


def test_elongated_particle_is_less_circular():
    mask = np.zeros((100, 200), bool)
    mask[40:50, 20:180] = True
    t = particle_table(mask, 0.02)
    assert t.iloc[0]["circularity"] < 0.4


def test_watershed_splits_two_touching_discs():
    mask = disc((200, 300), 100, 100, 40) | disc((200, 300), 100, 170, 40)
    assert len(particle_table(mask, 0.02)) == 1
    t = particle_table(mask, 0.02, watershed=True).sort_values("centroid_col_px")
    assert len(t) == 2
    assert t["centroid_col_px"].to_numpy() == pytest.approx([100 - 2, 170 + 2], abs=4)
    assert t["equivalent_diameter_nm"].to_numpy() == pytest.approx([1.6, 1.6], rel=0.1)
    # a single disc is not over-split
    assert len(particle_table(disc((200, 200), 100, 100, 50), watershed=True)) == 1


def test_small_speckle_dropped_and_empty_mask():
    mask = np.zeros((50, 50), bool)
    mask[10, 10] = True
    t = particle_table(mask, 0.02)
    assert len(t) == 0 and "equivalent_diameter_nm" in t.columns


def test_tables_csv_and_histogram(tmp_path):
    a = particle_table(disc((100, 100), 50, 50, 20), 0.02)
    b = particle_table(disc((100, 100), 30, 30, 10) | disc((100, 100), 70, 70, 12), 0.02)
    combined = combine_tables({"a.dm3": a, "b.dm3": b})
    assert combined["frame"].tolist() == ["a.dm3", "b.dm3", "b.dm3"]
    path = write_particle_csv(combined, tmp_path / "particles.csv")
    back = pd.read_csv(path)
    assert len(back) == 3 and back.columns[0] == "frame"
    png = size_histogram_png(combined, tmp_path / "hist.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    empty = size_histogram_png(combine_tables({}), tmp_path / "empty.png")
    assert empty.stat().st_size > 0


def _random_masks(n=12, shape=(300, 257)):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    for k in range(n):
        m = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 3.0)) > rng.uniform(0.5, 0.6)
        if k % 3 == 0:  # particles cut by every edge
            m[0, :40], m[-1, 60:90], m[100:130, 0], m[:25, -1] = True, True, True, True
        yield m


def test_labels_and_measures_equal_scikit_image():
    """SciPy labelling and the one-pass measures give scikit-image's labels and regionprops to the bit."""
    from skimage.measure import label
    from skimage.morphology import remove_small_objects

    from temshift.predict.particles import _measure, _measure_regions, label_particles

    n = 0
    for m in _random_masks():
        ref = label(remove_small_objects(m, max_size=15), connectivity=2)
        got = label_particles(m)
        np.testing.assert_array_equal(got, ref)
        n += got.max()
        pd.testing.assert_frame_equal(_measure(got, 0.02), _measure_regions(got, 0.02), check_exact=True)
        pd.testing.assert_frame_equal(_measure(got, None), _measure_regions(got, np.nan), check_exact=True)
    assert n > 1000


@pytest.mark.parametrize("frames", [["a"], ["a", "b", "c"], None, "empty"])
def test_summary_and_histogram_equal_the_two_tables_made_apart(frames):
    """`summary_and_histogram` (what `temshift predict` writes) runs the whole table's bootstrap once
    for both tables; they are the tables `particle_summary` and `size_histogram_table` make."""
    from temshift.predict.particles import particle_summary, size_histogram_table, summary_and_histogram

    rng = np.random.default_rng(4)
    tables = {}
    for k, name in enumerate(["a", "b", "c"]):
        mask = np.zeros((96, 96), np.uint8)
        for _ in range(4 + k):
            r, c, rad = rng.integers(8, 88), rng.integers(8, 88), rng.integers(3, 7)
            yy, xx = np.ogrid[:96, :96]
            mask[(yy - r) ** 2 + (xx - c) ** 2 <= rad**2] = 1
        tables[name] = particle_table(mask, 0.05)
    if frames == "empty":
        table, frames = combine_tables({}), ["a"]
    elif frames is None:
        table = particle_table(np.pad(np.ones((6, 6), np.uint8), 20), 0.05)  # no frame column
    else:
        table = combine_tables({n: tables[n] for n in frames})
    summary, hist = summary_and_histogram(table, frames)
    pd.testing.assert_frame_equal(summary, particle_summary(table, frames), check_exact=True)
    pd.testing.assert_frame_equal(hist, size_histogram_table(table, frames), check_exact=True)


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.int64, np.uint64])
def test_best_iou_counts_pairs_in_a_table_as_np_unique_does(dtype, monkeypatch):
    """The pair-count table of `best_iou` (small label counts) gives the same IoUs, to the bit, as
    sorting the pairs (`np.unique`, kept for label counts whose table would be too large)."""
    from temshift.predict import particles as parts

    rng = np.random.default_rng(7)
    for _ in range(5):
        a = parts.label_particles(rng.random((160, 160)) > 0.55, min_area_px=1).astype(dtype)
        b = parts.label_particles(rng.random((160, 160)) > 0.5, min_area_px=1).astype(dtype)
        table = parts.best_iou(a, b)
        monkeypatch.setattr(parts, "PAIR_TABLE_MAX", 0)
        sorted_pairs = parts.best_iou(a, b)
        monkeypatch.undo()
        assert table.dtype == sorted_pairs.dtype and table.tobytes() == sorted_pairs.tobytes()
        assert (table > 0).any() and len(table) == a.max()
