"""Exit waves: electron scattering by the particles (abTEM) and by the support.

Why the field is not one big abTEM multislice
---------------------------------------------
A 4096 x 4096 frame at 0.02 nm/pixel covers 82 nm; a 0.1 A potential grid over it would be
8192^2 or more per slice, and tens of slices -- minutes per frame and gigabytes. The
specimen is sparse (a few percent of the area is particle), so the exit wave is built in
pieces, each at the resolution it needs:

* **Particles** -- each particle's exit wave is computed with abTEM on its own small box
  (particle + margin) at a fine step (<= 0.1 A, an integer fraction of the field step):
  a real multislice (``mode="multislice"``: 2.5 A slices, thicker for particles above ~16 nm
  so that there are at most 64 slices) or a single projected-potential phase grating
  (``mode="projection"``: abTEM's infinite projection of the whole particle, no
  propagation inside it). The fine wave is then band-limited onto the field grid by
  Fourier cropping (exact: the objective aperture removes everything beyond that band)
  and pasted into the field, tapered to 1 over its last few samples. The box margin
  (>= 6 A plus 4 % of the thickness) keeps the wave scattered to high angles inside the box.
* **Support** -- the amorphous film is weakly scattering (mean phase ~0.2 rad for 3 nm of
  carbon), so it is a single phase grating ``exp(i sigma V_proj)`` whose projected potential
  abTEM computes for an atomistic block of <= 20 nm (`specimen.make_support`), sampled
  directly at the field step (<= 0.245 A, which resolves the aperture-limited band). The
  block is periodic in x and y; larger fields are tiled with randomly rotated / mirrored
  copies (the 8 dihedral variants of a periodic square block tile without seams) at a
  random origin, so no periodicity shows at the frame scale.
* **Specimen** -- particles sit on the film; the exit wave is the particle waves times the
  support transmission (the beam leaves the particle and crosses the thin film; Fresnel
  propagation inside 3-5 nm of amorphous film is negligible at this resolution).
  Laterally separate particles do not scatter into each other.

Field coordinates: field sample (i, j) sits at (y, x) = (i, j) * sampling_A.
"""

from __future__ import annotations

import math

import numpy as np

from temshift.simulate.optics import fft_workers, interaction_constant

#: finest potential step used for particle exit waves, in A (the issue asks ~0.1 A or finer)
FINE_SAMPLING_A = 0.1
#: multislice slice thickness in A. Against 1 A slices, the aperture-limited image of a 5 nm
#: zone-axis Au particle differs by 1.2 % (2 A), ~3 % (2.5 A) and 6 % (3.5 A) (mean absolute
#: difference relative to the image's mean deviation); the single-slice projection mode by
#: ~60 % (it neglects propagation inside the particle), at a fraction of the cost.
SLICE_THICKNESS_A = 2.5
#: at most this many slices per particle (thicker slices for big particles)
MAX_SLICES = 64
#: side of the atomistic support block in A
SUPPORT_BLOCK_A = 200.0

_ABTEM_READY = False


def configure_abtem() -> None:
    """Quiet, deterministic, single-process abTEM settings (called once per process).

    abTEM's FFTs use numpy's pocketfft: on the particle boxes (~700^2) it took 35 % less CPU
    than FFTW with FFTW_ESTIMATE plans, and FFTW's default MEASURE plans every new box size
    for up to a minute and is not bit-reproducible. FFTW, if selected elsewhere, gets one
    thread (threaded FFTW on a loaded 2-core machine was 3x slower in wall time). No
    progress bars; computations are run with dask's synchronous scheduler by the callers.
    """
    global _ABTEM_READY
    if _ABTEM_READY:
        return
    import abtem

    abtem.config.set(
        {
            "fft": "numpy",
            "diagnostics.progress_bar": False,
            "fftw.planning_effort": "FFTW_ESTIMATE",
            "fftw.threads": 1,
            "mkl.threads": 1,
        }
    )
    _ABTEM_READY = True


def _good_size(n: int, multiple: int = 8) -> int:
    """Smallest multiple of `multiple` >= n whose prime factors are 2, 3, 5 only."""
    n = int(math.ceil(n / multiple) * multiple)
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += multiple


def fine_factor(field_sampling_A: float, fine_sampling_A: float = FINE_SAMPLING_A) -> int:
    """Integer r so that the particle grid step field_sampling_A / r is <= fine_sampling_A."""
    return max(1, math.ceil(field_sampling_A / fine_sampling_A - 1e-9))


