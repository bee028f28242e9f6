"""benchmarks/edge_profiles.py: the edge measurements it reports are where they should be."""

from __future__ import annotations

import numpy as np


def _disc(radius_px: float, n: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return (np.hypot(yy - n / 2, xx - n / 2) <= radius_px).astype(np.uint8)


def test_signed_distance_is_negative_inside_and_half_a_pixel_at_the_boundary(benchmark_module):
    ep = benchmark_module("edge_profiles")
    label = _disc(20)
    d = ep.signed_distance_px(label)
    assert d[64, 64] < -19 and d[0, 0] > 40
    assert np.abs(d[label > 0]).min() == 0.5 and d[label == 0].min() == 0.5


def test_a_dark_disc_and_a_wider_mask_give_half_contrast_at_the_label_and_the_model_edge_outside(benchmark_module):
    from scipy import ndimage as ndi

    ep = benchmark_module("edge_profiles")
    label = _disc(25)
    image = 1.0 - 0.5 * ndi.gaussian_filter(label.astype(float), 2.0)  # dark particle, soft symmetric edge
    prob = ndi.gaussian_filter(_disc(30).astype(float), 1.0)  # a model drawing 5 px outside
    result = ep.median_profile([ep.frame_profile(image, prob, label)])
    assert abs(result["half_contrast_px"]) < 1.0
    assert 4.0 < result["model_edge_px"] < 6.0
    assert ep.crossing([1.0, 0.9, 0.8]) is None  # never falls through 0.5


def test_released_sets_table_lists_every_fold_and_the_medians(benchmark_module):
    ep = benchmark_module("edge_profiles")
    table = ep.released_sets_markdown(
        {
            "setA": {
                "pixel_scale_nm": 0.02,
                "dose_e_per_A2": 80,
                "folds": [{"model_edge_px": -5.0}, {"model_edge_px": None}],
                "model_edge_px_median": -5.0,
                "model_edge_nm_median": -0.1,
                "half_contrast_px": -10.0,
            }
        }
    )
    assert "| setA | 0.02 | 80 | -5.0, - | -5.0 | -0.100 | -10.0 |" in table


def test_released_real_table_gives_each_row_and_the_median_edge(benchmark_module):
    ep = benchmark_module("edge_profiles")
    rows = [
        {"set": "setA", "factor": 1.0, "dice": 0.9, "area_ratio_median": 1.1, "model_edge_px": 2.0},
        {"set": "setA", "factor": 2.0, "dice": 0.95, "area_ratio_median": 1.0, "model_edge_px": -1.0},
        {"set": "setB", "factor": 1.0, "dice": 0.8, "area_ratio_median": 1.4, "model_edge_px": None},
    ]
    table = ep.released_real_markdown({"rows": rows})
    assert "| setA | 2 | 0.950 | 1.00 | -1.0 |" in table
    assert "| setB | 1 | 0.800 | 1.40 | - |" in table
    assert "Median edge over the 2 rows: +0.5 px (range -1.0 to +2.0)." in table


def test_aperture_benchmark_changes_the_default_aperture_and_the_grid_follows(benchmark_module):
    from temshift.simulate.optics import Microscope, max_field_sampling_A

    bench = benchmark_module("aperture_contrast")
    before = Microscope().aperture_mrad
    try:
        bench.set_default_aperture(30.0)
        mic = Microscope(cs_A=1e4)  # other fields given: the aperture default still applies
        assert mic.aperture_mrad == 30.0
        assert max_field_sampling_A(mic) < 0.2
    finally:
        bench.set_default_aperture(before)
    assert Microscope().aperture_mrad == before
