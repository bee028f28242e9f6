"""Overlapping tiles with smooth blending, for fully convolutional models on whole frames.

A frame is reflect-padded, cut into square tiles of `tile` pixels on a grid of stride
`tile - overlap`, the model is applied to batches of tiles, and the outputs are accumulated
with a separable weight window and divided by the accumulated weight.

The window discards `margin` pixels at each tile edge (weight exactly 0, where zero padding
inside the network corrupts its output) and cross-fades neighbouring tiles over the remaining
`overlap - 2 * margin` pixels with a raised cosine (Hann) ramp; in the tile centre the weight
is 1. Ramps of neighbouring tiles sum to 1 (sin^2 + cos^2), so blending is a partition of
unity: a constant model gives a constant output, and for a translation-equivariant model
whose receptive field radius is <= `margin`, the tiled output equals the whole-frame output.
The frame is reflect-padded by ``max(margin, overlap // 2)`` pixels, so frame borders see
mirrored context rather than the network's zero padding, and lie outside the discarded
margins: no border artifacts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BatchFn = Callable[[np.ndarray], np.ndarray]
"""Maps a batch of tiles (B, tile, tile) float32 to outputs (B, C, tile, tile) float32."""


def blend_window(tile: int, overlap: int, margin: int = 0) -> np.ndarray:
    """Separable 2-D blending weights of one tile.

    Parameters
    ----------
    tile : int
        Tile edge length, pixels.
    overlap : int
        Overlap of neighbouring tiles, pixels; must exceed ``2 * margin``.
    margin : int
        Pixels discarded (weight 0) at each tile edge.

    Returns
    -------
    numpy.ndarray
        (tile, tile) float64 weights in [0, 1].
    """
    w = _window_1d(tile, overlap, margin)
    return np.outer(w, w)


def _window_1d(tile: int, overlap: int, margin: int) -> np.ndarray:
    if not 0 <= 2 * margin < overlap < tile:
        raise ValueError(f"need 0 <= 2*margin < overlap < tile, got margin={margin}, overlap={overlap}, tile={tile}")
    ramp = overlap - 2 * margin
    i = np.arange(tile)
    d = np.minimum(i, tile - 1 - i).astype(np.float64)  # distance to the nearest edge, pixels
    w = np.ones(tile)
    w[d < margin] = 0.0
    r = (d >= margin) & (d < margin + ramp)
    w[r] = np.sin(0.5 * np.pi * (d[r] - margin + 0.5) / ramp) ** 2
    return w


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles covering ``length`` pixels with the given stride (last tile flush)."""
    if length <= tile:
        return [0]
    n = int(np.ceil((length - tile) / stride)) + 1
    starts = [k * stride for k in range(n)]
    starts[-1] = length - tile
    return sorted(set(starts))


def tile_length(length: int, max_tile: int, overlap: int, multiple: int = 16) -> int:
    """Tile edge along one axis: the fewest tiles of at most `max_tile` pixels, evened out.

    Parameters
    ----------
    length : int
        Padded axis length, pixels.
    max_tile : int
        Largest tile edge, pixels.
    overlap : int
        Overlap of neighbouring tiles, pixels.
    multiple : int
        The edge is rounded up to a multiple of this.
    """
    up = lambda v: int(np.ceil(v / multiple) * multiple)  # noqa: E731
    if length <= max_tile:
        return max(up(length), up(2 * overlap + multiple))
    n = int(np.ceil((length - overlap) / (max_tile - overlap)))
    return max(up((length - overlap) / n + overlap), up(2 * overlap + multiple))


def predict_tiled(
    image: np.ndarray,
    apply_batch: BatchFn,
    *,
    tile: int = 1024,
    overlap: int = 128,
    margin: int = 32,
    batch_size: int = 4,
    multiple: int = 16,
) -> np.ndarray:
    """Apply a model to a large 2-D image through blended overlapping tiles.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) preprocessed frame.
    apply_batch : callable
        ``(B, tile, tile) float32 -> (B, C, tile, tile)``; e.g. softmax probabilities.
    tile : int
        Largest tile edge, pixels. Per axis the fewest tiles that cover the frame are used,
        evened out and rounded up to a multiple of `multiple` (U-Net with 4 poolings: 16).
    overlap : int
        Overlap between neighbouring tiles, pixels. Frame borders are reflect-padded by
        ``max(margin, overlap // 2)`` pixels.
    margin : int
        Pixels discarded at each tile edge (see :func:`blend_window`).
    batch_size : int
        Tiles per call of `apply_batch`.
    multiple : int
        Tile sizes are made a multiple of this.

    Returns
    -------
    numpy.ndarray
        (C, H, W) float32 blended outputs.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    h, w = image.shape
    pad = max(margin, overlap // 2)
    th = tile_length(h + 2 * pad, tile, overlap, multiple)
    tw = tile_length(w + 2 * pad, tile, overlap, multiple)
    ph, pw = max(h + 2 * pad, th), max(w + 2 * pad, tw)
    padded = np.pad(image, ((pad, ph - h - pad), (pad, pw - w - pad)), mode="symmetric" if min(h, w) < 2 else "reflect")
    window = np.outer(_window_1d(th, overlap, margin), _window_1d(tw, overlap, margin)).astype(np.float32)
    origins = [(r, c) for r in tile_origins(ph, th, th - overlap) for c in tile_origins(pw, tw, tw - overlap)]

    acc = None
    weight = np.zeros((ph, pw), dtype=np.float32)
    for k in range(0, len(origins), batch_size):
        chunk = origins[k : k + batch_size]
        batch = np.stack([padded[r : r + th, c : c + tw] for r, c in chunk])
        out = np.asarray(apply_batch(batch), dtype=np.float32)
        if out.ndim != 4 or out.shape[0] != len(chunk) or out.shape[2:] != (th, tw):
            raise ValueError(f"model returned shape {out.shape} for a batch of shape {batch.shape}")
        if acc is None:
            acc = np.zeros((out.shape[1], ph, pw), dtype=np.float32)
        for (r, c), o in zip(chunk, out):
            acc[:, r : r + th, c : c + tw] += o * window
            weight[r : r + th, c : c + tw] += window
    if acc is None:
        raise ValueError(f"no tiles for an image of shape {image.shape}")
    acc = acc[:, pad : pad + h, pad : pad + w]
    weight = weight[pad : pad + h, pad : pad + w]
    acc /= np.maximum(weight, 1e-12)
    return acc
