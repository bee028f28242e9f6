"""Image statistics that describe what a segmentation model was trained on.

:func:`training_statistics` measures a dataset once; the training stage stores the result in
every checkpoint, and prediction measures new frames the same way to warn about shifts.

All statistics are computed on the *model input*: a preprocessed image at the model's pixel
scale (after pixel-scale matching), in square tiles of `tile` pixels (the training patch size),
so that a training patch and a tile of a new frame are measured the same way.

Per tile:

``snr``
    Background signal-to-noise ratio ``sqrt(sd^2 - noise_sd^2) / noise_sd`` with SDs clipped
    to the 0.5-99.5th percentiles, over background pixels (with a mask: pixels >= 2 px from
    particles; without: all, particles cover a few % of a frame). The noise SD is Immerkaer's
    estimator: the image is filtered with the separable kernel ``[1,-2,1] x [1,-2,1]`` (which
    cancels anything linear along either axis, hence most of the lattice-fringe signal) and
    ``noise_sd = SD / 6`` (6 = norm of the kernel). For shot noise SNR grows as
    ``sqrt(dose)``, so ``(snr / snr_train) ** 2`` is a dose-equivalent factor.
``median``
    Median pixel value after preprocessing (in units of the frame's SD when standardized).
``fringe profile``
    Radially averaged power spectrum (Hann window) divided by a background spectrum (the
    median tile: Thon rings of the amorphous support and the noise cancel); lattice fringes
    of the few tiles with particles make peaks at ``1 / period``; the peak height
    ("prominence") says how strong they are.
``contrast``
    With a mask only, on tiles with more particle pixels than the dataset patch filter
    requires (``400 * (tile / 512) ** 2``), particle = mask eroded by 2 px, background =
    pixels >= 2 px from the mask: ``|median(smooth[particle]) - median(smooth[background])| / sd(background)``
    with a Gaussian smoothing of ``sigma = 2`` pixels (suppresses noise, keeps the mean level):
    :func:`temshift.datasets.contrast.core_contrast`, where the project's other contrast
    statistics are defined beside it.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from typing import Any

import numpy as np

from temshift.datasets.records import TrainingStatistics, positive_or_none
from temshift.preprocess.noise import KERNEL_NORM, immerkaer_residual
from temshift.preprocess.patches import min_particle_pixels

STATS_VERSION = 2
"""Version of the statistics' definitions (stored with them; other versions are recomputed)."""
FRINGE_MIN_PERIOD_PX = 2.5
"""Shortest fringe period searched, pixels (near Nyquist)."""
FRINGE_MAX_PERIOD_PX = 24.0
"""Longest fringe period searched, pixels: CdSe 0.37 nm at the finest catalog scale 0.02 nm/px is
18.5 px; longer periods pick up particle-shape side lobes."""
FRINGE_MIN_PROMINENCE = 1.5
"""Spectral peak / baseline ratio from which fringes count as detected."""
STRONG_TILE_FRACTION = 0.25
"""Fraction of tiles (largest fringe prominence) whose spectra are averaged: particles cover
only a few % of a frame, so most tiles hold no lattice fringes."""


