"""Physics checks of the HRTEM simulator: lattice fringes, contrast, noise, illumination, x-rays."""

from __future__ import annotations

import numpy as np
import pytest

from temshift.simulate.camera import Camera, detect
from temshift.simulate.micrograph import FrameRequest, draw_session, simulate_frame
from temshift.simulate.optics import Microscope, image_intensity, integrate_pixels
from temshift.simulate.scattering import particle_exit_wave, paste_wave
from temshift.simulate.specimen import make_nanoparticle

S_A = 0.2  # field step (A) = detector pixel 0.02 nm


def _particle_image(
    material,
    diameter_nm,
    *,
    structure=None,
    zone_axis=None,
    mode="projection",
    n=320,
    defocus_A=60.0,
    seed=1,
    p_zone_axis=0.0,
):
    """Noise-free intensity of one particle in vacuum, centred in an n x n field of 0.2 A steps."""
    rng = np.random.default_rng(seed)
    p = make_nanoparticle(
        material,
        diameter_nm,
        rng,
        structure=structure,
        zone_axis=zone_axis,
        tilt_deg=0.0 if zone_axis else None,
        exact_diameter=True,
        p_zone_axis=p_zone_axis,
    )
    wave = np.ones((n, n), np.complex64)
    c = (n / 2 * S_A, n / 2 * S_A)
    local, origin = particle_exit_wave(p, S_A, c, mode)
    paste_wave(wave, local, origin)
    intensity = image_intensity(wave, S_A, defocus_A, Microscope())
    y, x = np.mgrid[:n, :n] * S_A
    return intensity, np.hypot(y - c[0], x - c[1])


def _spectrum(intensity, r_A, radius_A):
    n = intensity.shape[0]
    win = np.sqrt(np.clip(1 - r_A / radius_A, 0, 1))
    f = np.abs(np.fft.fft2((intensity - intensity[r_A < radius_A].mean()) * win))
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n, S_A), np.fft.fftfreq(n, S_A), indexing="ij"))
    return k, f


def _peak_ratio(k, f, spacing_A, tol=0.012):
    """Strongest Fourier amplitude within tol of 1/spacing over the median in a reflection-free ring."""
    background = np.median(f[(k > 0.36) & (k < 0.40)])
    return f[np.abs(k - 1 / spacing_A) < tol].max() / background


@pytest.mark.parametrize("mode", ["multislice", "projection"])
def test_au_zone_axis_fft_shows_111_and_200(mode):
    intensity, r = _particle_image("Au", 4.0, zone_axis=(1, 1, 0), mode=mode)
    k, f = _spectrum(intensity, r, 20.0)
    assert _peak_ratio(k, f, 2.355) > 20  # {111}
    assert _peak_ratio(k, f, 2.039) > 20  # {200}
    assert _peak_ratio(k, f, 3.5) < 5  # nothing at CdSe-like spacings
    band = (k > 0.2) & (k < 0.75)
    k_peak = k.flat[np.argmax(np.where(band, f, 0))]
    assert 1 / k_peak == pytest.approx(2.355, rel=0.03)


@pytest.mark.parametrize(
    "structure,zone_axis,spacing_A",
    [
        ("wurtzite", (1, 0, 0), 3.505),  # (0002)
        ("zincblende", (1, 1, 0), 3.493),
    ],
)  # {111}
def test_cdse_fft_shows_larger_spacings(structure, zone_axis, spacing_A):
    intensity, r = _particle_image("CdSe", 4.0, structure=structure, zone_axis=zone_axis)
    k, f = _spectrum(intensity, r, 20.0)
    assert _peak_ratio(k, f, spacing_A) > 20
    # the strongest reflection beyond 2.5 A spacing is the CdSe one (Au has none there)
    low = (k > 0.2) & (k < 0.4)
    assert 1 / k.flat[np.argmax(np.where(low, f, 0))] > 3.1


def _contrast(material, diameter_nm, seed=3):
    """Mean darkening of the particle core against vacuum after removing fringes (amplitude contrast)."""
    from scipy.ndimage import gaussian_filter

    n = int(np.ceil((diameter_nm * 10 + 60) / S_A / 8) * 8)
    intensity, r = _particle_image(material, diameter_nm, n=n, seed=seed)
    smooth = gaussian_filter(intensity, 5.0 / S_A)
    core = smooth[r < 0.3 * diameter_nm * 10].mean()
    return 1 - core / smooth[r > diameter_nm * 10 / 2 + 15].mean()


def test_contrast_orders_material_and_size():
    au, ag, cdse = (_contrast(m, 5.0) for m in ("Au", "Ag", "CdSe"))
    assert au > 1.3 * ag and au > 1.3 * cdse
    assert 0.5 < ag / cdse < 2.0  # Ag ~ CdSe
    au_small, au_large = _contrast("Au", 2.2), _contrast("Au", 10.0)
    assert au_small < au < au_large


def test_noise_over_mean_scales_as_inverse_sqrt_dose():
    cam = Camera(read_noise_counts=0.0)
    flat = np.ones((256, 256), np.float32)
    ratios = {}
    for dose in (80.0, 423.0, 884.0):
        counts, _ = detect(flat, dose, S_A, np.random.default_rng(0), cam, xrays=False)
        ratios[dose] = counts.std() / counts.mean() * np.sqrt(dose)
    values = np.array(list(ratios.values()))
    assert values.max() / values.min() < 1.05


