"""The overlay written by `temshift predict` is the straightforward definition, pixel for pixel."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage as ndi


def _overlay_reference(image, mask, factor):
    """Block means, 1-99th percentile stretch, orange tint, outline; all in float64."""
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    red = lambda a: a[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))  # noqa: E731
    img = red(np.asarray(image, np.float32)) if factor > 1 else np.asarray(image, np.float32)
    m = (red((mask != 0).astype(np.float32)) if factor > 1 else (mask != 0).astype(np.float32)) >= 0.5
    lo, hi = np.percentile(img, (1, 99))
    rgb = np.repeat(np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)[..., None], 3, axis=2)
    tint = np.array([1.0, 0.55, 0.0])
    rgb[m] = 0.6 * rgb[m] + 0.4 * tint
    rgb[m & ~ndi.binary_erosion(m)] = tint
    return (rgb * 255 + 0.5).astype(np.uint8)


def test_overlay_matches_its_definition(tmp_path):
    from temshift.predict.outputs import overlay_rgb, write_overlay_png

    rng = np.random.default_rng(0)
    image = rng.poisson(50.0, size=(300, 410)).astype(np.float32)
    mask = np.zeros(image.shape, np.uint8)
    for y, x in rng.integers(0, 280, size=(12, 2)):
        mask[y : y + 17, x : x + 23] = 1
    for max_px, factor in ((1000, 1), (250, 2), (200, 3), (150, 3)):
        got = overlay_rgb(image, mask, max_px=max_px)
        np.testing.assert_array_equal(got, _overlay_reference(image, mask, factor))
    path = write_overlay_png(tmp_path / "o.png", image, mask, max_px=200)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), _overlay_reference(image, mask, 3))


def test_mask_png_pixels_do_not_depend_on_the_compression_level(tmp_path):
    from temshift.io import read_label, write_label_png
    from temshift.predict.outputs import MASK_PNG_COMPRESS_LEVEL

    rng = np.random.default_rng(1)
    mask = (rng.random((257, 300)) < 0.1).astype(np.uint8) * rng.integers(1, 3, (257, 300)).astype(np.uint8)
    a = write_label_png(tmp_path / "default.png", mask)
    b = write_label_png(tmp_path / "fast.png", mask, MASK_PNG_COMPRESS_LEVEL)
    np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    np.testing.assert_array_equal(np.asarray(Image.open(b)), np.where(mask != 0, 255, 0))
    np.testing.assert_array_equal(read_label(b), mask != 0)
