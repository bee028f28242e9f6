"""Objective-lens optics: transfer function, partial coherence, aperture, image intensity.

Conventions (the same as abTEM's): the phase error of the objective lens is

    chi(k) = pi * lambda * k^2 * C10 + (pi / 2) * Cs * lambda^3 * k^4
             + pi * lambda * k^2 * A1 * cos(2 (phi - phi_A1)),

with ``C10 = -defocus_A`` (positive defocus = underfocus) and the image wave is
``IFFT[FFT[psi_exit] * A(k) * E_t(k) * E_s(k) * exp(-i chi(k))]``.

Partial temporal coherence (a Gaussian focal spread `Delta`, 1 sigma, from chromatic
aberration and energy spread) is an incoherent average of image intensities over defocus,
done by Gauss-Hermite quadrature (`Microscope.focal_spread_points` defocus values, 3 by
default). Each term conserves the electrons, as the microscope does: an electron scattered
to a high angle still reaches the camera, it only stops interfering. The quasi-coherent
alternative (``focal_spread_points=1``: the envelope ``E_t = exp(-(pi lambda Delta k^2)^2 / 2)``
multiplied into the wave) is exact for the linear image of weak phase objects but removes
the strongly scattered electrons of a heavy particle from the image: for a 5 nm Au particle
at 300 kV behind a 20 mrad aperture it made the particle 30 % darker than the incoherent
average does (mean core darkening 0.176 against 0.135; see docs/realism_physics.md). The
textbook treatment is the same (Kirkland, "Advanced Computing in Electron Microscopy", 2nd
ed., Springer 2010, section 3.3: the envelope / transmission cross coefficient forms hold for
weak scatterers; for thick or strongly scattering specimens one sums intensities over the
focal spread). Three Gauss-Hermite points reproduce the envelope of the linear terms to
within 0.03 up to the 20 mrad aperture edge.

Partial spatial coherence (a Gaussian source of 1/e semi-angle `alpha_c`, 0.1 mrad: nearly
parallel illumination) stays an envelope ``E_s = exp(-(alpha_c / (2 lambda))^2 (d chi / dk)^2)``
on the wave; at 0.1 mrad it removes under 1 % of a particle's intensity. The objective
aperture has a soft edge a fraction of a mrad wide. The exit wave is transformed once per
frame, then one inverse FFT per focal point.

Sampling: the field grid used here samples the *wave*; with an aperture of 20 mrad
(1.02 1/A at 300 kV) the image intensity is band-limited to 2.03 1/A, so a field grid
step of 0.246 A or less represents it without aliasing (`max_field_sampling_A`: finer for
a larger aperture). `integrate_pixels` then
integrates the intensity over the detector pixel area exactly (a sinc filter in Fourier
space on the band-limited intensity) and samples it at the detector pixel centres; any
frequency above the detector's Nyquist limit aliases as it does on a real camera.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np

#: largest field-grid step (A) that samples the aperture-limited intensity without aliasing
MAX_FIELD_SAMPLING_A = 0.245


def fft_workers() -> int:
    """Threads for scipy.fft (env ``TEMSHIFT_FFT_WORKERS``, default: all cores)."""
    return int(os.environ.get("TEMSHIFT_FFT_WORKERS", os.cpu_count() or 1))


def wavelength_A(energy_eV: float) -> float:
    """Relativistic electron wavelength in Angstrom."""
    m0c2 = 510998.95  # eV
    hc = 12398.419843320026  # eV * A
    return hc / math.sqrt(energy_eV * (2 * m0c2 + energy_eV))


def interaction_constant(energy_eV: float) -> float:
    """Interaction parameter sigma in rad / (V A) (phase = sigma * projected potential)."""
    m0c2 = 510998.95
    lam = wavelength_A(energy_eV)
    # sigma = 2 pi m e lambda / h^2 = (2 pi / (lambda V)) (m0c2 + eV) / (2 m0c2 + eV)
    return 2 * math.pi / (lam * energy_eV) * (m0c2 + energy_eV) / (2 * m0c2 + energy_eV)


@dataclass(frozen=True)
class Microscope:
    """An aberration-corrected 300 kV HRTEM (TEAM 0.5-like).

    Attributes
    ----------
    energy_eV : float
        Beam energy (300 kV).
    cs_A : float
        Spherical aberration C30 in Angstrom (corrected: a few micrometres; 1 um = 1e4 A).
    focal_spread_A : float
        1-sigma focal spread from chromatic aberration and energy spread (monochromated).
    convergence_mrad : float
        1/e semi-angle of the (nearly parallel) illumination.
    aperture_mrad : float
        Objective aperture semi-angle.
    aperture_edge_mrad : float
        Width of the aperture's soft edge.
    focal_spread_points : int
        Gauss-Hermite points of the incoherent focal-spread average (1: quasi-coherent
        temporal envelope on the wave, the model of temshift before 2026-12).
    """

    energy_eV: float = 300e3
    cs_A: float = 5e4
    focal_spread_A: float = 20.0
    convergence_mrad: float = 0.1
    aperture_mrad: float = 20.0
    aperture_edge_mrad: float = 0.5
    focal_spread_points: int = 3

    @property
    def wavelength_A(self) -> float:
        """Electron wavelength (A)."""
        return wavelength_A(self.energy_eV)

    @property
    def sigma(self) -> float:
        """Interaction parameter in rad / (V A)."""
        return interaction_constant(self.energy_eV)

    @property
    def aperture_k_per_A(self) -> float:
        """Spatial frequency of the aperture edge (1/A)."""
        return self.aperture_mrad * 1e-3 / self.wavelength_A

    def as_dict(self) -> dict:
        """Parameters as a plain dict."""
        return asdict(self)


def max_field_sampling_A(microscope: Microscope) -> float:
    """Largest field-grid step (A) that samples `microscope`'s aperture-limited intensity.

    The image intensity is band-limited to twice the aperture frequency, so the step must be
    at most ``1 / (4 k_aperture)``. Apertures the default step already samples (20 mrad at
    300 kV, or smaller) keep `MAX_FIELD_SAMPLING_A` exactly, so their frames do not change;
    larger ones get ``1 / (4 k_aperture)`` less a 0.5 % margin.

    >>> round(max_field_sampling_A(Microscope()), 3)
    0.245
    >>> round(max_field_sampling_A(Microscope(aperture_mrad=30.0)), 3)
    0.163
    """
    limit_A = 1.0 / (4.0 * microscope.aperture_k_per_A)
    return MAX_FIELD_SAMPLING_A if limit_A >= MAX_FIELD_SAMPLING_A else 0.995 * limit_A


def field_oversampling(pixel_scale_A: float, max_sampling_A: float = MAX_FIELD_SAMPLING_A) -> int:
    """Integer factor m so that the field grid step ``pixel_scale_A / m`` is <= `max_sampling_A`."""
    return max(1, math.ceil(pixel_scale_A / max_sampling_A - 1e-9))


def spatial_frequencies(shape, sampling_A: float, rfft: bool = False):
    """Frequency grids (ky, kx) in 1/A for an FFT of `shape` with step `sampling_A`."""
    ny, nx = shape
    ky = np.fft.fftfreq(ny, sampling_A).astype(np.float32)
    kx = (np.fft.rfftfreq if rfft else np.fft.fftfreq)(nx, sampling_A).astype(np.float32)
    return ky[:, None], kx[None, :]


def aberration_phase(
    ky, kx, defocus_A: float, microscope: Microscope, astigmatism_A: float = 0.0, astigmatism_angle_rad: float = 0.0
):
    """chi(k) in rad and d chi / dk (rad A) on a frequency grid (see module docstring)."""
    lam = microscope.wavelength_A
    k2 = kx * kx + ky * ky
    c10 = -float(defocus_A)
    chi = np.pi * lam * k2 * c10 + 0.5 * np.pi * microscope.cs_A * lam**3 * k2 * k2
    if astigmatism_A:
        phi = np.arctan2(ky, kx)
        chi = chi + np.pi * lam * k2 * astigmatism_A * np.cos(2 * (phi - astigmatism_angle_rad))
    k = np.sqrt(k2)
    dchi = 2 * np.pi * (lam * c10 * k + microscope.cs_A * lam**3 * k**3)
    return chi, dchi


def transfer_function(
    shape,
    sampling_A: float,
    defocus_A: float,
    microscope: Microscope,
    astigmatism_A: float = 0.0,
    astigmatism_angle_rad: float = 0.0,
    temporal_envelope: bool = True,
) -> np.ndarray:
    """Coherent transfer function with envelopes and aperture, complex64, FFT layout.

    Parameters
    ----------
    shape : (int, int)
        Grid shape of the wave.
    sampling_A : float
        Grid step in Angstrom.
    defocus_A : float
        Defocus in Angstrom (positive = underfocus).
    microscope : Microscope
    astigmatism_A, astigmatism_angle_rad : float
        Two-fold astigmatism magnitude and azimuth.
    temporal_envelope : bool
        Include the focal-spread envelope (False when the focal spread is averaged
        incoherently, see `image_intensity`).
    """
    ky, kx = spatial_frequencies(shape, sampling_A)
    lam = microscope.wavelength_A
    chi, dchi = aberration_phase(ky, kx, defocus_A, microscope, astigmatism_A, astigmatism_angle_rad)
    k2 = kx * kx + ky * ky
    alpha_mrad = np.sqrt(k2) * lam * 1e3
    edge = max(microscope.aperture_edge_mrad, 1e-6)
    aperture = np.clip((microscope.aperture_mrad - alpha_mrad) / edge + 0.5, 0.0, 1.0)
    env_t = np.exp(-0.5 * (np.pi * lam * microscope.focal_spread_A * k2) ** 2) if temporal_envelope else 1.0
    alpha_c = microscope.convergence_mrad * 1e-3
    env_s = np.exp(-((alpha_c / (2 * lam)) ** 2) * dchi**2)
    return (aperture * env_t * env_s * np.exp(-1j * chi)).astype(np.complex64)


def focal_points(microscope: Microscope) -> tuple[np.ndarray, np.ndarray]:
    """Defocus offsets (A) and weights of the Gauss-Hermite focal-spread average (weights sum to 1)."""
    n = int(microscope.focal_spread_points)
    if n <= 1 or microscope.focal_spread_A <= 0:
        return np.zeros(1), np.ones(1)
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)  # weight exp(-x^2 / 2): a unit normal
    return nodes * float(microscope.focal_spread_A), weights / weights.sum()


def image_intensity(
    exit_wave: np.ndarray,
    sampling_A: float,
    defocus_A: float,
    microscope: Microscope,
    astigmatism_A: float = 0.0,
    astigmatism_angle_rad: float = 0.0,
) -> np.ndarray:
    """Image intensity (float32, 1 = unscattered beam) of an exit wave, focal spread included.

    With ``microscope.focal_spread_points > 1`` the intensity is the weighted sum of
    ``|psi_image(defocus + dz_i)|^2`` over the Gauss-Hermite offsets ``dz_i`` (see module
    docstring); with 1, ``|psi_image|^2`` of the wave damped by the temporal envelope.
    The exit wave is overwritten (it is the largest array of a frame).
    """
    import scipy.fft as sfft

    w = fft_workers()
    spec = sfft.fft2(exit_wave, workers=w, overwrite_x=True)
    offsets, weights = focal_points(microscope)
    incoherent = len(offsets) > 1
    tf = transfer_function(
        exit_wave.shape,
        sampling_A,
        defocus_A,
        microscope,
        astigmatism_A,
        astigmatism_angle_rad,
        temporal_envelope=not incoherent,
    )
    if not incoherent:
        spec *= tf
        wave = sfft.ifft2(spec, workers=w, overwrite_x=True)
        del spec
        out = np.empty(wave.shape, np.float32)
        np.multiply(wave.real, wave.real, out=out)
        out += wave.imag * wave.imag
        return out
    spec *= tf
    del tf
    ky, kx = spatial_frequencies(exit_wave.shape, sampling_A)
    pik2 = (np.pi * microscope.wavelength_A * (kx * kx + ky * ky)).astype(np.float32)
    out = np.zeros(exit_wave.shape, np.float32)
    buf = np.empty_like(spec)
    phase = None
    for i, (dz, wt) in enumerate(zip(offsets, weights)):
        if dz == 0:
            wave = sfft.ifft2(spec, workers=w)
        else:
            # chi(defocus + dz) = chi(defocus) - pi lambda k^2 dz; the nodes are symmetric, so the
            # phase factor of -dz is the conjugate of that of +dz
            j = len(offsets) - 1 - i
            if phase is not None and np.isclose(offsets[j], -dz) and j < i:
                np.multiply(spec, np.conj(phase), out=buf)
                phase = None
            else:
                phase = np.exp(1j * (pik2 * np.float32(dz))).astype(np.complex64)
                np.multiply(spec, phase, out=buf)
            wave = sfft.ifft2(buf, workers=w, overwrite_x=True)
        out += np.float32(wt) * (wave.real * wave.real + wave.imag * wave.imag)
        del wave
    return out


def integrate_pixels(intensity: np.ndarray, sampling_A: float, pixel_scale_A: float) -> np.ndarray:
    """Integrate a band-limited intensity over square detector pixels.

    Multiplies the intensity spectrum by the pixel aperture ``sinc(kx p) sinc(ky p)`` (the
    exact pixel-area average of a band-limited function) and samples every m-th field
    point, m = pixel_scale_A / sampling_A (an integer). Detector pixel (i, j) is centred on
    field point (m i, m j).

    Returns
    -------
    float32 array of shape ``intensity.shape // m``
        Mean intensity over each detector pixel.
    """
    import scipy.fft as sfft

    m = int(round(pixel_scale_A / sampling_A))
    if abs(m * sampling_A - pixel_scale_A) > 1e-6 * pixel_scale_A:
        raise ValueError("pixel scale must be an integer multiple of the field sampling")
    w = fft_workers()
    spec = sfft.rfft2(intensity, workers=w)
    ky, kx = spatial_frequencies(intensity.shape, sampling_A, rfft=True)
    spec *= (np.sinc(ky * pixel_scale_A) * np.sinc(kx * pixel_scale_A)).astype(np.float32)
    smooth = sfft.irfft2(spec, s=intensity.shape, workers=w)
    return np.ascontiguousarray(smooth[::m, ::m], dtype=np.float32)
