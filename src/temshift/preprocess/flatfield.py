"""Flat-field correction with a separable 2D Bernstein (Bezier) background.

docs/protocol.md, step 2: basis of degree (2, 2) on coordinates in [0, 1] (9 functions),
fitted on the frame downscaled to 1/4 by weighted least squares (2 iterations, then
``w = exp(-3 e / (2 mean(e)))`` with ``e`` the squared residual), evaluated at full
resolution; corrected = frame / background.

The 2D basis is a tensor product, ``B(y, x) = b_a(y) b_b(x)``, so the background is
``By @ C @ Bx.T`` with ``By`` (H, dy+1), ``Bx`` (W, dx+1) and the coefficient matrix C.
Neither a full-resolution (H*W, 9) basis nor a downscaled copy of it is ever built:
the block mean of a product of 1D functions is the product of their 1D block means,
and the weighted normal equations contract the weights with 1D products.
"""

from __future__ import annotations

from math import comb

import numpy as np
from numpy.typing import ArrayLike

from temshift.errors import PreprocessError
from temshift.preprocess.rescale import chunk_moments


def bernstein_basis(n_points: int, degree: int) -> np.ndarray:
    """Bernstein polynomials of `degree` at ``linspace(0, 1, n_points)``, shape (n_points, degree + 1).

    Examples
    --------
    >>> from temshift.preprocess import bernstein_basis
    >>> bernstein_basis(3, 2)  # rows sum to 1: a partition of unity
    array([[1.  , 0.  , 0.  ],
           [0.25, 0.5 , 0.25],
           [0.  , 0.  , 1.  ]])
    """
    x = np.linspace(0.0, 1.0, n_points)[:, None]
    k = np.arange(degree + 1)
    coeff = np.array([comb(degree, int(i)) for i in k], dtype=np.float64)
    return coeff * x**k * (1.0 - x) ** (degree - k)


#: rows per chunk in the full-resolution sweeps (a chunk stays in cache)
CHUNK_ROWS = 32


