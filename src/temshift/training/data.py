"""Patch sets for training: (patch, dihedral variant) pairs assembled into cropped batches.

Patches are loaded and checked for a model by :mod:`temshift.datasets.arrays`.
"""

from __future__ import annotations

import numpy as np
import torch

from temshift.models.dihedral import N_VARIANTS, dihedral


class PatchSet:
    """Patches plus the (patch, dihedral variant) pairs that make up a training/validation/test set.

    Parameters
    ----------
    images : ndarray, shape (N, H, W) float32
    labels : ndarray, shape (N, H, W) uint8
    pairs : ndarray, shape (M, 2)
        Rows ``(patch_index, variant)``.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, pairs: np.ndarray):
        self.images = images
        self.labels = labels
        self.pairs = np.asarray(pairs, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, rows, crop: int | None = None, offsets: torch.Tensor | None = None):
        """Assemble samples `rows` (indices into `pairs`).

        Parameters
        ----------
        rows : array of int
        crop : int, optional
            Crop size; `offsets` (B, 2) give the top-left corners (centre if None).

        Returns
        -------
        x : Tensor, shape (B, 1, h, w) float32
        y : Tensor, shape (B, h, w) int64
        """
        pairs = self.pairs[np.asarray(rows)]
        h, w = self.images.shape[1:]
        ch, cw = (crop, crop) if crop else (h, w)
        x = np.empty((len(pairs), 1, ch, cw), dtype=np.float32)
        y = np.empty((len(pairs), ch, cw), dtype=np.uint8)
        for j, (p, k) in enumerate(pairs):
            if crop:
                r, c = offsets[j].tolist() if offsets is not None else ((h - ch) // 2, (w - cw) // 2)
                img, lab = self.images[p, r:r + ch, c:c + cw], self.labels[p, r:r + ch, c:c + cw]
            else:
                img, lab = self.images[p], self.labels[p]
            x[j, 0] = dihedral(img, int(k))
            y[j] = dihedral(lab, int(k))
        return torch.from_numpy(x), torch.from_numpy(y).long()


def expand(indices: np.ndarray, seed: int | None, variants: bool = True) -> np.ndarray:
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