def test_frame_background_noise_falls_with_dose():
    def rel_noise(dose):
        f = simulate_frame(
            FrameRequest(
                "Au",
                2.2,
                dose,
                0.02,
                frame_size_px=256,
                mode="projection",
                seed=5,
                frame_key="f",
                session_key="s",
                xrays=False,
            )
        )
        bg = f.counts[f.label == 0]
        return bg.std() / bg.mean()

    lo, mid, hi = rel_noise(80), rel_noise(423), rel_noise(884)
    assert lo > mid > hi
    assert lo / hi > 1.8  # shot noise dominates: sqrt(884 / 80) = 3.3 with a dose-independent speckle floor


def test_illumination_same_within_session_and_different_between():
    kw = {
        "material": "Au",
        "diameter_nm": 2.2,
        "dose_e_per_A2": 423,
        "pixel_scale_nm": 0.02,
        "frame_size_px": 128,
        "mode": "projection",
        "seed": 7,
        "xrays": False,
    }
    a = simulate_frame(FrameRequest(**kw, frame_key="a", session_key="day1"), keep_intermediates=True)
    b = simulate_frame(FrameRequest(**kw, frame_key="b", session_key="day1"), keep_intermediates=True)
    c = simulate_frame(FrameRequest(**kw, frame_key="c", session_key="day2"), keep_intermediates=True)
    np.testing.assert_array_equal(a.illumination, b.illumination)
    assert a.params["session"] == b.params["session"]
    assert np.abs(a.illumination - c.illumination).max() > 0.02
    assert a.params["defocus_A"] != b.params["defocus_A"]  # frames differ within the session
    assert draw_session(7, "day1").illumination == draw_session(7, "day1").illumination


def _low_pass_spread(img, block=32):
    h = img.shape[0] // block * block
    means = img[:h, :h].reshape(h // block, block, h // block, block).mean((1, 3))
    return means.std() / means.mean()


def test_flatfield_removes_most_of_the_session_illumination():
    from temshift.preprocess import flatfield_correct, remove_xrays

    f = simulate_frame(
        FrameRequest(
            "Au",
            2.2,
            884,
            0.02,
            frame_size_px=512,
            mode="projection",
            seed=2,
            frame_key="f",
            session_key="s",
            density=0.3,
        ),
        keep_intermediates=True,
    )
    raw = remove_xrays(f.counts, 1500.0)
    before = _low_pass_spread(np.where(f.label == 0, raw, np.median(raw)))
    flat = flatfield_correct(raw)
    after = _low_pass_spread(np.where(f.label == 0, flat, np.median(flat)))
    assert _low_pass_spread(f.illumination) > 0.02  # there is something to remove
    assert after < 0.3 * before


def test_xray_step_removes_planted_hits():
    from temshift.preprocess import remove_xrays

    cam = Camera(xray_rate_per_px=2e-4)
    f = simulate_frame(
        FrameRequest(
            "Au",
            5.0,
            423,
            0.02,
            frame_size_px=256,
            mode="projection",
            seed=4,
            frame_key="f",
            session_key="s",
            camera=cam,
        )
    )
    rows, cols = f.xray_coords.T
    assert len(rows) >= 3
    med = np.median(f.counts)
    assert (f.counts[rows, cols] > med + 1500).all()
    cleaned = remove_xrays(f.counts, 1500.0)
    assert (cleaned[rows, cols] < med + 1500).all()
    assert cleaned.max() < med + 1500


def test_lens_transfer_matches_abtem_conventions():
    import abtem
    from abtem.core.energy import energy2sigma, energy2wavelength

    from temshift.simulate.optics import interaction_constant, transfer_function, wavelength_A

    assert wavelength_A(300e3) == pytest.approx(energy2wavelength(300e3), rel=1e-6)
    assert interaction_constant(300e3) == pytest.approx(energy2sigma(300e3), rel=1e-6)
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(64, 64)) + 1j * rng.normal(size=(64, 64))).astype(np.complex64)
    theirs = (
        abtem.CTF(defocus=60, Cs=5e4, energy=300e3, semiangle_cutoff=1e3)
        .apply(abtem.Waves(a, energy=300e3, sampling=S_A))
        .compute()
        .array
    )
    mic = Microscope(focal_spread_A=0, convergence_mrad=0, aperture_mrad=1e4)
    ours = np.fft.ifft2(np.fft.fft2(a) * transfer_function(a.shape, S_A, 60, mic))
    assert np.abs(theirs - ours).max() < 1e-4 * np.abs(ours).max()


def test_pixel_integration_is_exact_for_band_limited_intensity():
    # a cosine of period 10 field samples, pixels of 2 samples: the pixel average scales it by sinc
    n, s = 200, 0.1
    x = np.arange(n) * s
    img = np.tile(1 + 0.5 * np.cos(2 * np.pi * x / (10 * s)), (n, 1)).astype(np.float32)
    out = integrate_pixels(img, s, 2 * s)
    expected = 1 + 0.5 * np.sinc(2 / 10) * np.cos(2 * np.pi * x[::2] / (10 * s))
    np.testing.assert_allclose(out[0], expected, atol=1e-4)


def test_a_wider_aperture_gets_a_field_grid_that_samples_its_intensity():
    # the intensity behind an aperture of k_a is band-limited to 2 k_a: the field grid step must be
    # <= 1 / (4 k_a). Until 2026-12-03 the grid was fixed for 20 mrad, so a 30 mrad microscope
    # was simulated on the 0.2 A detector grid and its intensity aliased.
    def sampling(mic):
        req = FrameRequest(
            "Au", 2.2, 423.0, 0.02, frame_size_px=64, mode="projection", seed=1, frame_key="f", session_key="s",
            microscope=mic,
        )  # fmt: skip
        return simulate_frame(req).params["field_sampling_A"]

    wide = Microscope(aperture_mrad=30.0)
    assert sampling(wide) <= 1 / (4 * wide.aperture_k_per_A)
    assert sampling(Microscope()) == pytest.approx(0.2)  # the default keeps the detector grid