@functools.lru_cache(maxsize=8)
def _radial_bins(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For tiles of `n` pixels: the Hann window, the flat indices of the pixels inside the
    ``n // 2`` radial frequency bins, their bin, and the pixel count per bin (cached: every
    tile of an image has the same size)."""
    f = np.fft.fftfreq(n)
    idx = np.rint(np.sqrt(f[:, None] ** 2 + f[None, :] ** 2) * n).astype(np.int64)
    win = np.hanning(n)
    inside = np.flatnonzero(idx < n // 2)
    bins = idx.ravel()[inside]
    counts = np.bincount(bins, minlength=n // 2)
    for a in (win, inside, bins, counts):
        a.setflags(write=False)
    return np.outer(win, win), inside, bins, counts


def radial_log_power(tile: np.ndarray) -> np.ndarray:
    """Log of the radially averaged power spectrum (Hann window), indexed by frequency bin.

    Bin ``k`` of a tile of ``n`` pixels is the spatial frequency ``k / n`` cycles/pixel
    (period ``n / k`` pixels).
    """
    tile = np.asarray(tile, dtype=np.float64)
    n = min(tile.shape)
    tile = tile[:n, :n] - tile[:n, :n].mean()
    window, inside, bins, counts = _radial_bins(n)
    power = np.abs(np.fft.fft2(tile * window)) ** 2
    sums = np.bincount(bins, weights=power.ravel()[inside], minlength=n // 2)
    return np.log(np.maximum(sums / np.maximum(counts, 1), 1e-30))


def fringe_profiles(logpower: np.ndarray, n: int, baseline: np.ndarray | None = None) -> np.ndarray:
    """Fringe profiles: tile spectra relative to a background spectrum, NaN outside the band.

    Parameters
    ----------
    logpower : numpy.ndarray
        (T, n // 2) radial log power of T tiles.
    n : int
        Tile edge, pixels.
    baseline : numpy.ndarray, optional
        Background log power. Default: the median over the tiles when there are at least 8
        (particles cover a few % of a frame, so the median tile is background: Thon rings
        of the amorphous support and the noise spectrum cancel, lattice fringes stand out);
        with fewer tiles each spectrum's running median over 21 bins.

    Returns
    -------
    numpy.ndarray
        (T, n // 2) ratios, each normalized to a median of 1 over the searched band.
    """
    from scipy.ndimage import median_filter

    logpower = np.atleast_2d(logpower)
    if baseline is None:
        if len(logpower) >= 8:
            baseline = np.median(logpower, axis=0)
        else:
            baseline = np.stack([median_filter(lp, size=21, mode="nearest") for lp in logpower])
    ratio = np.exp(logpower - baseline)
    k = np.arange(logpower.shape[1])
    band = (k >= n / FRINGE_MAX_PERIOD_PX) & (k <= n / FRINGE_MIN_PERIOD_PX)
    ratio[:, ~band] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ratio /= np.nanmedian(ratio, axis=1, keepdims=True)
    return ratio


def fringe_peaks(profile: np.ndarray, n: int, max_peaks: int = 5) -> list[dict]:
    """Peaks of a fringe profile: ``[{"period_px", "prominence"}]``, strongest first."""
    p = np.nan_to_num(profile, nan=0.0)
    idx = local_maxima(p)
    idx = idx[p[idx] >= FRINGE_MIN_PROMINENCE]
    heights = p[idx]
    order: np.ndarray | list[int] = np.argsort(heights)[::-1][:max_peaks] if len(idx) else []
    out = []
    top = heights[order[0]] if len(order) else 0.0
    for j in order:
        if heights[j] < 1.0 + 0.15 * (top - 1.0):  # minor wiggles beside a strong peak
            continue
        k = idx[j]
        # parabolic interpolation of the peak position in the log profile
        if 0 < k < len(p) - 1 and min(p[k - 1], p[k + 1]) > 0:
            a, b, c = np.log(p[k - 1]), np.log(p[k]), np.log(p[k + 1])
            den = a - 2 * b + c
            k = k + (0.5 * (a - c) / den if den < 0 else 0.0)
        out.append({"period_px": float(n / k), "prominence": float(heights[j])})
    return out


def local_maxima(x: np.ndarray) -> np.ndarray:
    """Indices of the local maxima of a 1-D array, as ``scipy.signal.find_peaks(x)`` finds them.

    A maximum is a sample, or the middle (rounded down) of a run of equal samples, with a
    strictly lower sample on both sides; the first and last samples never count. Written
    with numpy because importing ``scipy.signal`` alone takes about a second, a fifth of
    the time budget of a whole ``temshift predict`` (tests check the equivalence).
    """
    x = np.asarray(x)
    if len(x) < 3:
        return np.zeros(0, dtype=np.intp)
    change = np.flatnonzero(np.diff(x) != 0) + 1  # starts of runs of equal values (after the first)
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [len(x)])) - 1
    vals = x[starts]
    inner = np.arange(1, len(starts) - 1)
    peak = inner[(vals[inner] > vals[inner - 1]) & (vals[inner] > vals[inner + 1])]
    return ((starts[peak] + ends[peak]) // 2).astype(np.intp)


def tile_statistics(tile: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Statistics of one tile: ``snr``, ``median``, ``logpower`` (radial log power), ``contrast``."""
    t = np.asarray(tile, dtype=np.float64)
    m: np.ndarray | None = None
    near: np.ndarray | None = None
    if mask is not None:
        from scipy.ndimage import binary_dilation

        m = np.asarray(mask) != 0
        near = binary_dilation(m, iterations=2)  # particles and pixels < 2 px from them
    out = {
        "snr": _snr(t, mask, near=near),
        "median": float(np.median(t)),
        "logpower": radial_log_power(t),
        "contrast": np.nan,
    }
    if m is not None and near is not None:  # both or neither
        out["particle_fraction"] = float(m.mean())
        # as for training patches (docs/protocol.md, step 4), a tile counts only with enough particle
        # pixels: a few stray mask pixels give a meaningless, near-zero contrast
        if min_particle_pixels(float(np.sqrt(m.size))) < m.sum() < m.size:
            from temshift.datasets.contrast import core_contrast

            out["contrast"] = core_contrast(t, m, near)
    return out


def summarize_tiles(stats: list[dict], n: int, baseline: np.ndarray | None = None) -> dict:
    """Combine tile statistics of one image (or one training frame) into one summary.

    `baseline` is the background log power for the fringe profiles (see :func:`fringe_profiles`).

    Returns
    -------
    dict
        ``snr``, ``median``, ``contrast`` (medians over tiles; contrast over tiles with
        particles), ``fringe_peaks`` (peaks of the mean fringe profile of the strongest
        :data:`STRONG_TILE_FRACTION` of tiles), ``fringe_period_px`` (strongest peak or None),
        ``n_tiles``.
    """
    profiles = fringe_profiles(np.array([s["logpower"] for s in stats]), n, baseline)
    prom = np.nanmax(np.nan_to_num(profiles, nan=0.0), axis=1)
    k = max(1, int(np.ceil(STRONG_TILE_FRACTION * len(stats))))
    strong = np.argsort(prom)[::-1][:k]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins outside the band
        mean_profile = np.nanmean(profiles[strong], axis=0)
    peaks = fringe_peaks(mean_profile, n)
    contrast = [s["contrast"] for s in stats if np.isfinite(s["contrast"])]
    return {
        "snr": float(np.median([s["snr"] for s in stats])),
        "median": float(np.median([s["median"] for s in stats])),
        "contrast": float(np.median(contrast)) if contrast else None,
        "fringe_peaks": peaks,
        "fringe_period_px": peaks[0]["period_px"] if peaks else None,
        "n_tiles": len(stats),
    }


def image_statistics(
    image: np.ndarray, mask: np.ndarray | None = None, *, tile: int = 512, max_tiles: int = 64
) -> dict:
    """Statistics of a preprocessed model-input image (see module docstring).

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) preprocessed image at the model's pixel scale.
    mask : numpy.ndarray, optional
        (H, W) particle mask (e.g. the prediction) for the contrast statistic.
    tile : int
        Tile edge, pixels (the training patch size); smaller images use one tile.
    max_tiles : int
        At most this many tiles, spread evenly over the image.

    Returns
    -------
    dict
        See :func:`summarize_tiles`.
    """
    image = np.asarray(image, dtype=np.float32)
    t, origins = tile_origins(image.shape, tile, max_tiles)
    stats = _map_tiles(
        lambda o: tile_statistics(
            image[o[0] : o[0] + t, o[1] : o[1] + t], None if mask is None else mask[o[0] : o[0] + t, o[1] : o[1] + t]
        ),
        origins,
    )
    return summarize_tiles(stats, t)


def _map_tiles(fn, origins: list) -> list:
    """``[fn(o) for o in origins]``, on up to one thread per core (numpy's FFTs, sorts and
    array arithmetic release the GIL); the results, and their order, do not depend on it."""
    threads = min(len(origins), os.cpu_count() or 1, 8)
    if threads <= 1:
        return [fn(o) for o in origins]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, origins))