def block_mean(img: ArrayLike, factor: int) -> np.ndarray:
    """Mean over `factor` x `factor` blocks, float64 (H // factor, W // factor).

    Trailing rows/columns that do not fill a block are dropped. Sums strided slices
    chunk by chunk (float32 within a block of at most 16 values, then float64): numpy's
    reductions over short inner axes are several times slower.

    Examples
    --------
    >>> import numpy as np
    >>> from temshift.preprocess import block_mean
    >>> block_mean(np.arange(20.0).reshape(4, 5), 2)  # the fifth column is dropped
    array([[ 3.,  5.],
           [13., 15.]])
    """
    img = np.asarray(img)
    hb, wb = img.shape[0] // factor, img.shape[1] // factor
    if hb == 0 or wb == 0:
        raise ValueError(f"image {img.shape} is smaller than one {factor}x{factor} block")
    out = np.empty((hb, wb), np.float64)
    rows_per = max(1, CHUNK_ROWS // factor) * factor
    for r0 in range(0, hb * factor, rows_per):
        c = img[r0 : min(r0 + rows_per, hb * factor), : wb * factor]
        cols = c[:, 0::factor].astype(np.float32)
        for k in range(1, factor):
            cols += c[:, k::factor]
        blocks = cols[0::factor].copy()
        for k in range(1, factor):
            blocks += cols[k::factor]
        out[r0 // factor : r0 // factor + blocks.shape[0]] = blocks
    out /= factor * factor
    return out


def _block_mean_rows(basis: np.ndarray, factor: int) -> np.ndarray:
    n = (basis.shape[0] // factor) * factor
    return np.asarray(basis[:n].reshape(n // factor, factor, -1).mean(axis=1))


def _weighted_fit(img_small: np.ndarray, ay: np.ndarray, ax: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Coefficients C minimising ``sum w (ay C ax^T - img)^2`` via the 1D-separable normal equations.

    The contractions over the float32 fitting grid use `numpy.einsum` (single-threaded C
    loops; multi-threaded BLAS on these thin shapes is 10-50x slower on a busy machine);
    the 9 x 9 system is assembled and solved in float64.
    """
    py, px = ay.shape[1], ax.shape[1]
    # G[(a,b),(c,d)] = sum_ij w_ij ay_ia ay_ic ax_jb ax_jd
    yy = (ay[:, :, None] * ay[:, None, :]).reshape(ay.shape[0], py * py)
    xx = (ax[:, :, None] * ax[:, None, :]).reshape(ax.shape[0], px * px)
    u = np.einsum("ia,ij->aj", yy.astype(np.float32), w).astype(np.float64)  # sum over grid rows
    m = (u @ xx).reshape(py, py, px, px)  # [a, c, b, d]
    gram = m.transpose(0, 2, 1, 3).reshape(py * px, py * px)
    v = np.einsum("ia,ij->aj", ay.astype(np.float32), w * img_small).astype(np.float64)
    rhs = (v @ ax).reshape(py * px)
    try:
        coef = np.linalg.solve(gram, rhs)
    except np.linalg.LinAlgError:  # degenerate weights: least-norm solution
        coef = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    return coef.reshape(py, px)


def min_frame_shape(degree: tuple[int, int] = (2, 2), downscale: int = 4) -> tuple[int, int]:
    """Smallest frame (rows, columns) whose background can be fitted.

    The fitting grid needs at least ``degree + 1`` block means along each axis, one per
    Bernstein coefficient; with fewer the least-squares problem has no unique solution.
    """
    return downscale * (degree[0] + 1), downscale * (degree[1] + 1)


def fit_coefficients(
    img: ArrayLike, degree: tuple[int, int] = (2, 2), downscale: int = 4, iterations: int = 2
) -> np.ndarray:
    """Fit the Bernstein background of a frame.

    Parameters
    ----------
    img : (H, W) array_like
        Frame (counts, after x-ray removal).
    degree : (int, int)
        Polynomial degree along (y, x).
    downscale : int
        Block-mean factor of the fitting grid (4: 4096 -> 1024).
    iterations : int
        Least-squares solves; the first is unweighted, each later one uses
        ``w = exp(-3 e / (2 mean(e)))`` from the previous residual ``e`` (squared, counts^2).

    Returns
    -------
    (dy + 1, dx + 1) float64 array
        Coefficients C; the background is ``By @ C @ Bx.T``.

    Raises
    ------
    PreprocessError
        When the frame is smaller than `min_frame_shape`.
    """
    img = np.asarray(img)
    h, w = img.shape
    mh, mw = min_frame_shape(degree, downscale)
    if h < mh or w < mw:
        raise PreprocessError(
            f"frame of {h}x{w} pixels is too small for the flat-field fit (degree {tuple(degree)} on a "
            f"1/{downscale} grid needs at least {mh}x{mw} pixels)"
        )
    small = block_mean(img, downscale).astype(np.float32)
    # the basis on the fitting grid = block means of the full-resolution basis
    ay = _block_mean_rows(bernstein_basis(h, degree[0]), downscale)
    ax = _block_mean_rows(bernstein_basis(w, degree[1]), downscale)
    ay32, axt32 = ay.astype(np.float32), np.ascontiguousarray(ax.T, dtype=np.float32)
    weights = np.ones_like(small)
    coef: np.ndarray | None = None
    for it in range(iterations):
        coef = _weighted_fit(small, ay, ax, weights)
        if it + 1 < iterations:
            e = np.einsum("ik,kj->ij", ay32 @ coef.astype(np.float32), axt32)  # fitted background
            e -= small
            np.square(e, out=e)
            mean_e = float(e.mean(dtype=np.float64))
            if mean_e > 0:
                weights = np.exp(np.multiply(e, np.float32(-1.5 / mean_e), out=e), out=e)
            else:
                weights = np.ones_like(small)
    if coef is None:
        raise ValueError(f"fit_coefficients: iterations must be at least 1, got {iterations}")
    return coef


def _background_factors(coef: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(H, k) and (k, W) float32 factors whose product is the background."""
    h, w = shape
    left = (bernstein_basis(h, coef.shape[0] - 1) @ coef).astype(np.float32)
    right = np.ascontiguousarray(bernstein_basis(w, coef.shape[1] - 1).T, dtype=np.float32)
    return left, right


def evaluate_background(coef: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Background ``By @ C @ Bx.T`` at full resolution, float32 (one rank-3 matrix product)."""
    left, right = _background_factors(coef, shape)
    return np.asarray(np.einsum("ik,kj->ij", left, right))


def fit_illumination(
    img: ArrayLike, degree: tuple[int, int] = (2, 2), downscale: int = 4, iterations: int = 2
) -> np.ndarray:
    """Full-resolution background (illumination) of a frame, float32, same units as `img`.

    See `fit_coefficients` for the parameters.
    """
    img = np.asarray(img)
    return evaluate_background(fit_coefficients(img, degree, downscale, iterations), img.shape)


def divide_background(
    img: ArrayLike,
    coef: np.ndarray,
    out: np.ndarray | None = None,
    moments: list[tuple[int, float, float, float]] | None = None,
) -> np.ndarray:
    """``img / (By @ C @ Bx.T)`` evaluated chunk by chunk: the background is never held in full.

    Parameters
    ----------
    img : (H, W) array_like
    coef : coefficient matrix from `fit_coefficients`.
    out : (H, W) float32 array, optional (may be `img`).
    moments : list, optional
        If given, each chunk's `temshift.preprocess.rescale.chunk_moments` (shifted by the
        first chunk's mean) is appended while the chunk is still in cache, which saves the
        standardize step a sweep (see `mean_std_from_moments`).

    Raises
    ------
    PreprocessError
        When the background is not positive everywhere (e.g. an empty frame).
    """
    img = np.asarray(img)
    result = np.empty(img.shape, np.float32) if out is None else out
    left, right = _background_factors(coef, img.shape)
    buf = np.empty((CHUNK_ROWS, img.shape[1]), np.float32)
    # Bernstein surfaces lie within the hull of their coefficients: all > 0 means bg > 0
    check = not (coef > 0).all()
    shift = None
    for r0 in range(0, img.shape[0], CHUNK_ROWS):
        n = min(CHUNK_ROWS, img.shape[0] - r0)
        # einsum, not matmul: BLAS may spawn threads for this thin product, a loss here
        bg = np.einsum("ik,kj->ij", left[r0 : r0 + n], right, out=buf[:n])
        if check and not (bg.min() > 0):
            raise PreprocessError(
                "flat-field background is not positive everywhere (empty, inverted or background-subtracted frame?)"
            )
        res = np.divide(img[r0 : r0 + n], bg, out=result[r0 : r0 + n], casting="unsafe")
        if moments is not None:
            shift = float(res.mean()) if shift is None else shift  # ~ the mean: no cancellation
            moments.append(chunk_moments(res.reshape(-1), shift, buf[:n].reshape(-1)))
    return result


def flatfield_correct(
    img: ArrayLike,
    degree: tuple[int, int] = (2, 2),
    downscale: int = 4,
    iterations: int = 2,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Divide a frame by its fitted background.

    Parameters
    ----------
    img : (H, W) array_like
        Frame (counts).
    degree, downscale, iterations
        See `fit_coefficients`.
    out : (H, W) float32 array, optional
        Where to write the result (may be `img` itself, to save memory).

    Returns
    -------
    (H, W) float32 array
        ``img / background`` (dimensionless, ~1 on the background).

    Raises
    ------
    PreprocessError
        When the frame is too small to fit or the fitted background is not positive everywhere.

    Examples
    --------
    A frame that is its own smooth illumination (a ramp) corrects to ones:

    >>> import numpy as np
    >>> from temshift.preprocess import flatfield_correct
    >>> ramp = np.add.outer(np.linspace(100, 200, 64), np.linspace(0, 50, 64))
    >>> out = flatfield_correct(ramp)
    >>> out.dtype, bool(np.allclose(out, 1, atol=1e-4))
    (dtype('float32'), True)
    """
    img = np.asarray(img)
    return divide_background(img, fit_coefficients(img, degree, downscale, iterations), out=out)
