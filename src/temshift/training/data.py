"""Patches in memory, checked, and assembled into dihedral/cropped batches."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from temshift.errors import DatasetError, TemshiftError
from temshift.models.dihedral import N_VARIANTS, dihedral

if TYPE_CHECKING:
    from temshift.models.records import TrainedDataset
    from temshift.models.unet import ModelConfig


def check_arrays(images, labels, config, source="arrays", patch_crop: int | None = None):
    """Validate patches for a model and return them as (N, H, W) float32 and uint8 arrays.

    Parameters
    ----------
    images : array, shape (N, H, W) or (N, C, H, W)
        Patches; C must equal the model's input channels (only 1 is supported for training).
    labels : array, shape (N, H, W)
        0/1 masks.
    config : ModelConfig
        The model the patches are for.
    source : str
        File name (or description) used in error messages.
    patch_crop : int, optional
        Crop size that must fit into the patches.

    Raises
    ------
    DatasetError
        Shape, channel, patch-size, NaN or label-value problems, naming `source`.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 4:
        if images.shape[1] != config.in_channels:
            raise DatasetError(
                f"{source}: images have {images.shape[1]} channels, the model expects {config.in_channels}"
            )
        if images.shape[1] != 1:
            raise DatasetError(f"{source}: only single-channel patches are supported")
        images = images[:, 0]
    elif images.ndim != 3:
        raise DatasetError(f"{source}: images must be (N, H, W), got shape {images.shape}")
    elif config.in_channels != 1:
        raise DatasetError(f"{source}: images have 1 channel, the model expects {config.in_channels}")
    if labels.shape != images.shape:
        raise DatasetError(f"{source}: labels shape {labels.shape} does not match images {images.shape}")
    if len(images) == 0:
        raise DatasetError(f"{source}: no patches")
    multiple = config.size_multiple
    h, w = images.shape[1:]
    size = patch_crop or min(h, w)
    if patch_crop is None and (h % multiple or w % multiple):
        raise DatasetError(f"{source}: patch size {h}x{w} is not a multiple of {multiple} required by the model")
    if patch_crop is not None and patch_crop > min(h, w):
        raise DatasetError(f"{source}: patch crop {patch_crop} exceeds the patch size {h}x{w}")
    if size % multiple:
        raise DatasetError(f"{source}: patch size {size} is not a multiple of {multiple}")
    images = images.astype(np.float32, copy=False)
    if not np.isfinite(images).all():
        raise DatasetError(f"{source}: images contain NaN or infinite values")
    values = np.unique(labels)
    if not np.isin(values, (0, 1)).all():
        raise DatasetError(f"{source}: labels must be 0/1, found values {values[:6].tolist()}")
    return images, labels.astype(np.uint8, copy=False)


def spec_hash(spec: dict | None, attrs: dict | None = None) -> str | None:
    """Hash of a dataset spec: the dataset's own ``spec_hash`` attribute if present, else SHA-256 of its JSON."""
    if attrs and attrs.get("spec_hash"):
        return str(attrs["spec_hash"])
    if not spec:
        return None
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PatchSource:
    """The dataset file patches were loaded from (:func:`load_patches`).

    Attributes
    ----------
    path : str
        Absolute path of the file.
    name : str
        Dataset name (the spec's, else the file name).
    spec : dict
        The spec as stored (the JSON its hash digests; typed: ``StoredSpec.from_stored(spec)``).
    spec_hash, content_hash : str or None
        Hash of the spec and SHA-256 of patches and labels (None when the file has none).
    n_patches : int
        Patches in the file.
    patch_size_px : tuple of int
        Patch height and width, pixels.
    """

    path: str
    name: str
    spec: dict[str, Any]
    spec_hash: str | None
    content_hash: str | None
    n_patches: int
    patch_size_px: tuple[int, int]

    def trained_dataset(self) -> TrainedDataset:
        """The checkpoint's record of this dataset (meta key ``dataset``)."""
        from temshift.models.records import TrainedDataset

        return TrainedDataset(
            path=self.path,
            name=self.name,
            spec_hash=self.spec_hash,
            content_hash=self.content_hash,
            n_patches=self.n_patches,
            patch_size=self.patch_size_px,
        )


def load_patches(
    path: str | os.PathLike[str], config: ModelConfig, patch_crop: int | None = None
) -> tuple[np.ndarray, np.ndarray, PatchSource]:
    """Load and check a dataset file for a model.

    Returns
    -------
    images, labels : ndarray
        (N, H, W) float32 and uint8.
    info : PatchSource
        The file, its spec (incl. preprocessing, ``pixel_scale_nm``, ``dose_e_per_A2``), hashes and
        patch count and size.
    """
    from temshift.datasets import load_dataset

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset")
    try:
        ds = load_dataset(path)
    except TemshiftError:
        raise
    except Exception as exc:  # noqa: BLE001  (h5py/OS errors of a damaged file)
        raise DatasetError(f"{path}: cannot read dataset ({type(exc).__name__}: {exc})") from None
    images, labels = check_arrays(ds.images, ds.labels, config, source=str(path), patch_crop=patch_crop)
    spec = dict(ds.spec)
    name = ds.record.spec.name or path.name.removesuffix("_Images.h5").removesuffix(".h5")
    h, w = (int(s) for s in images.shape[1:])
    info = PatchSource(
        str(path.resolve()), name, spec, spec_hash(spec, ds.attrs), ds.record.content_hash, int(len(images)), (h, w)
    )
    return images, labels, info


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
                img, lab = self.images[p, r : r + ch, c : c + cw], self.labels[p, r : r + ch, c : c + cw]
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