def tile_origins(shape, tile: int, max_tiles: int):
    """Edge and (row, col) origins of non-overlapping square tiles, at most `max_tiles` spread evenly."""
    h, w = shape
    t = min(tile, h, w)
    origins = [(r, c) for r in range(0, h - t + 1, t) for c in range(0, w - t + 1, t)]
    if len(origins) > max_tiles:
        origins = [origins[i] for i in np.linspace(0, len(origins) - 1, max_tiles).round().astype(int)]
    return t, origins


def noise_snr(image: np.ndarray, *, tile: int = 512, max_tiles: int = 64) -> float:
    """Median tile SNR of an image (the ``snr`` statistic alone)."""
    image = np.asarray(image, dtype=np.float32)
    t, origins = tile_origins(image.shape, tile, max_tiles)
    return float(np.median(_map_tiles(lambda o: _snr(image[o[0] : o[0] + t, o[1] : o[1] + t]), origins)))


def _clipped_sd(v: np.ndarray) -> float:
    """SD of the values between the 0.5th and 99.5th percentiles (drops outliers such as
    x-ray residue and edges; unlike a MAD it stays smooth on quantized low-dose counts)."""
    lo, hi = np.percentile(v, (0.5, 99.5))
    return float(v[(v >= lo) & (v <= hi)].std())


