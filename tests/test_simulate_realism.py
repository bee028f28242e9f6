"""Physics of the realism additions: camera noise transfer (DQE), specimen, labelling."""

from __future__ import annotations

import numpy as np
import pytest

from temshift.simulate.camera import Camera, detect, mtf_at, noise_transfer


def _nps(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radial frequency (cycles/px) and noise power spectrum of a flat exposure, per pixel."""
    x = counts - counts.mean()
    f = np.abs(np.fft.fft2(x)) ** 2 / x.size
    q = np.hypot(*np.meshgrid(np.fft.fftfreq(x.shape[0]), np.fft.fftfreq(x.shape[1]), indexing="ij"))
    return q, f


def _flat(camera: Camera, dose=400.0, n=512, seed=0):
    flat = np.ones((n, n), np.float32)
    counts, _ = detect(flat, dose, 0.2, np.random.default_rng(seed), camera, gain_counts_per_e=1.0, xrays=False)
    return counts, dose * 0.2**2


@pytest.mark.parametrize("d0,dn", [(0.4, 0.1), (0.6, 0.2), (1.0, 1.0)])
def test_camera_noise_power_gives_the_specified_dqe(d0, dn):
    """DQE(q) = MTF^2 lambda / NPS(q) measured on flat exposures equals the specified DQE(0), DQE(Nyquist)."""
    cam = Camera(dqe_zero=d0, dqe_nyquist=dn, read_noise_counts=0.0)
    nps, lam = [], None
    for seed in range(4):
        counts, lam = _flat(cam, seed=seed)
        q, f = _nps(counts)
        nps.append(f)
    f = np.mean(nps, 0)
    low = (q > 0) & (q < 0.03)
    ny = (q > 0.48) & (q < 0.52)
    dqe0 = (mtf_at(q[low], cam) ** 2).mean() * lam / f[low].mean()
    dqen = (mtf_at(q[ny], cam) ** 2).mean() * lam / f[ny].mean()
    assert dqe0 == pytest.approx(d0, rel=0.06)
    assert dqen == pytest.approx(dn, rel=0.06)


def test_published_dqe_fall_makes_noise_flatter_than_mtf2():
    """Per-pixel variance of a camera whose DQE falls to 0.1 at Nyquist exceeds the ideal
    scintillator's (Poisson shaped by MTF^2) and its noise transfer lies above its MTF there."""
    ideal = Camera(dqe_zero=1.0, dqe_nyquist=1.0, read_noise_counts=0.0)
    real = Camera(dqe_zero=0.4, dqe_nyquist=0.1, read_noise_counts=0.0)
    (ci, lam), (cr, _) = _flat(ideal), _flat(real)
    assert cr.var() > 3.0 * ci.var()
    q, f = _nps(cr)
    ntf_ny = np.sqrt(f[q > 0.47].mean() / f[(q > 0) & (q < 0.03)].mean())
    assert ntf_ny > 1.5 * mtf_at(0.5, real)
    # signal is still blurred by the MTF: the mean is unchanged
    assert cr.mean() == pytest.approx(lam, rel=0.01)


def test_default_camera_has_dqe_zero_from_the_published_range():
    """DQE(0) = 0.4 (scintillator cameras at 300 kV: 0.3-0.5): flat-field variance per pixel 2.5x the
    ideal scintillator's, noise shaped like the signal."""
    ideal = Camera(dqe_zero=1.0, dqe_nyquist=1.0, read_noise_counts=0.0)
    default = Camera(read_noise_counts=0.0)
    assert 0.3 <= default.dqe_zero <= 0.5
    (ci, _), (cd, _) = _flat(ideal), _flat(default)
    assert cd.var() / ci.var() == pytest.approx(1 / default.dqe_zero, rel=0.05)


def test_impossible_dqe_is_refused():
    with pytest.raises(ValueError, match="dqe_nyquist"):
        noise_transfer(Camera(dqe_zero=0.4, dqe_nyquist=0.5))
    with pytest.raises(ValueError, match="dqe_nyquist"):
        noise_transfer(Camera(dqe_zero=0.4, dqe_nyquist=0.01))


# ----------------------------------------------------------------------------- human labelling


def _one_particle_frame(dose, labeling=None, diameter_nm=4.0, n=256):
    from temshift.simulate.micrograph import FrameRequest, simulate_frame
    from temshift.simulate.specimen import make_nanoparticle

    p = make_nanoparticle("Au", diameter_nm, np.random.default_rng(2), exact_diameter=True)
    c = (n / 2 * 0.2, n / 2 * 0.2)
    req = FrameRequest(
        "Au",
        diameter_nm,
        dose,
        0.02,
        frame_size_px=n,
        mode="projection",
        seed=3,
        frame_key="f",
        session_key="s",
        xrays=False,
        labeling=labeling or {},
    )
    return simulate_frame(req, particles=[(p, c)])


def test_labeling_is_off_by_default_and_does_not_change_the_image():
    exact = _one_particle_frame(80.0)
    human = _one_particle_frame(80.0, {"enabled": True, "boundary_offset_nm": 0.3})
    assert exact.params["labeling"] == {"enabled": False}
    np.testing.assert_array_equal(exact.counts, human.counts)
    assert human.label.sum() > exact.label.sum()


def test_outline_offset_grows_the_equivalent_diameter_by_twice_the_offset():
    exact = _one_particle_frame(884.0)
    grown = _one_particle_frame(884.0, {"enabled": True, "boundary_offset_nm": 0.4})
    shrunk = _one_particle_frame(884.0, {"enabled": True, "boundary_offset_nm": -0.4})
    jitter = _one_particle_frame(884.0, {"enabled": True, "boundary_jitter_nm": 0.3})

    def d_nm(label):
        return 2 * np.sqrt(label.sum() / np.pi) * 0.02

    assert d_nm(grown.label) - d_nm(exact.label) == pytest.approx(0.8, abs=0.08)
    assert d_nm(exact.label) - d_nm(shrunk.label) == pytest.approx(0.8, abs=0.08)
    # jitter changes the outline but hardly the area
    assert (jitter.label != exact.label).sum() > 0.05 * exact.label.sum()
    assert d_nm(jitter.label) == pytest.approx(d_nm(exact.label), abs=0.15)


def test_faint_particles_are_missed_at_low_dose_by_the_rose_criterion():
    on = {"enabled": True}
    high, low = _one_particle_frame(884.0, on), _one_particle_frame(0.05, on)
    vis_hi, vis_lo = high.params["labeling"]["visibility"][0], low.params["labeling"]["visibility"][0]
    assert vis_hi / vis_lo == pytest.approx(np.sqrt(884.0 / 0.05), rel=0.02)  # SNR ~ sqrt(dose)
    assert high.params["labeling"]["n_labelled"] == 1 and high.label.sum() > 0
    assert vis_lo < 5.0 and low.params["labeling"]["n_labelled"] == 0 and low.label.sum() == 0


def test_repository_refuses_unknown_labeling_options(tmp_path):
    from temshift.simulate.repository import SimulationError, simulate_repository

    with pytest.raises(SimulationError, match="labeling options"):
        simulate_repository(
            tmp_path / "repo",
            where={"material": "Au", "dose_e_per_A2": 80},
            frames_per_group=1,
            labeling={"enabled": True, "boundary_wobble": 1.0},
        )
    assert not (tmp_path / "repo").exists()


# ----------------------------------------------------------------------------- partial temporal coherence


def _core_darkening(intensity, r_A, diameter_A):
    from scipy.ndimage import gaussian_filter

    sm = gaussian_filter(intensity, 50)
    return 1 - sm[r_A < 0.3 * diameter_A].mean() / sm[r_A > diameter_A / 2 + 20].mean()


def test_focal_spread_average_keeps_the_electrons_of_a_heavy_particle():
    """The incoherent focal average darkens a 4 nm Au particle (no aperture in the way) as little
    as a perfectly coherent lens does; the quasi-coherent envelope removes its high-angle electrons."""
    from temshift.simulate.optics import Microscope, image_intensity
    from temshift.simulate.scattering import particle_exit_wave, paste_wave
    from temshift.simulate.specimen import make_nanoparticle

    s, n = 0.1, 640
    p = make_nanoparticle("Au", 4.0, np.random.default_rng(1), zone_axis=(1, 1, 0), tilt_deg=0.0, exact_diameter=True)
    c = (n / 2 * s, n / 2 * s)
    local, origin = particle_exit_wave(p, s, c, "projection")
    wave = np.ones((n, n), np.complex64)
    paste_wave(wave, local, origin)
    y, x = np.mgrid[:n, :n] * s
    r = np.hypot(y - c[0], x - c[1])

    def dark(**kw):
        mic = Microscope(aperture_mrad=80.0, convergence_mrad=0.0, **kw)
        return _core_darkening(image_intensity(wave.copy(), s, 80.0, mic), r, 40.0)

    coherent = dark(focal_spread_A=0.0)
    incoherent = dark(focal_spread_A=20.0)
    envelope = dark(focal_spread_A=20.0, focal_spread_points=1)
    assert abs(incoherent - coherent) < 0.2 * coherent + 0.005
    assert envelope > 2 * incoherent


def test_focal_spread_average_matches_the_envelope_for_a_weak_phase_object():
    from temshift.simulate.optics import Microscope, image_intensity

    rng = np.random.default_rng(0)
    n, s = 256, 0.2
    phase = 0.02 * rng.standard_normal((n, n))
    wave = np.exp(1j * phase).astype(np.complex64)
    inc = image_intensity(wave.copy(), s, 100.0, Microscope(focal_spread_points=3)) - 1
    env = image_intensity(wave.copy(), s, 100.0, Microscope(focal_spread_points=1)) - 1
    assert np.sqrt(np.mean((inc - env) ** 2)) < 0.05 * np.sqrt(np.mean(env**2))


def test_focal_average_is_the_weighted_sum_of_coherent_images_at_shifted_defocus():
    from temshift.simulate.optics import Microscope, focal_points, image_intensity, transfer_function

    rng = np.random.default_rng(0)
    wave = np.exp(1j * 0.3 * rng.standard_normal((128, 128))).astype(np.complex64)
    mic = Microscope(focal_spread_points=5)
    ours = image_intensity(wave.copy(), 0.2, 100.0, mic)
    offsets, weights = focal_points(mic)
    assert len(offsets) == 5 and weights.sum() == pytest.approx(1.0)
    ref = sum(
        wt
        * np.abs(
            np.fft.ifft2(
                np.fft.fft2(wave) * transfer_function(wave.shape, 0.2, 100.0 + dz, mic, temporal_envelope=False)
            )
        )
        ** 2
        for dz, wt in zip(offsets, weights)
    )
    np.testing.assert_allclose(ours, ref, atol=2e-4)
