"""Atomic models (ASE) and exact labels of the simulator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from temshift.simulate.field import default_area_fraction, place_particles
from temshift.simulate.labels import particle_label
from temshift.simulate.micrograph import FrameRequest, simulate_frame
from temshift.simulate.specimen import SUPPORTS, make_nanoparticle, make_support


@pytest.mark.parametrize("material,a_A", [("Au", 4.078), ("Ag", 4.086)])
def test_fcc_particles_have_the_right_lattice_and_size(material, a_A):
    p = make_nanoparticle(material, 3.0, np.random.default_rng(0), exact_diameter=True)
    d, _ = cKDTree(p.positions_A).query(p.positions_A, k=2)
    assert np.median(d[:, 1]) == pytest.approx(a_A / np.sqrt(2), rel=1e-3)
    # faceted sphere: volume-equivalent diameter within 10 % of nominal (59 atoms / nm^3 for Au)
    n_expected = 4 / a_A**3 * np.pi / 6 * 30.0**3
    assert 0.8 * n_expected < len(p.symbols) < 1.05 * n_expected
    assert set(p.symbols) == {material}


def test_cdse_has_both_structures_and_oblong_shape():
    rng = np.random.default_rng(1)
    structures = {make_nanoparticle("CdSe", 3.0, rng).structure for _ in range(12)}
    assert structures == {"wurtzite", "zincblende"}
    p = make_nanoparticle("CdSe", 5.0, rng, "Oblong")
    assert set(p.symbols) == {"Cd", "Se"}
    ev = np.linalg.eigvalsh(np.cov(p.positions_A.T))
    assert np.sqrt(ev[-1] / ev[0]) > 1.1  # elongated
    d, _ = cKDTree(p.positions_A).query(p.positions_A, k=2)
    assert np.median(d[:, 1]) == pytest.approx(2.62, abs=0.03)  # Cd-Se bond


def test_size_spread_is_about_ten_percent():
    rng = np.random.default_rng(2)
    d = np.array([make_nanoparticle("Au", 2.2, rng).diameter_A for _ in range(200)])
    assert d.mean() == pytest.approx(22.0, rel=0.03)
    assert 0.07 < d.std() / d.mean() < 0.13


def test_zone_axis_orientation_puts_columns_along_the_beam():
    p = make_nanoparticle("Au", 3.0, np.random.default_rng(3), zone_axis=(1, 1, 0), tilt_deg=0.0, exact_diameter=True)
    xy = np.round(p.positions_A[:, :2] / 0.05)
    n_columns = len(np.unique(xy, axis=0))
    assert n_columns < len(p.symbols) / 4  # atoms stack in columns


@pytest.mark.parametrize("name", ["UT Carbon", "SiN"])
def test_amorphous_support_density_and_min_distance(name):
    sup = SUPPORTS[name]
    atoms = make_support(name, 40.0, 20.0, np.random.default_rng(4))
    density = len(atoms) / (40.0 * 40.0 * 20.0)
    assert density == pytest.approx(sup.number_density_per_A3, rel=0.01)
    d, _ = cKDTree(atoms.positions, boxsize=[40.0, 40.0, 1e3]).query(atoms.positions, k=2)
    assert d[:, 1].min() >= sup.min_distance_A - 1e-9
    if name == "UT Carbon":
        assert sup.number_density_per_A3 == pytest.approx(0.1003, rel=1e-3)  # 2.0 g/cm3


def test_placement_is_sparse_without_overlap_and_partly_clustered():
    rng = np.random.default_rng(5)
    radii = np.full(60, 25.0)
    pl = place_particles(radii, 2000.0, rng)
    assert len(pl) == 60
    d = np.hypot(pl.y_A[:, None] - pl.y_A[None], pl.x_A[:, None] - pl.x_A[None]) + np.eye(60) * 1e9
    assert d.min() >= 50.0
    assert 0.15 < pl.clustered.mean() < 0.7
    assert default_area_fraction(5, 4096) == pytest.approx(0.022)
    assert default_area_fraction(5, 1024) > default_area_fraction(5, 4096)


@pytest.mark.parametrize("pixel_scale_nm", [0.02, 0.042])
@pytest.mark.parametrize("zone_axis", [(1, 1, 0), None])
@pytest.mark.parametrize("material", ["Au", "CdSe"])
def test_label_covers_projected_footprint_without_holes(pixel_scale_nm, zone_axis, material):
    rng = np.random.default_rng(6)
    px_A = pixel_scale_nm * 10
    p = make_nanoparticle(
        material,
        5.0,
        rng,
        structure="zincblende" if material == "CdSe" else None,
        zone_axis=zone_axis,
        tilt_deg=0.0 if zone_axis else None,
        exact_diameter=True,
        p_zone_axis=0.0,
    )
    n = int(80.0 / px_A)  # 8 nm field
    center = rng.uniform(0.4, 0.6, 2) * n * px_A  # sub-pixel position
    xy = p.positions_A[:, :2] + center[::-1]
    label = particle_label([(xy, p.atomic_radius_A)], (n, n), px_A)
    assert label.dtype == np.uint8 and set(np.unique(label)) == {0, 1}
    np.testing.assert_array_equal(ndimage.binary_fill_holes(label), label)
    assert ndimage.label(label)[1] == 1
    # the true footprint: pixels within an atomic radius of a projected atom, holes filled
    yy, xx = np.mgrid[:n, :n] * px_A
    d, _ = cKDTree(xy).query(np.stack([xx.ravel(), yy.ravel()], 1))
    footprint = ndimage.binary_fill_holes((d <= p.atomic_radius_A).reshape(n, n))
    assert label[ndimage.binary_erosion(footprint)].all()  # within a pixel
    # outside it by at most two pixels or an atomic surface step (the hull bridges steps, ~1.6 A)
    assert d.reshape(n, n)[label == 1].max() <= p.atomic_radius_A + max(2 * px_A, 1.6)
    if material == "CdSe":  # not faceted: a disc of the particle radius (+ atomic radius), atomically rough
        r = np.hypot(yy - center[0], xx - center[1])
        r_fp = 25.0 + p.atomic_radius_A
        assert label[r < r_fp - 2 * px_A - 1.5].all()
        assert not label[r > r_fp + 2 * px_A].any()


def test_frame_label_matches_particle_list_at_every_pixel_scale():
    for px in (0.02, 0.033, 0.042):
        f = simulate_frame(
            FrameRequest(
                "Au",
                2.2,
                423,
                px,
                frame_size_px=192,
                mode="projection",
                seed=9,
                frame_key=f"k{px}",
                session_key="s",
                xrays=False,
            )
        )
        _lab, _n_comp = ndimage.label(f.label)
        assert f.params["n_particles"] >= 1
        # particles lie where the labels are: the image is darker there (amplitude contrast)
        assert f.counts[f.label == 1].mean() < f.counts[f.label == 0].mean()
        for part in f.params["particles"]:
            r, c = round(part["y_nm"] / px), round(part["x_nm"] / px)
            if 0 <= r < 192 and 0 <= c < 192:
                assert f.label[r, c] == 1
