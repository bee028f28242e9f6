"""Pixel scale of an HRTEM frame from its lattice fringes.

A crystalline particle imaged near a zone axis shows lattice fringes: sharp spots in the
power spectrum at ``1 / period`` cycles/pixel, where ``period = d / pixel_scale`` for a
lattice-plane spacing ``d``. Knowing the material's strongest reflections, the spots' radial
positions give the pixel scale. Steps of :func:`estimate_pixel_scale`:

1. **Spots.** Overlapping tiles (Hann window); each tile's power spectrum divided by its
   ring median (radius bin by radius bin), which makes isotropic power -- pixel noise, the
   amorphous support's Thon rings -- an exponential variate of mean 1 at every radius, while
   fringes stand out as isolated spots. A spot is a local maximum above the Bonferroni
   threshold ``ln(n_tested / FALSE_SPOT_RATE)`` (about one false spot in 100 featureless
   frames), between the periods :data:`MIN_PERIOD_PX` and :data:`MAX_PERIOD_PX`, off the
   frequency axes (detector row/column patterns put power there).
2. **Peaks.** The spots' radial frequencies are pooled (on a log scale, weighted by their
   significance ``ln z``); each cluster within :data:`PEAK_WIDTH` is a peak of the radial
   profile of the spectrum's sharp features.
3. **Match.** Every (peak, reflection) pair proposes a scale ``s = d * f``. A scale's
   log-likelihood sums over peaks ``(w / w_max) * ln(UNEXPLAINED + a_j K)``: each peak
   explained by its best reflection ``j`` (prior weight ``a_j`` times a Gaussian match kernel
   ``K`` of width :data:`MATCH_TOLERANCE` in log scale) or by something else (cross terms,
   aliasing, another phase), weighted by its strength relative to the strongest peak. Prior
   weight of a reflection (which one a lone peak is taken for): its kinematic structure factor
   (atomic numbers as scattering amplitudes) times the ``1 / g^2`` large-angle fall-off of
   electron scattering factors (Mott-Bethe), relative to the material's strongest. A scale
   that explains two or more peaks well is refined over them.
4. **Confidence**: the posterior probability of the best scale among the distinct scales
   proposed (more than :data:`DISTINCT_SCALE` apart, equal priors). A lone fcc {111} peak
   gets about 0.35 (it could be {200}, {220}, ...); {111} with {200} at their 1.155 ratio
   0.5 and more. Prediction uses an estimate from :data:`MIN_CONFIDENCE`.

Materials (:data:`MATERIALS`): fcc Au, Ag, Pt, Pd with ASE's lattice constants
(``ase.build.bulk`` defaults: Ashcroft & Mermin, *Solid State Physics*, 1976); CdSe as
wurtzite (a = 4.2999 A, c = 7.0109 A) and zinc blende (a = 6.052 A), both (O. Madelung,
*Semiconductors: Data Handbook*, 3rd ed., Springer 2004). An unknown material is assumed to
be fcc gold (:data:`ASSUMED_MATERIAL`): Ag is within 0.3 %, Pt and Pd are 4-5 % finer
(their scale would be that much smaller), CdSe fringes are ~1.5 x longer.

Frames whose lattice is not resolved (low magnification: the 0.24 nm Au {111} spacing
below ~2.5 pixels) show no spots and give None.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from temshift.errors import PreprocessError

MIN_PERIOD_PX = 2.5
"""Shortest fringe period searched, pixels (near Nyquist; the detector MTF kills shorter ones)."""
MAX_PERIOD_PX = 32.0
"""Longest fringe period searched, pixels: 8 periods across a 256 px tile; longer periods are
mixed with particle-shape streaks (Au {111} at 0.0075 nm/px)."""
TILE_PX = 256
"""Tile edge, pixels (tiles overlap by half)."""
MIN_FRAME_PX = 64
"""Smallest frame edge accepted, pixels."""
FALSE_SPOT_RATE = 0.01
"""Expected false spots per frame of pure noise (sets the Bonferroni spot threshold)."""
PEAK_WIDTH = 0.01
"""Gaussian width (log frequency, ~1 %) with which spots are pooled into peaks."""
MATCH_TOLERANCE = 0.02
"""Gaussian width (log scale, ~2 %) within which a peak counts as explained by a reflection."""
DISTINCT_SCALE = 0.06
"""Two scales more than 6 % apart (log) are different hypotheses for the confidence."""
UNEXPLAINED = 0.05
"""Likelihood of a peak that no reflection of the hypothesis explains (aliasing, another phase)."""
MAX_PEAKS = 8
"""Strongest peaks matched."""
MIN_SPOTS = 2
"""A peak needs at least this many spots (a lone noise spot is not a fringe)."""
MIN_D_NM = 0.1
"""Finest lattice spacing listed, nm (about the information limit of 200-300 kV HRTEM)."""
MAX_HKL = 4
"""Largest Miller index enumerated."""
ASSUMED_MATERIAL = "Au"
"""What an unknown material is assumed to be."""
MIN_CONFIDENCE = 0.45
"""Confidence from which prediction uses an estimate. Chosen on 20 exploration frames (Au and
CdSe, material given, 0.02-0.08 nm/px, 100 and 1000 e/A^2, 768 px, seed 777, not the
benchmark's): it rejects all 4 wrong estimates (7-245 % off, confidence 0.18-0.41) and keeps
12 of the 16 right ones (within 2 %; the 4 rejected are CdSe, confidence 0.26-0.43)."""


Peak = tuple[float, float, int]
"""A peak: frequency (cycles/pixel), weight (summed significance), number of spots."""
Match = tuple[int, int, float]
"""A matched peak: its index, the reflection's index, the match kernel (0-1)."""


@dataclass(frozen=True)
class Structure:
    """A crystal structure for ``ase.build.bulk``.

    Attributes
    ----------
    symbols : str
        Formula given to `ase.build.bulk` ("Au", "CdSe").
    name : str
        Crystal structure ("fcc", "wurtzite", "zincblende").
    a_A, c_A : float or None
        Lattice parameters, Angstrom (None: ASE's reference value).
    """

    symbols: str
    name: str
    a_A: float | None = None
    c_A: float | None = None


MATERIALS: dict[str, tuple[Structure, ...]] = {
    "Au": (Structure("Au", "fcc"),),
    "Ag": (Structure("Ag", "fcc"),),
    "Pt": (Structure("Pt", "fcc"),),
    "Pd": (Structure("Pd", "fcc"),),
    "CdSe": (Structure("CdSe", "wurtzite", 4.2999, 7.0109), Structure("CdSe", "zincblende", 6.052)),
}
"""Materials whose fringes are known: name -> crystal structures (sources in the module docstring)."""


@dataclass(frozen=True)
class Reflection:
    """A family of lattice planes.

    Attributes
    ----------
    material, structure : str
        E.g. "Au", "fcc".
    hkl : tuple of int
        Miller indices of one member (largest first).
    d_nm : float
        Plane spacing, nm.
    weight : float
        Prior fringe strength relative to the material's strongest (1.0).
    """

    material: str
    structure: str
    hkl: tuple[int, int, int]
    d_nm: float
    weight: float

    @property
    def label(self) -> str:
        """``"Au {111}"``."""
        return f"{self.material} {{{''.join(str(i) if i >= 0 else f'-{-i}' for i in self.hkl)}}}"


@dataclass(frozen=True)
class ScaleEstimate:
    """A pixel scale estimated from lattice fringes.

    Attributes
    ----------
    pixel_scale_nm : float
        Estimated pixel size, nm/pixel.
    confidence : float
        0-1: margin of the best scale over the best different one (module docstring).
    reflection : str
        The reflection the strongest matched peak was taken for ("Au {111}").
    period_px : float
        That peak's fringe period, pixels.
    matched : tuple of str
        Every matched peak, ``"Au {200} at 5.1 px"``.
    n_spots : int
        Spots behind the matched peaks.
    material_assumed : bool
        The material was not given: :data:`ASSUMED_MATERIAL` was assumed.
    """

    pixel_scale_nm: float
    confidence: float
    reflection: str
    period_px: float
    matched: tuple[str, ...]
    n_spots: int
    material_assumed: bool

    def describe(self) -> str:
        """``"estimated 0.031 nm/px from lattice fringes (Au {111}, confidence 0.52)"``."""
        assumed = ", material assumed" if self.material_assumed else ""
        return (
            f"estimated {self.pixel_scale_nm:.3g} nm/px from lattice fringes "
            f"({self.reflection}{assumed}, confidence {self.confidence:.2f})"
        )


def _material_key(material: str) -> str:
    for key in MATERIALS:
        if key.lower() == str(material).strip().lower():
            return key
    raise PreprocessError(f"material {material!r}: no known lattice (known: {', '.join(MATERIALS)})")


def _label_key(hkl: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """Which member names a family: the smallest indices, then the largest triple ((110), not (2-10))."""
    return (-sum(abs(i) for i in hkl), hkl)


@functools.lru_cache(maxsize=16)
def reflections(material: str, min_d_nm: float = MIN_D_NM) -> tuple[Reflection, ...]:
    """The reflections of a material with their spacings and prior weights, strongest first.

    Parameters
    ----------
    material : str
        A name of :data:`MATERIALS` (case-insensitive).
    min_d_nm : float
        Finest spacing listed, nm.

    Returns
    -------
    tuple of Reflection
        One per distinct spacing (families of equal spacing merged, the strongest kept).

    Raises
    ------
    PreprocessError
        Unknown material.
    """
    from ase.build import bulk
    from ase.data import atomic_numbers

    key = _material_key(material)
    rng = range(-MAX_HKL, MAX_HKL + 1)
    hkl = np.array([(h, k, m) for h in rng for k in rng for m in rng if (h, k, m) != (0, 0, 0)])
    found: dict[float, Reflection] = {}
    for st in MATERIALS[key]:
        kw = {} if st.a_A is None else {"a": st.a_A}
        if st.c_A is not None:
            kw["c"] = st.c_A
        atoms = bulk(st.symbols, st.name, cubic=st.name != "wurtzite", **kw)
        g = np.linalg.norm(hkl @ atoms.cell.reciprocal().array, axis=1)  # 1/A, no 2 pi
        z = np.array([atomic_numbers[s] for s in atoms.get_chemical_symbols()], float)
        amp = np.abs(np.exp(2j * np.pi * (hkl @ atoms.get_scaled_positions().T)) @ z) / z.sum()
        # kinematic amplitude x the 1/g^2 fall-off of electron scattering factors (Mott-Bethe)
        strength = amp / g**2
        for i in np.flatnonzero((amp > 1e-3) & (1.0 / g >= min_d_nm * 10)):
            d_nm = round(0.1 / float(g[i]), 4)
            r = Reflection(key, st.name, tuple(int(v) for v in hkl[i]), d_nm, float(strength[i]))  # type: ignore[arg-type]
            old = found.get(d_nm)
            # one entry per spacing: the strongest family, named by its smallest indices
            tie = old is not None and abs(r.weight - old.weight) <= old.weight * 1e-9
            if old is None or r.weight > old.weight * (1 + 1e-9) or (tie and _label_key(r.hkl) > _label_key(old.hkl)):
                found[d_nm] = r
    top = max(r.weight for r in found.values())
    out = [Reflection(r.material, r.structure, r.hkl, r.d_nm, r.weight / top) for r in found.values()]
    return tuple(sorted(out, key=lambda r: -r.weight))


@functools.lru_cache(maxsize=4)
def _tile_geometry(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hann window, per-pixel (fy, fx) in cycles/pixel of an ``rfft2`` half plane, ring index,
    and the mask of searched pixels, for tiles of `n` pixels."""
    fy = np.fft.fftfreq(n)[:, None] * np.ones((1, n // 2 + 1))
    fx = np.fft.rfftfreq(n)[None, :] * np.ones((n, 1))
    f = np.hypot(fy, fx)
    ring = np.rint(f * n).astype(np.int64)
    band = (f >= 1.0 / MAX_PERIOD_PX) & (f <= 1.0 / MIN_PERIOD_PX)
    off_axis = (np.abs(fy) * n > 1.5) & (np.abs(fx) * n > 1.5)
    win = np.hanning(n)
    return np.outer(win, win), fy, fx, ring, band & off_axis


def _tile_starts(length: int, n: int) -> list[int]:
    if length <= n:
        return [0]
    starts = list(range(0, length - n + 1, n // 2))
    return starts if starts[-1] == length - n else [*starts, length - n]


def _check_image(image: ArrayLike) -> np.ndarray:
    try:
        img = np.asarray(image, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PreprocessError(f"pixel-scale estimate: not a numeric image ({exc})") from None
    if img.ndim != 2:
        raise PreprocessError(f"pixel-scale estimate: expected a 2-D frame, got shape {img.shape}")
    if min(img.shape) < MIN_FRAME_PX:
        raise PreprocessError(f"pixel-scale estimate: frame {img.shape} smaller than {MIN_FRAME_PX} px")
    if not np.isfinite(img).all():
        raise PreprocessError("pixel-scale estimate: frame has NaN or infinite pixels")
    return img


def fringe_spots(image: ArrayLike, tile_px: int = TILE_PX) -> tuple[np.ndarray, np.ndarray]:
    """Lattice-fringe spots of a frame's tiled power spectrum.

    Parameters
    ----------
    image : array_like
        (H, W) frame, any intensity units, at least :data:`MIN_FRAME_PX` pixels per edge.
    tile_px : int
        Tile edge, pixels (smaller for frames smaller than it).

    Returns
    -------
    frequency_per_px : numpy.ndarray
        Radial frequency of each spot, cycles/pixel (period = 1 / frequency pixels).
    significance : numpy.ndarray
        ``ln z`` of each spot, z = power / expected isotropic power at its radius.

    Raises
    ------
    PreprocessError
        Not a finite 2-D image of at least :data:`MIN_FRAME_PX` pixels per edge.
    """
    from scipy.fft import rfft2
    from scipy.ndimage import maximum_filter

    img = _check_image(image)
    n = int(min(tile_px, 2 ** int(math.log2(min(img.shape)))))
    lo, hi = np.percentile(img, [0.05, 99.95])  # single-pixel spikes (x-rays, hot pixels)
    img = np.clip(img, lo, hi)
    win, fy, fx, ring, searched = _tile_geometry(n)
    rows, cols = _tile_starts(img.shape[0], n), _tile_starts(img.shape[1], n)
    n_tested = len(rows) * len(cols) * int(searched.sum())
    threshold = math.log(max(n_tested, 1) / FALSE_SPOT_RATE)
    order = np.argsort(ring, axis=None, kind="stable")
    bounds = np.searchsorted(ring.ravel()[order], np.arange(ring.max() + 2))
    freqs: list[np.ndarray] = []
    sigs: list[np.ndarray] = []
    for r0 in rows:
        for c0 in cols:
            t = img[r0 : r0 + n, c0 : c0 + n]
            t = t - t.mean()
            if not t.any():
                continue
            p = np.abs(rfft2(t * win)) ** 2
            flat = p.ravel()[order]
            med = np.zeros(ring.max() + 1)
            for k in range(ring.max() + 1):
                seg = flat[bounds[k] : bounds[k + 1]]
                med[k] = np.median(seg) if seg.size else 0.0
            expected = med[ring] / math.log(2.0)  # median of an exponential = ln 2 x mean
            z = np.where(expected > 0, p / np.maximum(expected, 1e-300), 0.0)
            peaks = searched & (z >= threshold) & (z == maximum_filter(z, size=3, mode="wrap"))
            iy, ix = np.nonzero(peaks)
            for y, x in zip(iy, ix):
                ys = (np.arange(y - 1, y + 2)) % n
                xs = np.clip(np.arange(x - 1, x + 2), 0, n // 2)
                w = p[np.ix_(ys, xs)]
                cy = float((w * fy[np.ix_(ys, xs)]).sum() / w.sum())
                cx = float((w * np.abs(fx[np.ix_(ys, xs)])).sum() / w.sum())
                freqs.append(np.array([math.hypot(cy, cx)]))
                sigs.append(np.array([math.log(z[y, x])]))
    if not freqs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(freqs), np.concatenate(sigs)


def fringe_peaks(frequency_per_px: np.ndarray, significance: np.ndarray) -> list[Peak]:
    """Pool spots into peaks of the radial profile.

    Returns
    -------
    list of (frequency_per_px, weight, n_spots)
        Strongest first; weight = summed significance; peaks of fewer than :data:`MIN_SPOTS`
        spots are dropped.
    """
    if frequency_per_px.size == 0:
        return []
    logf = np.log(frequency_per_px)
    grid = np.arange(logf.min() - 3 * PEAK_WIDTH, logf.max() + 3 * PEAK_WIDTH, PEAK_WIDTH / 4)
    density = (significance[None, :] * np.exp(-0.5 * ((grid[:, None] - logf[None, :]) / PEAK_WIDTH) ** 2)).sum(1)
    inner = (density[1:-1] >= density[:-2]) & (density[1:-1] > density[2:])
    out: list[Peak] = []
    for i in np.flatnonzero(inner) + 1:
        near = np.abs(logf - grid[i]) <= 2 * PEAK_WIDTH
        if near.sum() < MIN_SPOTS:
            continue
        w = significance[near]
        out.append((float(np.exp((w * logf[near]).sum() / w.sum())), float(w.sum()), int(near.sum())))
    return sorted(out, key=lambda p: -p[1])


def _log_likelihood(log_s: float, peaks: list[Peak], refl: tuple[Reflection, ...]) -> tuple[float, list[Match]]:
    """Log-likelihood of a scale and the (peak, reflection, kernel) matches that make it: every
    peak explained by its best reflection (prior weight x match kernel) or, at
    :data:`UNEXPLAINED`, by something else; each peak's term weighted by its strength relative
    to the strongest peak's (weak peaks may be noise, cross terms or other phases)."""
    total, matches = 0.0, list[Match]()
    top = max(w for _f, w, _n in peaks)
    for i, (f, w, _n) in enumerate(peaks):
        best, best_j, best_k = 0.0, -1, 0.0
        for j, r in enumerate(refl):
            k = math.exp(-0.5 * ((math.log(f * r.d_nm) - log_s) / MATCH_TOLERANCE) ** 2)
            if r.weight * k > best:
                best, best_j, best_k = r.weight * k, j, k
        total += w / top * math.log(UNEXPLAINED + best)
        if best > UNEXPLAINED:
            matches.append((i, best_j, best_k))
    return total, matches


def _match(peaks: list[Peak], refl: tuple[Reflection, ...]) -> tuple[float, float, list[Match], float]:
    """The most likely scale of peaks for a reflection list: (log-likelihood, log scale,
    matches, posterior among the distinct scales the (peak, reflection) pairs propose)."""
    hypotheses: list[tuple[float, list[Match], float]] = []
    for f, _w, _n in peaks:
        for r in refl:
            log_s = math.log(f * r.d_nm)
            _ll, matches = _log_likelihood(log_s, peaks, refl)
            hypotheses.append((_ll, matches, log_s))
            close = [(i, j, k) for i, j, k in matches if k > 0.5]  # refine over the peaks it explains well
            if len(close) > 1:
                ws = [k * peaks[i][1] for i, _j, k in close]
                log_s = sum(w * math.log(peaks[i][0] * refl[j].d_nm) for w, (i, j, _k) in zip(ws, close)) / sum(ws)
                hypotheses.append((*_log_likelihood(log_s, peaks, refl), log_s))
    hypotheses.sort(key=lambda h: -h[0])
    distinct: list[tuple[float, list[Match], float]] = []  # the best hypothesis of each distinct scale
    for h in hypotheses:
        if all(abs(h[2] - d[2]) > DISTINCT_SCALE for d in distinct):
            distinct.append(h)
    best_ll, matches, best_log_s = distinct[0]
    return best_ll, best_log_s, matches, 1.0 / sum(math.exp(d[0] - best_ll) for d in distinct)


def estimate_pixel_scale(
    image: ArrayLike, material: str | None = None, *, tile_px: int = TILE_PX
) -> ScaleEstimate | None:
    """Estimate the pixel scale of an HRTEM frame from its lattice fringes.

    Parameters
    ----------
    image : array_like
        (H, W) raw or preprocessed frame, any intensity units (8-bit images too).
    material : str, optional
        Particle material, a name of :data:`MATERIALS`; None: :data:`ASSUMED_MATERIAL`
        is assumed (the estimate says so).
    tile_px : int
        Tile edge of the spectra, pixels.

    Returns
    -------
    ScaleEstimate or None
        None when no fringe peak stands out (no resolved lattice: low magnification,
        amorphous or off-axis particles, a featureless frame).

    Raises
    ------
    PreprocessError
        NaN or infinite pixels, not 2-D, smaller than :data:`MIN_FRAME_PX`, or an unknown
        material.
    """
    assumed = material is None
    refl = reflections(ASSUMED_MATERIAL if material is None else material)
    peaks = fringe_peaks(*fringe_spots(image, tile_px))[:MAX_PEAKS]
    if not peaks:
        return None
    _ll, best_log_s, matches, posterior = _match(peaks, refl)
    if not matches:
        return None
    i0, j0, _k = max(matches, key=lambda m: peaks[m[0]][1])
    return ScaleEstimate(
        pixel_scale_nm=math.exp(best_log_s),
        confidence=float(posterior),
        reflection=refl[j0].label,
        period_px=1.0 / peaks[i0][0],
        matched=tuple(f"{refl[j].label} at {1.0 / peaks[i][0]:.3g} px" for i, j, _k in matches),
        n_spots=sum(peaks[i][2] for i, _j, _k in matches),
        material_assumed=assumed,
    )
