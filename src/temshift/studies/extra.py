"""Score a shipped model (the generalist) on a study dataset, as prediction would use it.

A study's per-dataset models see the dataset's preprocessed patches. A shipped model was
trained elsewhere, on its own preprocessing and working pixel scale, so it is given what
`temshift predict` would give it: each raw frame of the dataset goes through
`temshift.predict.pipeline.predict_frame` (the model's own preprocessing, resampling from
the frame's catalog pixel scale to the model's, tiled inference, probabilities back on the
frame grid), and the dataset's patches are cut from those probabilities at their recorded
positions and scored against the dataset's labels with the metrics of the evaluation stage.
The scores are therefore comparable patch for patch with the per-dataset models' cells.

With ``dihedral`` each frame is predicted in its 8 dihedral variants and every variant is
counted, as the evaluation stage counts patches.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from temshift.errors import CheckpointError, DatasetError


def _probability_logits(prob: np.ndarray):
    """Two-class logits ``(B, 2, H, W)`` whose softmax is `prob` (clipped away from 0 and 1)."""
    import torch

    p = torch.from_numpy(np.clip(prob, 1e-6, 1.0 - 1e-6).astype(np.float32))
    return torch.stack([torch.log1p(-p), torch.log(p)], dim=1)


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """Variant `k` (0-7) of a 2-D array: ``k % 4`` quarter turns, then a transpose for ``k >= 4``."""
    out = np.rot90(a, k % 4)
    return out.T if k >= 4 else out


def _undo_dihedral(a: np.ndarray, k: int) -> np.ndarray:
    out = a.T if k >= 4 else a
    return np.rot90(out, -(k % 4))


def _frame_index(catalog, root) -> dict:
    """``folder/file`` (the dataset's provenance) -> (frame path, catalog pixel scale)."""
    out = {}
    for _, row in catalog.df.iterrows():
        scale = row.get("pixel_scale_nm")
        scale = float(scale) if scale is not None and np.isfinite(float(scale)) else None
        out[f"{row['folder']}/{row['file']}"] = (catalog.frame_path(row, root), scale)
    return out


def evaluate_pretrained(inputs: dict, out_dir: Path, deps: dict, runtime: dict):
    """Metrics of a shipped model on one study dataset; one row (the evaluation stage's columns).

    Parameters
    ----------
    inputs : dict
        ``pretrained`` (name), ``model_sha256`` (first 16 hex digits of the checkpoint's
        SHA-256), ``dihedral``, ``repository`` (as the dataset task's).
    deps : dict
        ``dataset`` (the dataset task's folder) and, for a synthetic repository, ``repo``.
    runtime : dict
        ``model_path`` (the checkpoint, from the plan), ``threads``.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    CheckpointError
        The checkpoint is missing or its content is not the one the plan was made with.
    DatasetError
        A patch whose frame is not in the catalog, or the dataset records no patch positions.
    """
    import pandas as pd
    import torch

    from temshift.datasets import load_dataset
    from temshift.io import read_frame
    from temshift.models.metrics import METRICS, MetricSums
    from temshift.models.runtime import set_threads
    from temshift.predict.pipeline import load_predictor, predict_frame
    from temshift.studies.tasks import DATASET, _catalog_and_root

    set_threads(runtime.get("threads"))
    path = Path(runtime["model_path"])
    if not path.is_file():
        raise CheckpointError(f"{path}: the {inputs['pretrained']} planned for this study is gone")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    if digest != inputs["model_sha256"]:
        raise CheckpointError(f"{path}: changed since the study was planned (plan the study again)")
    predictor = load_predictor(path)
    ds_path = Path(deps["dataset"]) / DATASET
    ds = load_dataset(ds_path)
    prov = ds.provenance
    if prov is None or not len(prov) or (prov["row"] < 0).any():
        raise DatasetError(f"{ds_path}: no patch positions recorded, so the frames cannot be scored")
    catalog, root = _catalog_and_root(inputs, deps)
    frames = _frame_index(catalog, root)
    size = ds.images.shape[1]
    variants = range(8) if inputs.get("dihedral") else (0,)
    sums = MetricSums()
    zooms = []
    for source, group in prov.groupby("file", sort=False):
        if source not in frames:
            raise DatasetError(f"{ds_path}: patch frame {source!r} is not in the repository's catalog")
        frame_path, scale = frames[source]
        frame = read_frame(frame_path, expected_pixel_scale_nm=scale)
        scale = scale or frame.pixel_scale_nm
        idx = group.index.to_numpy()
        labels = ds.labels[idx]
        for k in variants:
            seg = predict_frame(predictor, _dihedral(frame.data, k), pixel_scale_nm=scale)
            prob = _undo_dihedral(seg.probabilities, k)
            zooms.append(seg.zoom)
            patches = np.stack(
                [prob[r : r + size, c : c + size] for r, c in zip(group["row"].to_numpy(), group["col"].to_numpy())]
            )
            # in the frame's orientation: every metric is invariant to turning mask and label alike
            sums.update(_probability_logits(patches), torch.from_numpy(labels.astype(np.int64)))
    metrics = sums.result()
    meta = predictor.metas[0]
    return pd.DataFrame(
        [
            {
                "run": str(path),
                "fold": None,
                "seed": meta.seed,
                "train_dataset": inputs["pretrained"],
                "test_dataset": ds.name,
                "test_path": str(ds_path),
                "same_dataset": False,
                **{m: metrics[m] for m in METRICS},
                "n_patches": metrics["n_patches"],
                "train_loss": math.nan,
                "val_loss": math.nan,
                "id_gap": math.nan,
                "own_test_ce": math.nan,
                "ood_gap": math.nan,
                "input_zoom": float(np.mean(zooms)),
                "model_pixel_scale_nm": predictor.pixel_scale_nm,
            }
        ]
    )