def _snr(tile: np.ndarray, mask: np.ndarray | None = None, near: np.ndarray | None = None) -> float:
    """Background SNR from clipped SDs; with a mask (training labels) only background pixels
    (>= 2 px from particles) count, without one the few % of particle pixels of a frame do.
    `near` is the mask dilated by 2 px, when the caller has it already."""
    t = np.asarray(tile, dtype=np.float64)
    lap = immerkaer_residual(t)
    bg_t, bg_l = t.ravel(), lap.ravel()
    if mask is not None:
        if near is None:
            from scipy.ndimage import binary_dilation

            near = binary_dilation(np.asarray(mask) != 0, iterations=2)
        bg = ~near
        if bg.sum() >= 0.1 * bg.size:
            bg_t, bg_l = t[bg], lap[bg[1:-1, 1:-1]]
    sd_n = _clipped_sd(bg_l) / KERNEL_NORM
    sd_t = _clipped_sd(bg_t)
    return float(np.sqrt(max(sd_t**2 - sd_n**2, 0.0)) / sd_n) if sd_n > 0 else float("inf")


def jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _spread(values) -> dict | None:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return None
    med = float(np.median(v))
    return {
        "median": med,
        "spread": float(1.4826 * np.median(np.abs(v - med))),
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(len(v)),
    }


