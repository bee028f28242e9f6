"""The eight dihedral variants of a square patch (rotations by 90 degrees, with and without transpose)."""

from __future__ import annotations

import numpy as np

N_VARIANTS = 8


def dihedral(x, k: int):
    """Variant `k` (0-7) of `x` on its last two axes; works for numpy arrays and torch tensors.

    ``k % 4`` quarter turns counter-clockwise, preceded by a transpose when ``k >= 4``.
    Variant 0 is the identity.
    """
    if not 0 <= k < N_VARIANTS:
        raise ValueError(f"dihedral variant must be in 0..7, got {k}")
    is_numpy = isinstance(x, np.ndarray)
    if k >= 4:
        x = np.swapaxes(x, -1, -2) if is_numpy else x.transpose(-1, -2)
    turns = k % 4
    if turns:
        x = np.rot90(x, turns, axes=(-2, -1)) if is_numpy else x.rot90(turns, dims=(-2, -1))
    return x


def inverse_dihedral(x, k: int):
    """Undo `dihedral(., k)` on the last two axes."""
    if not 0 <= k < N_VARIANTS:
        raise ValueError(f"dihedral variant must be in 0..7, got {k}")
    is_numpy = isinstance(x, np.ndarray)
    turns = (4 - k % 4) % 4
    if turns:
        x = np.rot90(x, turns, axes=(-2, -1)) if is_numpy else x.rot90(turns, dims=(-2, -1))
    if k >= 4:
        x = np.swapaxes(x, -1, -2) if is_numpy else x.transpose(-1, -2)
    return x


def expand(indices, seed: int | None, variants: bool = True) -> np.ndarray:
    """All (patch, variant) pairs of `indices`, shuffled with `seed`.

    Parameters
    ----------
    indices : array of int
        Patch indices.
    seed : int or None
        Shuffle seed (9201 train, 6274 validation, 7427 test in the paper); None keeps order.
    variants : bool
        Expand with all 8 variants (the paper) or keep only the identity.

    Returns
    -------
    ndarray, shape (M, 2)
        Rows ``(patch_index, variant)``.
    """
    indices = np.asarray(indices, dtype=np.int64)
    ks = np.arange(N_VARIANTS if variants else 1)
    pairs = np.stack(np.meshgrid(indices, ks, indexing="ij"), axis=-1).reshape(-1, 2)
    if seed is not None:
        pairs = pairs[np.random.default_rng(seed).permutation(len(pairs))]
    return pairs
