"""The simulator's knobs for the generalist's domain randomization: Pt and Pd, clustering,
support thickness and illumination strength (issue 11), and their draws in `PretrainRanges`."""

from __future__ import annotations

import numpy as np
import pytest

from temshift.simulate.micrograph import FrameRequest, simulate_frame
from temshift.simulate.specimen import make_nanoparticle
from temshift.training.domain import PretrainRanges, draw_frame, frame_request


def _frame(material="Au", n=128, keep=False, particles=None, **kw):
    req = FrameRequest(
        material, 3.0, 400.0, 0.04, frame_size_px=n, mode="projection", seed=5, frame_key="f", session_key="s", **kw
    )
    return simulate_frame(req, keep_intermediates=keep, particles=particles)


@pytest.mark.parametrize("material,a_A", [("Pt", 3.924), ("Pd", 3.891)])
def test_pt_and_pd_particles_have_their_fcc_nearest_neighbour_distance(material, a_A):
    from scipy.spatial import cKDTree

    p = make_nanoparticle(material, 3.0, np.random.default_rng(0), exact_diameter=True)
    assert set(p.symbols) == {material}
    d, _ = cKDTree(p.positions_A).query(p.positions_A, k=2)
    assert np.median(d[:, 1]) == pytest.approx(a_A / np.sqrt(2), rel=0.01)


def test_a_pt_particle_is_darker_than_an_ag_one_of_the_same_size():
    """Heavier atoms (Z 78 against 47) scatter more electrons outside the objective aperture."""
    means = {}
    for material in ("Pt", "Ag"):
        p = make_nanoparticle(material, 3.0, np.random.default_rng(1), exact_diameter=True)
        f = _frame(material, keep=True, particles=[(p, (64 * 0.4, 64 * 0.4))], xrays=False)
        means[material] = float(f.intensity[f.label > 0].mean() / f.intensity[f.label == 0].mean())
    assert means["Pt"] < means["Ag"] < 1.0


def test_cluster_fraction_sets_how_many_particles_touch_an_earlier_one():
    scattered = _frame(n=256, cluster_fraction=0.0, density=3.0)
    chained = _frame(n=256, cluster_fraction=1.0, density=3.0)
    flags = [[q["clustered"] for q in f.params["particles"]] for f in (scattered, chained)]
    assert len(flags[0]) > 3 and len(flags[1]) > 3
    assert not any(flags[0])
    assert sum(flags[1]) >= len(flags[1]) - 1  # the first has nothing to touch
    assert chained.params["cluster_fraction"] == 1.0


def test_a_thicker_support_gives_stronger_speckle_and_changes_nothing_else():
    thin = _frame(keep=True, support_thickness_A=15.0, xrays=False)
    thick = _frame(keep=True, support_thickness_A=90.0, xrays=False)
    assert thin.params["support_thickness_A"] == 15.0 and thick.params["support_thickness_A"] == 90.0
    assert thin.params["particles"] == thick.params["particles"]
    background = thin.label == 0
    assert thick.intensity[background].std() > 2 * thin.intensity[background].std()


def test_illumination_scale_zero_is_a_flat_beam_and_two_doubles_the_gain_error():
    flat = _frame(keep=True, illumination_scale=0.0)
    base = _frame(keep=True)
    strong = _frame(keep=True, illumination_scale=2.0)
    assert np.ptp(flat.illumination) < 1e-6
    spread = [float(np.ptp(f.illumination)) for f in (base, strong)]
    assert spread[1] > 1.5 * spread[0] > 0
    np.testing.assert_array_equal(flat.label, base.label)


@pytest.mark.parametrize(
    "bad", [{"cluster_fraction": 1.5}, {"support_thickness_A": -3.0}, {"illumination_scale": -1.0}]
)
def test_impossible_knobs_are_refused_by_name(bad):
    key = next(iter(bad))
    with pytest.raises(ValueError, match=key):
        FrameRequest("Au", 3.0, 400.0, 0.04, **bad)


def test_the_default_ranges_draw_what_they_drew_before_the_new_fields():
    """The shipped generalist was trained on the default draws: the new fields must not move them."""
    wide = PretrainRanges(
        materials=("Au", "Ag", "CdSe"),
        cluster_fraction=(0.0, 0.9),
        support_thickness_A=(15.0, 120.0),
        illumination_scale_log=(0.5, 3.0),
    )
    new_fields = {"cluster_fraction", "support_thickness_A", "illumination_scale"}
    for index in range(20):
        default = draw_frame(PretrainRanges(), 0, index, working_pixel_scale_nm=0.04, working_frame_px=512)
        widened = draw_frame(wide, 0, index, working_pixel_scale_nm=0.04, working_frame_px=512)
        assert default.model_dump(exclude=new_fields) == widened.model_dump(exclude=new_fields)
        assert (default.cluster_fraction, default.support_thickness_A, default.illumination_scale) == (0.4, None, 1.0)
        assert 0.0 <= widened.cluster_fraction <= 0.9 and 15.0 <= widened.support_thickness_A <= 120.0
        req = frame_request(widened)
        assert (req.cluster_fraction, req.support_thickness_A, req.illumination_scale) == (
            widened.cluster_fraction,
            widened.support_thickness_A,
            widened.illumination_scale,
        )


def test_ranges_take_pt_and_pd_and_refuse_impossible_new_ranges():
    assert PretrainRanges(materials=("Au", "Pt", "Pd")).materials == ("Au", "Pt", "Pd")
    with pytest.raises(ValueError, match="cluster_fraction"):
        PretrainRanges(cluster_fraction=(0.2, 1.3))
    with pytest.raises(ValueError, match="support_thickness_A"):
        PretrainRanges(support_thickness_A=(0.0, 50.0))
