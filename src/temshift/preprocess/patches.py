"""Cutting frames into non-overlapping patches and dropping background patches.

docs/protocol.md, step 4: 512 x 512 tiles in frame order; tiles with 400 or fewer particle
pixels (~0.15 % of the area) are dropped. For other patch sizes the threshold scales
with the area.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def min_particle_pixels(patch_size: float) -> float:
    """Particle-pixel threshold for a patch: ``400 * (patch_size / 512) ** 2`` pixels.

    Examples
    --------
    >>> from temshift.preprocess import min_particle_pixels
    >>> min_particle_pixels(512), min_particle_pixels(256)
    (400.0, 100.0)
    """
    return 400.0 * (patch_size / 512.0) ** 2


_default_threshold = min_particle_pixels


def tile_grid(shape: tuple[int, int], patch_size: int) -> np.ndarray:
    """Top-left (row, col) of the full tiles of a frame, row-major; partial tiles at the edges are dropped.

    Examples
    --------
    >>> from temshift.preprocess import tile_grid
    >>> tile_grid((5, 9), 4).tolist()
    [[0, 0], [0, 4]]
    """
    rows = np.arange(shape[0] // patch_size) * patch_size
    cols = np.arange(shape[1] // patch_size) * patch_size
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)


def _tile_counts(label: np.ndarray, nr: int, nc: int, p: int) -> np.ndarray:
    """Nonzero pixels per tile, row-major (nr * nc,).

    A few large tiles: one `count_nonzero` per tile (fast popcount path, ~5x quicker);
    many small ones: one reduction over the tiled view (no per-tile call overhead).
    """
    if nr * nc <= 256:
        return np.array([np.count_nonzero(label[i * p : (i + 1) * p, j * p : (j + 1) * p])
                         for i in range(nr) for j in range(nc)], dtype=np.int64)  # fmt: skip
    return np.asarray(np.count_nonzero(label[: nr * p, : nc * p].reshape(nr, p, nc, p), axis=(1, 3))).reshape(-1)


def extract_patches(
    image: ArrayLike, label: ArrayLike, patch_size: int = 512, min_particle_pixels: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a frame and its mask into non-overlapping patches and keep those with particles.

    Parameters
    ----------
    image : (H, W) array_like
        Preprocessed frame.
    label : (H, W) array_like
        Mask, nonzero = particle.
    patch_size : int
        Patch side in pixels.
    min_particle_pixels : float, optional
        Patches with this many particle pixels or fewer are dropped
        (default ``400 * (patch_size / 512) ** 2``).

    Returns
    -------
    patches : (N, p, p) float32
    label_patches : (N, p, p) uint8 in {0, 1}
    coords : (N, 2) int64, top-left (row, col) of each patch in the frame, row-major order

    Examples
    --------
    >>> import numpy as np
    >>> from temshift.preprocess import extract_patches
    >>> image = np.arange(64, dtype=np.float32).reshape(8, 8)
    >>> label = np.zeros((8, 8), np.uint8)
    >>> label[5:7, 1:4] = 1  # 6 particle pixels, all in the lower-left 4 x 4 tile
    >>> patches, label_patches, coords = extract_patches(image, label, patch_size=4, min_particle_pixels=5)
    >>> patches.shape, coords.tolist(), int(label_patches.sum())
    ((1, 4, 4), [[4, 0]], 6)
    """
    image = np.asarray(image)
    label = np.asarray(label)
    if image.shape != label.shape or image.ndim != 2:
        raise ValueError(f"image {image.shape} and label {label.shape} must be 2D and of the same shape")
    threshold = _default_threshold(patch_size) if min_particle_pixels is None else float(min_particle_pixels)
    p = patch_size
    nr, nc = image.shape[0] // p, image.shape[1] // p
    # (nr, nc, p, p) views: no copy until the kept tiles are gathered
    counts = _tile_counts(label, nr, nc, p)
    keep = np.flatnonzero(counts > threshold)
    coords = tile_grid(image.shape, p)[keep].astype(np.int64)
    ti, tj = keep // nc, keep % nc
    tiles_img = image[: nr * p, : nc * p].reshape(nr, p, nc, p).swapaxes(1, 2)
    patches = tiles_img[ti, tj].astype(np.float32, copy=False)
    tiles_lab = label[: nr * p, : nc * p].reshape(nr, p, nc, p).swapaxes(1, 2)
    label_patches = (tiles_lab[ti, tj] != 0).astype(np.uint8)
    return patches, label_patches, coords
