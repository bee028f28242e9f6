"""Spread of a prediction across its members: ensemble models and test-time augmentation.

A *member* is one probability map of the ensemble: one model applied to the frame, or,
with test-time augmentation (TTA), one model applied to one of the 8 dihedral variants
of the frame (:mod:`temshift.models.dihedral`) and mapped back. A model trained with
dihedral augmentation should give the same answer for all eight; where it does not, the
segmentation is fragile. From the members we keep

- the mean particle probability (the prediction; for an ensemble without TTA the same
  float32 sum as :func:`temshift.predict.pipeline.predict_probabilities`),
- the per-pixel standard deviation across members (population SD, ``ddof=0``; at most 0.5),
- every member's own mask (probability above the threshold, :func:`temshift.models.inference.particle_mask`)
  on the frame grid, bit-packed, for
  the per-particle agreement of :func:`temshift.predict.particles.particle_table`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np


@dataclass
class MemberMasks:
    """Masks of the members of a prediction, bit-packed (1 bit per pixel).

    Attributes
    ----------
    packed : list of numpy.ndarray
        ``numpy.packbits(mask, axis=-1)`` of each member, (H, ceil(W / 8)) uint8.
    shape : tuple of int
        (H, W) of the masks.
    """

    packed: list[np.ndarray]
    shape: tuple[int, int]

    def __len__(self) -> int:
        return len(self.packed)

    def mask(self, k: int) -> np.ndarray:
        """Mask of member `k`, (H, W) bool."""
        return np.unpackbits(self.packed[k], axis=-1, count=self.shape[1]).astype(bool)

    @classmethod
    def from_masks(cls, masks: Iterable[np.ndarray]) -> MemberMasks:
        masks = [np.asarray(m) != 0 for m in masks]
        if not masks:
            raise ValueError("no member masks")
        return cls([np.packbits(m, axis=-1) for m in masks], tuple(masks[0].shape))


def variants(tta: bool) -> range:
    """Dihedral variants used: all 8 with TTA, only the identity without."""
    from temshift.models.dihedral import N_VARIANTS

    return range(N_VARIANTS if tta else 1)


def member_probabilities(
    models,
    image: np.ndarray,
    *,
    tta: bool = False,
    tile: int = 2048,
    overlap: int = 128,
    margin: int = 32,
    batch_size: int = 1,
    device: str = "cpu",
    bf16: bool | None = None,
) -> Iterator[np.ndarray]:
    """Particle probability of every member, one (H, W) float32 map at a time.

    Parameters
    ----------
    models : torch.nn.Module or list of them
        Networks returning class logits.
    image : numpy.ndarray
        (H, W) model input.
    tta : bool
        Apply each model to the 8 dihedral variants of `image` (each result mapped back to
        the original orientation); without it, one member per model.
    tile, overlap, margin, batch_size, device, bf16
        See :func:`temshift.predict.pipeline.predict_probabilities`.

    Yields
    ------
    numpy.ndarray
        Members in the order model 0 variants 0..7, model 1 ...
    """
    from temshift.models.dihedral import dihedral, inverse_dihedral
    from temshift.models.inference import batch_fn, inference_model, size_multiple
    from temshift.models.runtime import keep_freed_memory, resolve_speed
    from temshift.predict.tiling import predict_tiled

    channels_last, bf16 = resolve_speed(True, bf16, device)
    if not isinstance(models, (list, tuple)):
        models = [models]
    keep_freed_memory()
    for m in models:
        fast = inference_model(m.eval(), channels_last=channels_last).to(device)
        fn = batch_fn(fast, device, channels_last=channels_last, bf16=bf16)
        for k in variants(tta):
            p = predict_tiled(
                dihedral(image, k),
                fn,
                tile=tile,
                overlap=overlap,
                margin=margin,
                batch_size=batch_size,
                multiple=size_multiple(m),
            )[0]
            yield np.ascontiguousarray(inverse_dihedral(p, k))


@dataclass
class MemberSpread:
    """Summary of the members of a prediction (see :func:`member_spread`).

    Attributes
    ----------
    mean : numpy.ndarray
        (H, W) float32 mean probability on the model-input grid.
    std : numpy.ndarray
        (H, W) float32 standard deviation across members on the model-input grid.
    members : MemberMasks
        Each member's mask (probability above `threshold`) on the output grid.
    """

    mean: np.ndarray
    std: np.ndarray
    members: MemberMasks


_ROWS_PER_BAND = 256


def _welford_update(mean: np.ndarray, m2: np.ndarray, p: np.ndarray, k: int) -> None:
    """Add member number `k` (1-based) to the running mean and sum of squared deviations, in place.

    Welford's update, ``d = p - mean; mean += d / k; m2 += d * (p - mean)``, is free of the
    cancellation of ``E[p^2] - E[p]^2`` in float32 (identical members give exactly zero), so
    two float32 maps suffice where float64 sums of ``p`` and ``p^2`` needed four maps' worth.
    Bands of rows keep the temporaries small: on a 4096^2 frame whole-map temporaries pushed a
    5-model ensemble over 2 GB (benchmarks/RESULTS.md).
    """
    for r in range(0, p.shape[0], _ROWS_PER_BAND):
        rows = slice(r, r + _ROWS_PER_BAND)
        pb, mb = p[rows], mean[rows]
        d = pb - mb
        mb += d / np.float32(k)
        d *= pb - mb
        m2[rows] += d


def member_spread(
    maps: Iterable[np.ndarray], threshold: float | None = None, out_shape: tuple[int, int] | None = None
) -> MemberSpread:
    """Mean, standard deviation and member masks of member probability maps, in one pass.

    Parameters
    ----------
    maps : iterable of numpy.ndarray
        (H, W) member probabilities (e.g. :func:`member_probabilities`); consumed once, so
        only the running sums are kept in memory.
    threshold : float, optional
        Probability above which a member calls a pixel particle (default
        :data:`temshift.models.inference.THRESHOLD`).
    out_shape : tuple of int, optional
        Grid of the member masks (the frame grid when the model input was resampled);
        default the maps' own grid.

    Returns
    -------
    MemberSpread
    """
    from temshift.models.inference import THRESHOLD, particle_mask
    from temshift.preprocess.scale import resample_to_shape

    threshold = THRESHOLD if threshold is None else threshold
    total: np.ndarray | None = None
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    packed: list[np.ndarray] = []
    n = 0
    for p in maps:
        n += 1
        if total is None or mean is None or m2 is None:
            total = np.array(p, dtype=np.float32)  # the float32 sum of predict_probabilities, in place
            mean, m2 = np.array(p, dtype=np.float32), np.zeros(p.shape, np.float32)
        else:
            total += p
            _welford_update(mean, m2, p, n)
        q = p if out_shape is None or tuple(out_shape) == p.shape else resample_to_shape(p, out_shape)
        packed.append(np.packbits(particle_mask(q, threshold), axis=-1))
    if total is None or m2 is None:  # n == 0
        raise ValueError("no member probability maps")
    del mean
    m2 /= np.float32(n)  # population variance (ddof=0)
    np.maximum(m2, 0.0, out=m2)
    np.sqrt(m2, out=m2)
    shape = cast(tuple[int, int], tuple(out_shape) if out_shape is not None else total.shape)
    total /= np.float32(n)
    return MemberSpread(total, m2, MemberMasks(packed, shape))
