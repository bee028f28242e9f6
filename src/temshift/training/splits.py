"""Contiguous 5-fold splits with a validation block (docs/protocol.md, "Splits").

For fold i of k: the patch sequence is cut into k contiguous blocks (the last absorbs the
remainder); block i is the test set. Of the remaining patches (in order), a contiguous
``val_fraction`` block starting at ``i * fold_size`` (the last block for the last fold) is
validation; the rest is training. Defaults give 70 / 10 / 20.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Patch indices (into the dataset's patch sequence) of one fold."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def test_block(n: int, fold: int, n_folds: int = 5) -> np.ndarray:
    """Indices of fold `fold`'s test block among `n` patches."""
    if n_folds < 2 or not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in [0, {n_folds - 1}], got {fold}")
    if n < n_folds:
        raise ValueError(f"{n} patches cannot be split into {n_folds} folds")
    size = n // n_folds
    stop = n if fold == n_folds - 1 else (fold + 1) * size
    return np.arange(fold * size, stop)


def split_fold(n: int, fold: int, n_folds: int = 5, val_fraction: float = 0.125) -> Split:
    """Train / validation / test indices of one fold.

    Parameters
    ----------
    n : int
        Number of patches in the dataset.
    fold : int
        Fold index, 0-based.
    n_folds : int
        Number of folds (5 in the paper).
    val_fraction : float
        Share of the non-test patches held out for validation (0.125 in the paper).

    Returns
    -------
    Split
    """
    test = test_block(n, fold, n_folds)
    rest = np.setdiff1d(np.arange(n), test)
    n_val = max(1, int(round(val_fraction * len(rest)))) if val_fraction > 0 else 0
    size = n // n_folds
    start = len(rest) - n_val if fold == n_folds - 1 else min(fold * size, len(rest) - n_val)
    val = rest[start : start + n_val]
    train = np.concatenate([rest[:start], rest[start + n_val :]])
    if len(train) == 0:
        raise ValueError(f"{n} patches leave no training patches in fold {fold}")
    return Split(train=train, val=val, test=test)
