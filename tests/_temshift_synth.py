"""Test helpers: small generated HRTEM-like patches and a dataset-file stand-in.

Discs with lattice fringes on a noisy background, standardized like the paper's data.
"""

from __future__ import annotations

import json
import types

import numpy as np


def make_patches(n=40, size=64, seed=0, noise=0.6):
    """`n` patches (N, size, size) float32 and their 0/1 labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    images = np.empty((n, size, size), np.float32)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        img = rng.normal(0, noise, (size, size)).astype(np.float32)
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(8, size - 8, 2)
            r = rng.uniform(5, 11)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            angle = rng.uniform(0, np.pi)
            fringes = np.cos(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / 3.5)
            img = np.where(disc, img - 0.6 + 0.9 * fringes, img)
            labels[i][disc] = 1
        images[i] = (img - img.mean()) / img.std()
    return images, labels


def write_dataset(path, images, labels, spec=None):
    """Write an HDF5 file with `images` / `labels` datasets and a spec JSON attribute."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
        f.attrs["spec"] = json.dumps(spec or {"name": path.stem, "pixel_scale_nm": 0.02, "dose_e_per_A2": 423})
    return path


def fallback_load_dataset(path):
    """Minimal reader standing in for `temshift.datasets.load_dataset` in these tests."""
    import h5py

    from temshift.errors import DatasetError

    try:
        with h5py.File(path, "r") as f:
            images, labels = f["images"][()], f["labels"][()]
            spec = json.loads(f.attrs.get("spec", "{}"))
    except (OSError, KeyError) as exc:
        raise DatasetError(f"{path}: cannot read dataset ({exc})") from None
    return types.SimpleNamespace(images=images, labels=labels, spec=spec, attrs={}, path=path)


def use_fallback_loader(monkeypatch):
    """Install the minimal reader as `temshift.datasets.load_dataset` if the real one is not there yet."""
    import temshift.datasets as datasets

    if getattr(datasets, "load_dataset", None) is None:
        monkeypatch.setattr(datasets, "load_dataset", fallback_load_dataset, raising=False)
