"""Dataset patches checked for a model: shapes, channels, size multiple, finite values, 0/1 labels.

Training, evaluation and the studies load patches through :func:`load_patches`, so that every
stage refuses the same bad input with the same message.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from temshift.errors import DatasetError, TemshiftError


def check_arrays(images: Any, labels: Any, config: Any, source: str = "arrays",
                 patch_crop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate patches for a model and return them as (N, H, W) float32 and uint8 arrays.

    Parameters
    ----------
    images : array, shape (N, H, W) or (N, C, H, W)
        Patches; C must equal the model's input channels (only 1 is supported for training).
    labels : array, shape (N, H, W)
        0/1 masks.
    config : ModelConfig
        The model the patches are for (its ``in_channels`` and ``size_multiple``).
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
            raise DatasetError(f"{source}: images have {images.shape[1]} channels, the model expects "
                               f"{config.in_channels}")
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


def load_patches(path: str | Path, config: Any, patch_crop: int | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Load and check a dataset file for a model.

    Returns
    -------
    images, labels : ndarray
        (N, H, W) float32 and uint8.
    info : dict
        ``path``, ``name``, ``spec`` (the dataset's spec dict, incl. preprocessing,
        ``pixel_scale_nm``, ``dose_e_per_A2``), ``spec_hash``, ``content_hash`` (None if the file has
        none), ``n_patches``, ``patch_size``.
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
    spec = dict(getattr(ds, "spec", None) or {})
    attrs = dict(getattr(ds, "attrs", None) or {})
    name = spec.get("name") or path.name.removesuffix("_Images.h5").removesuffix(".h5")
    info = {"path": str(path.resolve()), "name": name, "spec": spec, "spec_hash": spec_hash(spec, attrs),
            "content_hash": attrs.get("content_hash"), "n_patches": int(len(images)),
            "patch_size": [int(s) for s in images.shape[1:]]}
    return images, labels, info