def training_statistics(
    dataset_path: str | os.PathLike[str], *, max_frames: int = 32, patches_per_frame: int = 4, seed: int = 0
) -> TrainingStatistics:
    """Statistics of a training dataset, for the model to carry.

    Parameters
    ----------
    dataset_path : str or Path
        Dataset file readable by :func:`temshift.datasets.load_dataset`.
    max_frames : int
        At most this many source frames (random, `seed`) are measured.
    patches_per_frame : int
        Patches measured per source frame (patches are grouped by the provenance ``file``;
        without provenance each patch counts as a frame).
    seed : int
        Sampling seed.

    Returns
    -------
    TrainingStatistics
        Version, tile size, pixel scale and dose (of the dataset's spec, else its file
        attributes), the fringe peaks of all measured patches, and the spread over frames
        of the fringe period, SNR, median and contrast (``to_stored()`` gives the JSON form).
    """
    from temshift.datasets import load_dataset

    ds = load_dataset(dataset_path)
    n_patches, n = len(ds.images), int(min(ds.images.shape[1:]))
    files = None
    prov = getattr(ds, "provenance", None)
    if prov is not None and "file" in getattr(prov, "columns", ()) and len(prov) == n_patches:
        files = prov["file"].astype(str).to_numpy()
        if len(set(files)) == 1 and "row" in prov.columns and (prov["row"] < 0).all():
            files = None  # provenance unknown (published pair): each patch counts as a frame
    groups: dict[Any, list[int]] = {}
    for i in range(n_patches):
        groups.setdefault(files[i] if files is not None else i, []).append(i)
    rng = np.random.default_rng(seed)
    keys = list(groups)
    if len(keys) > max_frames:
        keys = [keys[i] for i in sorted(rng.choice(len(keys), max_frames, replace=False))]
    frame_tiles = []
    for k in keys:
        idx = groups[k]
        if len(idx) > patches_per_frame:
            idx = sorted(rng.choice(idx, patches_per_frame, replace=False).tolist())
        frame_tiles.append([tile_statistics(np.asarray(ds.images[i]), np.asarray(ds.labels[i])) for i in idx])
    all_tiles = [t for tiles in frame_tiles for t in tiles]
    # background spectrum (see stats.fringe_profiles): every training patch holds particles, so
    # take the median of the quarter of sampled patches with the smallest particle area
    frac = np.array([t.get("particle_fraction", 0.0) for t in all_tiles])
    baseline = None
    if len(all_tiles) >= 8:
        low = frac <= np.quantile(frac, 0.25)
        baseline = np.median(np.array([t["logpower"] for t in all_tiles])[low], axis=0)
    per_frame = [summarize_tiles(tiles, n, baseline) for tiles in frame_tiles]
    overall = summarize_tiles(all_tiles, n, baseline)
    return TrainingStatistics.model_validate(
        jsonable(
            {
                "version": STATS_VERSION,
                "tile": n,
                "pixel_scale_nm": positive_or_none(ds.pixel_scale_nm),
                "dose_e_per_A2": positive_or_none(ds.dose_e_per_A2),
                "fringe_peaks": overall["fringe_peaks"],
                "fringe_period_px": _spread(f["fringe_period_px"] for f in per_frame),
                "snr": _spread(f["snr"] for f in per_frame),
                "median": _spread(f["median"] for f in per_frame),
                "contrast": _spread(f["contrast"] for f in per_frame),
                "n_frames": len(per_frame),
                "n_patches": len(all_tiles),
                "dataset": str(dataset_path),
            }
        )
    )


def spectral_roughness(patch: np.ndarray) -> float:
    """Image roughness as the real-data reference computes it: ``sum(|F|^2 k^2) / sum(|F|^2)``.

    `F` is the 2D FFT of the patch and ``k`` the radial spatial frequency in cycles per
    pixel (``numpy.fft.fftfreq``), so the result is the power-weighted mean squared
    frequency, cycles^2 / pixel^2 (0 for a flat patch up to 0.5 for pure checkerboard noise).
    """
    p = np.asarray(patch, dtype=np.float64)
    power = np.abs(np.fft.fft2(p)) ** 2
    ky, kx = np.fft.fftfreq(p.shape[0]), np.fft.fftfreq(p.shape[1])
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    total = power.sum()
    return float((power * k2).sum() / total) if total > 0 else float("nan")


def checkpoint_statistics(dataset_path: str | os.PathLike[str]) -> TrainingStatistics | None:
    """:func:`training_statistics` of a model's training data, or None with a warning.

    What a checkpoint carries for shift warnings: a dataset whose statistics cannot be
    measured leaves the model usable, only without warnings, so the failure is a
    `UserWarning` naming the file instead of an error.
    """
    import warnings

    try:
        return training_statistics(dataset_path)
    except (ValueError, KeyError, OSError) as exc:
        warnings.warn(f"{dataset_path}: training statistics not measured ({exc})", stacklevel=2)
        return None
