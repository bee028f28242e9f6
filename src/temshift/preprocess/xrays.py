"""X-ray (cosmic-ray) spike removal, vectorized over the outlier pixels.

docs/protocol.md, step 1: clip negative counts to 0; pixels above ``median + threshold``
are outliers; each is replaced by the mean of its 8 neighbours (pixels on the image
border by the image mean), brightest first; one more pass if any remain.

"Brightest first" matters only where outliers touch: a replaced pixel feeds its new
value into the mean of a dimmer neighbouring outlier, while a dimmer neighbour still
holds its spike value. We reproduce that sequential order exactly without a Python
loop per pixel: in each round we replace, all at once, every remaining outlier that is
brighter than all of its remaining outlier neighbours (ties broken by raster order).
Two pixels replaced in the same round are never neighbours, so the result equals the
one-by-one sweep. Isolated spikes (the usual case) all go in the first round. Long chains
of touching outliers (a saturated plateau, where raster-order ties form a one-pixel
wavefront) are finished one by one after `MAX_ROUNDS` rounds.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

#: vectorized rounds before the remaining (chained) outliers are finished sequentially
MAX_ROUNDS = 64

#: the 8-neighbourhood as (row, column) offsets
_OFFSETS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])


#: rows per chunk: a chunk of a 4096-wide frame stays in cache while we scan it
CHUNK_ROWS = 32


def _rank_values(n: int) -> tuple[int, ...]:
    """0-based ranks whose mean is the median of n values."""
    return (n // 2,) if n % 2 else (n // 2 - 1, n // 2)


def _median_from_bracket(n: int, n_below: int, bracket: np.ndarray) -> float | None:
    """Median of n values given the count below the bracket and the values inside it (None: missed)."""
    local = [k - n_below for k in _rank_values(n)]
    if local[0] < 0 or local[-1] >= bracket.size:
        return None
    part = np.partition(bracket, local)
    return float(np.mean([float(part[k]) for k in local]))


def _median_from_counts(n: int, n_below: int, values: np.ndarray, counts: np.ndarray) -> float | None:
    """Median of n values given the count below and the counts of the (sorted) bracket values."""
    cum = n_below + np.cumsum(counts)
    picked = []
    for k in _rank_values(n):
        if k < n_below or k >= cum[-1]:
            return None
        picked.append(float(values[np.searchsorted(cum, k, side="right")]))
    return float(np.mean(picked))


def clip_and_find_outliers(img: ArrayLike, threshold: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Copy `img` as float32 with negatives clipped to 0 and find its x-ray outliers.

    One chunked sweep does the copy, the exact median and the outlier search. A strided
    sample gives a narrow value bracket around the median. The sweep counts the pixels
    below the bracket and either counts each bracket value (counts data: the bracket holds
    a few integers) or keeps the pixels inside the bracket (continuous data); the exact
    median follows from those. Pixels above ``bracket_low + threshold`` are kept as
    candidates, a superset of the outliers, filtered once the median is known. If the
    sample misled us, we fall back to `numpy.median` (same result, slower).

    Returns
    -------
    out : (H, W) float32, clipped copy
    flat_idx : int64 flat indices of the pixels above ``median + threshold``, ascending
    limit : float, ``median + threshold`` (counts)
    """
    img = np.asarray(img)
    if img.ndim != 2:
        raise ValueError(f"remove_xrays: expected a 2D image, got shape {img.shape}")
    out = np.empty(img.shape, np.float32)
    h, w = img.shape
    step = max(1, int(np.sqrt(img.size / 262144)))
    sample = np.maximum(img[::step, ::step].astype(np.float32), 0).ravel()
    # float32 bounds: every comparison below runs in float32, so they stay consistent
    lo, hi = (np.float32(v) for v in np.quantile(sample, [0.497, 0.503]))
    values = np.unique(sample[(sample >= lo) & (sample <= hi)])
    discrete = 1 <= values.size <= 3
    # unless the bracket is a single value, check that no unsampled value hides inside it
    verify = discrete and lo != hi
    # median >= lo, so anything above the limit is above lo + threshold (rounded down)
    cand_cut = np.nextafter(np.float32(float(lo) + float(threshold)), np.float32(-np.inf))
    n_below, n_upto, bracket, cand = 0, 0, [], []
    counts = np.zeros(values.size, np.int64)
    for r0 in range(0, h, CHUNK_ROWS):
        c = out[r0 : r0 + CHUNK_ROWS]
        np.maximum(img[r0 : r0 + CHUNK_ROWS], 0, out=c, casting="unsafe")
        n_below += int(np.count_nonzero(c < lo))
        if discrete:
            for i, v in enumerate(values):
                counts[i] += np.count_nonzero(c == v)
            if verify:
                n_upto += int(np.count_nonzero(c <= hi))
        else:
            bracket.append(c[(c >= lo) & (c <= hi)])
        hits = np.flatnonzero(c > cand_cut)
        if hits.size:
            cand.append(hits + r0 * w)
    if not discrete:
        median = _median_from_bracket(out.size, n_below, np.concatenate(bracket))
    elif not verify or n_below + counts.sum() == n_upto:
        median = _median_from_counts(out.size, n_below, values, counts)
    else:
        median = None
    if median is None:  # the sample misled us: pay for a full selection
        median = float(np.median(out))
    limit = median + float(threshold)
    flat_idx = np.concatenate(cand) if cand else np.empty(0, np.int64)
    flat_idx = flat_idx[out.reshape(-1)[flat_idx].astype(np.float64) > limit]
    return out, flat_idx, limit


