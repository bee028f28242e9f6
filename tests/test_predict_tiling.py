"""Blended tiling: no seams, no border artifacts, exact for local translation-equivariant ops."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage as ndi

from temshift.predict.tiling import blend_window, predict_tiled, tile_length, tile_origins


def constant_model(value=0.3, channels=2):
    return lambda b: np.full((len(b), channels, *b.shape[1:]), value, np.float32)


@pytest.mark.parametrize("shape", [(1000, 777), (64, 40), (513, 1025)])
def test_constant_model_gives_constant_output(shape):
    img = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    out = predict_tiled(img, constant_model(), tile=256, overlap=64, margin=8, batch_size=3)
    assert out.shape == (2, *shape)
    np.testing.assert_allclose(out, 0.3, atol=1e-6)


def test_tiles_equal_whole_frame_for_local_convolution():
    rng = np.random.default_rng(1)
    img = rng.normal(size=(700, 530)).astype(np.float32)
    kernel = rng.normal(size=(9, 9)).astype(np.float32)  # receptive-field radius 4 <= margin

    def conv(batch):
        return np.stack([ndi.correlate(t, kernel, mode="constant")[None] for t in batch])

    pad = 100
    whole = ndi.correlate(np.pad(img, pad, mode="reflect"), kernel, mode="constant")[pad:-pad, pad:-pad]
    tiled = predict_tiled(img, conv, tile=192, overlap=48, margin=8, batch_size=4)[0]
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_identity_has_no_seams():
    img = np.random.default_rng(2).normal(size=(600, 600)).astype(np.float32)
    out = predict_tiled(img, lambda b: b[:, None], tile=160, overlap=48, margin=8)[0]
    np.testing.assert_allclose(out, img, atol=1e-5)


def test_window_partition_of_unity():
    tile, overlap, margin = 128, 40, 8
    w = blend_window(tile, overlap, margin)[tile // 2]  # middle row = the 1-D window
    stride = tile - overlap
    total = np.zeros(stride * 5 + tile)
    for k in range(6):
        total[k * stride : k * stride + tile] += w
    inner = total[tile : 5 * stride]
    np.testing.assert_allclose(inner, 1.0, atol=1e-12)
    assert w[:margin].max() == 0 and w[tile // 2] == 1


def test_tile_geometry():
    t = tile_length(4096 + 128, 1024, 128, 16)
    assert t % 16 == 0 and t <= 1024
    starts = tile_origins(4096 + 128, t, t - 128)
    assert starts[0] == 0 and starts[-1] + t == 4096 + 128
    assert all(b - a <= t - 128 for a, b in itertools.pairwise(starts))
    with pytest.raises(ValueError):
        blend_window(64, 16, 8)


def test_bad_model_output_shape():
    with pytest.raises(ValueError, match="model returned shape"):
        predict_tiled(np.zeros((100, 100), np.float32), lambda b: b, tile=64, overlap=16, margin=4)