def _fourier_crop(wave: np.ndarray, n: int) -> np.ndarray:
    """Band-limit a periodic square wave to n x n samples over the same extent."""
    import scipy.fft as sfft

    big = wave.shape[0]
    if big == n:
        return wave.astype(np.complex64)
    spec = sfft.fft2(wave, workers=fft_workers())
    idx = np.r_[0 : (n + 1) // 2, big - n // 2 : big]
    small = spec[np.ix_(idx, idx)]
    out = sfft.ifft2(small, workers=fft_workers()) * (n * n / (big * big))
    return out.astype(np.complex64)


def particle_exit_wave(
    particle,
    field_sampling_A: float,
    center_yx_A,
    mode: str = "multislice",
    energy_eV: float = 300e3,
    fine_sampling_A: float = FINE_SAMPLING_A,
):
    """Exit wave of one particle in vacuum on a local box of the field grid (abTEM).

    Parameters
    ----------
    particle : specimen.Nanoparticle
    field_sampling_A : float
        Field grid step (A).
    center_yx_A : (float, float)
        Particle centre in field coordinates (A).
    mode : {"multislice", "projection"}
    energy_eV : float
    fine_sampling_A : float
        Upper bound of the abTEM grid step.

    Returns
    -------
    wave : (n, n) complex64
        Exit wave divided by the unscattered wave (1 far from the particle).
    origin : (int, int)
        Field index of the box's sample (0, 0); may be negative or beyond the field.
    """
    import abtem
    from ase import Atoms

    configure_abtem()
    r = fine_factor(field_sampling_A, fine_sampling_A)
    thickness = particle.thickness_A
    margin = 6.0 + 0.04 * thickness
    n = _good_size(int(math.ceil((2 * particle.bounding_radius_A + 2 * margin) / field_sampling_A)))
    extent = n * field_sampling_A
    cy, cx = center_yx_A
    oy = int(round(cy / field_sampling_A)) - n // 2
    ox = int(round(cx / field_sampling_A)) - n // 2
    pos = particle.positions_A.copy()
    pos[:, 0] += cx - ox * field_sampling_A
    pos[:, 1] += cy - oy * field_sampling_A
    pos[:, 2] += -pos[:, 2].min() + 2.0
    depth = float(pos[:, 2].max() + 2.0)
    atoms = Atoms(symbols=list(particle.symbols), positions=pos, cell=[extent, extent, depth])
    gpts = (n * r, n * r)
    if mode == "multislice":
        n_slices = min(MAX_SLICES, max(1, math.ceil(depth / SLICE_THICKNESS_A)))
        pot = abtem.Potential(atoms, gpts=gpts, slice_thickness=depth / n_slices, projection="infinite")
        wave = abtem.PlaneWave(energy=energy_eV).multislice(pot).compute(scheduler="synchronous").array
    elif mode == "projection":
        pot = abtem.Potential(atoms, gpts=gpts, slice_thickness=depth, projection="infinite")
        v = pot.build().compute(scheduler="synchronous").project().array
        wave = np.exp(1j * interaction_constant(energy_eV) * v.astype(np.float64)).astype(np.complex64)
    else:
        raise ValueError(f"unknown mode {mode!r} (multislice or projection)")
    wave = np.asarray(wave).reshape(gpts)
    # abTEM indexes arrays as (x, y); the field is (y, x)
    wave = np.ascontiguousarray(wave.T)
    ring = np.concatenate([wave[:2].ravel(), wave[-2:].ravel(), wave[:, :2].ravel(), wave[:, -2:].ravel()])
    wave = wave / ring.mean()
    return _fourier_crop(wave, n), (oy, ox)


def _taper(n: int, width: int = 4) -> np.ndarray:
    """Separable window: 1 inside, cosine roll-off to 0 over `width` samples at each edge."""
    w = np.ones(n, np.float32)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(width) + 0.5) / width)
    w[:width] = ramp
    w[-width:] = ramp[::-1]
    return np.outer(w, w)


def paste_wave(field: np.ndarray, local: np.ndarray, origin) -> None:
    """Multiply a particle's (tapered) wave into the field wave in place; clips at the edges."""
    n = local.shape[0]
    oy, ox = origin
    ny, nx = field.shape
    y0, y1 = max(oy, 0), min(oy + n, ny)
    x0, x1 = max(ox, 0), min(ox + n, nx)
    if y0 >= y1 or x0 >= x1:
        return
    tapered = 1 + _taper(n) * (local - 1)
    field[y0:y1, x0:x1] *= tapered[y0 - oy : y1 - oy, x0 - ox : x1 - ox]


def support_transmission(
    support,
    thickness_A: float,
    shape,
    field_sampling_A: float,
    rng,
    energy_eV: float = 300e3,
    block_A: float = SUPPORT_BLOCK_A,
) -> np.ndarray:
    """Phase grating of the amorphous support over the whole field, complex64.

    Parameters
    ----------
    support : str or specimen.Support
    thickness_A : float
        Film thickness.
    shape : (int, int)
        Field grid shape (square fields).
    field_sampling_A : float
    rng : numpy.random.Generator
    energy_eV : float
    block_A : float
        Side of the atomistic block that is tiled (see module docstring).
    """
    import abtem

    from temshift.simulate.specimen import make_support

    configure_abtem()
    ny, nx = shape
    block = min(max(ny, nx), _good_size(int(round(block_A / field_sampling_A))))
    atoms = make_support(support, block * field_sampling_A, thickness_A, rng)
    pot = abtem.Potential(atoms, gpts=(block, block), slice_thickness=atoms.cell[2, 2], projection="infinite")
    v = np.asarray(pot.build().compute(scheduler="synchronous").project().array).T
    grating = np.exp(1j * interaction_constant(energy_eV) * v.astype(np.float64)).astype(np.complex64)
    if block >= ny and block >= nx:
        return np.ascontiguousarray(grating[:ny, :nx])
    nty, ntx = -(-ny // block) + 1, -(-nx // block) + 1
    big = np.empty((nty * block, ntx * block), np.complex64)
    for i in range(nty):
        for j in range(ntx):
            tile = np.rot90(grating, k=int(rng.integers(4)))
            if rng.random() < 0.5:
                tile = tile[:, ::-1]
            big[i * block : (i + 1) * block, j * block : (j + 1) * block] = tile
    oy, ox = (int(v) for v in rng.integers(0, block, 2))
    return np.ascontiguousarray(big[oy : oy + ny, ox : ox + nx])
