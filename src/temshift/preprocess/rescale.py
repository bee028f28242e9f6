"""Intensity rescaling of a (flat-field corrected) frame, and the table of rescale methods.

docs/protocol.md, step 3: normalize (min 0, max 1), standardize (mean 0, std 1; the paper's
choice), histogram (clip to the 1st-99th percentiles, then normalize), or none.

`RESCALE_METHODS` is the one list of methods: `PreprocessSettings`, study specs and the CLI
read their choices from it, so a method added with :func:`register_rescale` is accepted
everywhere (the CLI sees methods registered before it is imported).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

_CHUNK = 1 << 17  # elements per chunk (512 kB of float32): sweeps stay in cache


def chunk_moments(
    chunk: np.ndarray, shift: float | np.floating[Any], buf: np.ndarray
) -> tuple[int, float, float, float]:
    """``(n, shift, sum(d), sum(d^2))`` with ``d = chunk - shift`` (float32 within the chunk; `buf` is scratch)."""
    d = np.subtract(chunk, np.float32(shift), out=buf[: chunk.size])
    return chunk.size, float(shift), float(d.sum()), float(np.dot(d, d))


def mean_std_from_moments(moments: Sequence[tuple[int, float, float, float]]) -> tuple[float, float]:
    """Combine `chunk_moments` (all with the same shift) into mean and population std."""
    n = sum(m[0] for m in moments)
    shift = moments[0][1]
    m1 = sum(m[2] for m in moments) / n
    m2 = sum(m[3] for m in moments) / n
    return shift + m1, max(m2 - m1 * m1, 0.0) ** 0.5


def mean_std(img: np.ndarray) -> tuple[float, float]:
    """Mean and (population) standard deviation in one chunked sweep.

    Each chunk is shifted by a sample mean (so ``E[d^2] - E[d]^2`` does not cancel),
    summed in float32 within the chunk (pairwise sum / BLAS dot over 2^17 values) and
    in float64 across chunks: relative error ~1e-7 at 4096 x 4096, no full-size temporary.

    Examples
    --------
    >>> import numpy as np
    >>> from temshift.preprocess.rescale import mean_std
    >>> mean, std = mean_std(np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> round(mean, 6), round(std, 6)
    (2.5, 1.118034)
    """
    flat = np.asarray(img, dtype=np.float32).reshape(-1)
    shift = np.float32(flat[:: max(1, flat.size // 4096)].mean(dtype=np.float64))
    buf = np.empty(min(_CHUNK, flat.size), np.float32)
    moments = [chunk_moments(flat[i : i + _CHUNK], shift, buf) for i in range(0, flat.size, _CHUNK)]
    return mean_std_from_moments(moments)


def _affine(img: np.ndarray, offset: float, denom: float) -> np.ndarray:
    """``(img - offset) / denom`` in place (float32), chunk by chunk; zeros when denom is 0.

    A division (not a multiplication by 1/denom) maps the maximum to exactly 1 in normalize.
    """
    flat = img.reshape(-1)
    if not denom > 0:
        flat[:] = 0
        return img
    off, den = np.float32(offset), np.float32(denom)
    for start in range(0, flat.size, _CHUNK):
        c = flat[start : start + _CHUNK]
        np.subtract(c, off, out=c)
        np.divide(c, den, out=c)
    return img


def standardize_inplace(img: np.ndarray, mean: float, std: float) -> np.ndarray:
    """``(img - mean) / std`` in place for known moments (zeros when std is 0)."""
    return _affine(img, mean, std)


@dataclass(frozen=True)
class RescaleMethod:
    """One entry of the rescale table.

    Attributes
    ----------
    name : str
        What settings, study specs and ``--rescale`` call it.
    apply : callable
        ``apply(buf) -> buf``: rescales a float32 (H, W) buffer in place (it may also return a new array).
    description : str
        One line for help texts and docs.
    from_moments : callable, optional
        ``from_moments(buf, moments) -> buf`` when the method only needs the moments that
        `divide_background` can collect while it divides (saves one sweep in `preprocess_frame`).
    """

    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    description: str
    from_moments: Callable[[np.ndarray, Sequence[tuple[int, float, float, float]]], np.ndarray] | None = None


RESCALE_METHODS: dict[str, RescaleMethod] = {}


def register_rescale(
    name: str,
    apply: Callable[[np.ndarray], np.ndarray],
    description: str,
    from_moments: Callable[[np.ndarray, Sequence[tuple[int, float, float, float]]], np.ndarray] | None = None,
) -> RescaleMethod:
    """Add a rescale method to `RESCALE_METHODS` (a name already taken raises ValueError)."""
    if name in RESCALE_METHODS:
        raise ValueError(f"rescale method {name!r} is already registered")
    method = RescaleMethod(name, apply, description, from_moments)
    RESCALE_METHODS[name] = method
    return method


def rescale_method(name: str) -> RescaleMethod:
    """The table entry for `name`; ValueError naming the known methods otherwise."""
    try:
        return RESCALE_METHODS[name]
    except KeyError:
        raise ValueError(f"unknown rescale method {name!r} (use one of {', '.join(RESCALE_METHODS)})") from None


def _standardize(buf: np.ndarray) -> np.ndarray:
    mean, std = mean_std(buf)
    return _affine(buf, mean, std)


def _standardize_from_moments(buf: np.ndarray, moments: Sequence[tuple[int, float, float, float]]) -> np.ndarray:
    return standardize_inplace(buf, *mean_std_from_moments(moments))


def _normalize(buf: np.ndarray) -> np.ndarray:
    lo, hi = float(buf.min()), float(buf.max())
    return _affine(buf, lo, hi - lo)


def _histogram(buf: np.ndarray) -> np.ndarray:
    lo, hi = (float(v) for v in np.percentile(buf, [1.0, 99.0]))
    np.clip(buf, np.float32(lo), np.float32(hi), out=buf)
    return _affine(buf, lo, hi - lo)


def _unchanged(buf: np.ndarray) -> np.ndarray:
    return buf


register_rescale("standardize", _standardize, "mean 0, std 1 (the paper's choice)", _standardize_from_moments)
register_rescale("normalize", _normalize, "min 0, max 1")
register_rescale("histogram", _histogram, "clip to the 1st-99th percentiles, then min 0, max 1")
register_rescale("none", _unchanged, "unchanged")


def rescale(img: ArrayLike, method: str = "standardize", copy: bool = True) -> np.ndarray:
    """Rescale intensities.

    Parameters
    ----------
    img : (H, W) array_like
        Frame (any units).
    method : str
        A name in `RESCALE_METHODS`: standardize (mean 0, std 1), normalize (min 0, max 1),
        histogram (values clipped to the 1st and 99th percentiles, then normalized to [0, 1]),
        none (unchanged), or one added with `register_rescale`.
    copy : bool
        False rescales a float32 `img` in place (saves a full-size copy).

    Returns
    -------
    (H, W) float32 array (dimensionless). A constant image maps to zeros.

    Examples
    --------
    >>> import numpy as np
    >>> from temshift.preprocess import rescale
    >>> rescale(np.array([[0.0, 5.0], [10.0, 20.0]]), "normalize")
    array([[0.  , 0.25],
           [0.5 , 1.  ]], dtype=float32)
    >>> rescale(np.array([[1.0, 3.0]]), "standardize")
    array([[-1.,  1.]], dtype=float32)
    """
    entry = rescale_method(method)
    out = np.array(img, dtype=np.float32, copy=True) if copy or np.asarray(img).dtype != np.float32 else np.asarray(img)
    return entry.apply(out)
