"""The eight dihedral variants of a square patch (rotations by 90 degrees, with and without transpose).

One implementation for training (the dihedral expansion of patch sets, `temshift.training.data`),
evaluation (test patches in their 8 variants) and prediction (test-time augmentation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

N_VARIANTS = 8


def dihedral(x: Any, k: int) -> Any:
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


def inverse_dihedral(x: Any, k: int) -> Any:
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
