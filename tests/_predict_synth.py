"""Tiny synthetic raw frames for prediction and shift tests (fast, numpy only).

Particles are discs with lattice fringes and lower mean intensity on an amorphous, slightly
textured background; counts are Poisson with ``dose * pixel_area`` electrons per pixel.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def raw_frame(n=1024, dose_e_per_A2=423.0, pixel_scale_nm=0.02, spacing_nm=0.235, radius_nm=1.0,
              n_particles=3, seed=0):
    """Raw counts (float32) and the label (uint8) of one synthetic frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n].astype(np.float32)
    texture = ndi.gaussian_filter(rng.normal(size=(n, n)).astype(np.float32), 0.1 / pixel_scale_nm)
    intensity = 1.0 + 0.15 * texture / texture.std()  # amorphous-support phase contrast
    label = np.zeros((n, n), np.uint8)
    r = radius_nm / pixel_scale_nm
    period = spacing_nm / pixel_scale_nm
    for _ in range(n_particles):
        cy, cx = rng.uniform(r, n - r, 2)
        theta = rng.uniform(0, np.pi)
        d = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        phase = 2 * np.pi * (yy[d] * np.cos(theta) + xx[d] * np.sin(theta)) / period
        intensity[d] = 0.85 + 0.12 * np.cos(phase)
        label[d] = 1
    e_per_px = dose_e_per_A2 * (pixel_scale_nm * 10.0) ** 2
    counts = rng.poisson(intensity * e_per_px).astype(np.float32) * 10.0  # gain 10 counts/e
    return counts, label


def write_training_dataset(path, frames, labels, patch=256, pixel_scale_nm=0.02, dose_e_per_A2=423.0):
    """Preprocess frames (x-rays off), cut patches, write a temshift dataset file."""
    import json

    import pandas as pd

    from temshift.datasets.store import write_dataset_file
    from temshift.preprocess import PreprocessSettings, preprocess_frame

    settings = PreprocessSettings(xray_threshold=None)
    images, labs, prov = [], [], []
    for k, (f, lab) in enumerate(zip(frames, labels)):
        img = preprocess_frame(f, settings)
        for r in range(0, f.shape[0] - patch + 1, patch):
            for c in range(0, f.shape[1] - patch + 1, patch):
                images.append(img[r:r + patch, c:c + patch])
                labs.append(lab[r:r + patch, c:c + patch])
                prov.append((f"frame{k}.tif", r, c))
    spec = {"name": "synth", "preprocess": settings.model_dump(), "patch_size": patch,
            "pixel_scale_nm": pixel_scale_nm, "dose_e_per_A2": dose_e_per_A2}
    provenance = pd.DataFrame(prov, columns=["file", "row", "col"])
    return write_dataset_file(path, np.stack(images), np.stack(labs), provenance, {"spec": json.dumps(spec)})
