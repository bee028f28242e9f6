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


def test_default_camera_is_noisier_than_poisson_and_noise_is_flatter_than_mtf2():
    """Per-pixel variance of the default (OneView-like) camera exceeds the ideal scintillator's
    (Poisson shaped by MTF^2) and its noise transfer lies above its MTF at Nyquist."""
    ideal = Camera(dqe_zero=1.0, dqe_nyquist=1.0, read_noise_counts=0.0)
    real = Camera(read_noise_counts=0.0)
    (ci, lam), (cr, _) = _flat(ideal), _flat(real)
    assert cr.var() > 3.0 * ci.var()
    q, f = _nps(cr)
    ntf_ny = np.sqrt(f[q > 0.47].mean() / f[(q > 0) & (q < 0.03)].mean())
    assert ntf_ny > 1.5 * mtf_at(0.5, real)
    # signal is still blurred by the MTF: the mean is unchanged
    assert cr.mean() == pytest.approx(lam, rel=0.01)


def test_impossible_dqe_is_refused():
    with pytest.raises(ValueError, match="dqe_nyquist"):
        noise_transfer(Camera(dqe_zero=0.4, dqe_nyquist=0.5))
    with pytest.raises(ValueError, match="dqe_nyquist"):
        noise_transfer(Camera(dqe_zero=0.4, dqe_nyquist=0.01))