def find_outliers(img: np.ndarray, threshold: float) -> tuple[np.ndarray, float]:
    """Mask of pixels above ``median(img) + threshold`` and that limit (counts); no clipping."""
    limit = float(np.median(img)) + float(threshold)
    return img > limit, limit


def _replace_sorted(out: np.ndarray, rr: np.ndarray, cc: np.ndarray, border_value: float) -> None:
    """Replace the outliers at (rr, cc) in `out` in place, brightest first.

    Parameters
    ----------
    out : (H, W) float32 array, modified in place.
    rr, cc : int arrays of the outliers' rows and columns, in raster order.
    border_value : value for outliers on the image border (the image mean).
    """
    h, w = out.shape
    n = rr.size
    flat = rr.astype(np.int64) * w + cc
    # brightest first; stable sort keeps raster order among equal values
    order = np.argsort(-out[rr, cc], kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    border = (rr == 0) | (rr == h - 1) | (cc == 0) | (cc == w - 1)

    # outlier neighbours of each outlier: index into (rr, cc) or -1
    nr = rr[:, None] + _OFFSETS[:, 0]
    nc = cc[:, None] + _OFFSETS[:, 1]
    inside = (nr >= 0) & (nr < h) & (nc >= 0) & (nc < w)
    nflat = np.where(inside, nr.astype(np.int64) * w + nc, -1)
    pos = np.clip(np.searchsorted(flat, nflat), 0, n - 1)
    nb = np.where(inside & (flat[pos] == nflat), pos, -1)
    # rank of each outlier neighbour (n = "no outlier there")
    nb_rank = np.where(nb >= 0, rank[np.maximum(nb, 0)], n)

    todo = np.ones(n, bool)
    left = np.arange(n)  # still to replace; shrinks every round
    for _ in range(MAX_ROUNDS):
        if not left.size:
            return
        # ready: no still-to-do neighbour is brighter (has a lower rank)
        nbl = nb[left]
        blocking = (nbl >= 0) & todo[np.maximum(nbl, 0)] & (nb_rank[left] < rank[left, None])
        ready = ~blocking.any(axis=1)
        idx = left[ready]
        inner = idx[~border[idx]]
        # gather the 8 neighbours' current values; sum in float64 for a faithful mean
        out[rr[inner], cc[inner]] = out[nr[inner], nc[inner]].astype(np.float64).mean(axis=1)
        edge = idx[border[idx]]
        out[rr[edge], cc[edge]] = border_value
        todo[idx] = False
        left = left[~ready]
    # only long chains of touching outliers get here (e.g. a saturated plateau, where
    # raster-order ties make a one-pixel wavefront): finish them one by one, in order
    for k in left[np.argsort(rank[left])]:
        r, c = int(rr[k]), int(cc[k])
        if border[k]:
            out[r, c] = border_value
        else:
            win = out[r - 1 : r + 2, c - 1 : c + 2].astype(np.float64)
            out[r, c] = (win.sum() - win[1, 1]) / 8.0


def remove_xrays(img: ArrayLike, threshold: float = 1500.0, passes: int = 2) -> np.ndarray:
    """Remove x-ray spikes from a frame of counts.

    Parameters
    ----------
    img : (H, W) array_like
        Raw frame in counts.
    threshold : float
        Counts above the frame median that make a pixel an outlier (1500 in the paper).
    passes : int
        Sweeps over the outliers: the protocol's first pass plus "one more pass if any
        remain" (only the pixels replaced before can still exceed the limit).

    Returns
    -------
    (H, W) float32 array
        Negatives clipped to 0, outliers replaced; the input is not modified.

    Notes
    -----
    The limit ``median + threshold`` and the border value (the image mean, after clipping,
    before replacement) are computed once from the clipped frame.

    Examples
    --------
    >>> import numpy as np
    >>> from temshift.preprocess import remove_xrays
    >>> img = np.full((5, 5), 100.0)
    >>> img[2, 2] = 9000.0  # a spike: replaced by the mean of its 8 neighbours
    >>> img[0, 0] = -3.0    # negative counts clip to 0
    >>> out = remove_xrays(img, threshold=1500)
    >>> float(out[2, 2]), float(out[0, 0]), out.dtype
    (100.0, 0.0, dtype('float32'))
    """
    out, flat_idx, limit = clip_and_find_outliers(img, threshold)
    if flat_idx.size == 0:
        return out
    rr, cc = np.divmod(flat_idx, out.shape[1])
    on_border = (rr == 0) | (rr == out.shape[0] - 1) | (cc == 0) | (cc == out.shape[1] - 1)
    # the image mean is only needed for border outliers (rare): skip the pass otherwise
    border_value = float(out.mean(dtype=np.float64)) if on_border.any() else 0.0
    for _ in range(passes):
        _replace_sorted(out, rr, cc, border_value)
        still = out[rr, cc].astype(np.float64) > limit
        if not still.any():
            break
        rr, cc = rr[still], cc[still]
    return out
