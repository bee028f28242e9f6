"""Same- and cross-dataset evaluation of fold models (docs/protocol.md, "Training and testing").

Same dataset: the model of fold i on test block i. Other dataset: every fold model on the
whole dataset. Each patch counts in its 8 dihedral variants, as published. Results are
cached per run directory in ``evaluations.json`` so that a re-run only evaluates what is new
(when the run directory can be written; a read-only one is evaluated without a cache).
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from temshift.models.metrics import METRICS, MetricSums
from temshift.models.records import CheckpointMeta, TrainedDataset

if TYPE_CHECKING:
    from temshift.training.data import PatchSource

CACHE_FILE = "evaluations.json"


def evaluate_model(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    dihedral: bool = True,
    batch_size: int = 16,
    device: Any = None,
    bf16: bool = False,
    channels_last: bool | None = None,
) -> dict:
    """Metrics of one model on patches.

    Parameters
    ----------
    model : UNet
    images : ndarray, shape (N, H, W) float32
    labels : ndarray, shape (N, H, W) 0/1
    dihedral : bool
        Count every patch in its 8 dihedral variants (the paper's protocol).
    batch_size : int
    device : torch.device, optional
        Defaults to the model's device.
    bf16 : bool
        bfloat16 autocast (off: metrics in fp32).
    channels_last : bool or None
        Channels-last layout (same numbers up to rounding, faster on CPU); None = auto as in training.

    Returns
    -------
    dict
        ``ce, soft_dice, hard_dice, pooled_dice, fp_rate, fn_rate, overseg_share, n_patches``
        (n_patches counts dihedral variants).
    """
    import torch

    from temshift.models.dihedral import N_VARIANTS
    from temshift.models.dihedral import dihedral as variant
    from temshift.models.inference import forward
    from temshift.models.runtime import resolve_speed

    model.eval()
    device = device or next(model.parameters()).device
    channels_last = resolve_speed(channels_last, False, device)[0]
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    sums = MetricSums()
    ks = range(N_VARIANTS) if dihedral else (0,)
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size], np.float32)).unsqueeze(1)
        y = torch.from_numpy(np.ascontiguousarray(labels[start : start + batch_size])).long()
        for k in ks:
            sums.update(
                forward(model, variant(x, k), device=device, channels_last=channels_last, bf16=bf16),
                variant(y, k).to(device),
            )
    return sums.result()


def find_runs(paths) -> list[Path]:
    """Run directories (holding ``model.pt``) among `paths`; a folder of fold runs expands to its runs.

    Model files (``*.pt`` checkpoints or released ``*.h5`` weights) are accepted as they are.
    """
    from temshift.errors import CheckpointError

    runs = []
    for p in map(Path, paths):
        if p.is_file() or (p / "model.pt").is_file():
            runs.append(p)
        elif p.is_dir() and sorted(p.glob("*/model.pt")):
            runs.extend(m.parent for m in sorted(p.glob("*/model.pt")))
        else:
            raise CheckpointError(f"{p}: not a run directory (no model.pt) or model file")
    return runs


def _model_file(run: Path) -> Path:
    return run if run.is_file() else run / "model.pt"


def _cache_path(run: Path) -> Path | None:
    return None if run.is_file() else run / CACHE_FILE


def _read_cache(run: Path) -> dict:
    path = _cache_path(run)
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def _write_cache(run: Path, cache: dict) -> None:
    """Store the cache beside the model; a run folder that cannot be written (read-only, another
    user's) just goes without: the cache only saves time, and nothing is written elsewhere."""
    from temshift.io.atomic import atomic_write_text

    path = _cache_path(run)
    if path is not None:
        with contextlib.suppress(OSError):
            atomic_write_text(path, json.dumps(cache, indent=1))


def _is_same(meta: CheckpointMeta, info: PatchSource) -> bool:
    own = meta.dataset or TrainedDataset()
    if own.content_hash and info.content_hash:
        return own.content_hash == info.content_hash
    if meta.dataset_spec_hash and info.spec_hash:
        return meta.dataset_spec_hash == info.spec_hash and own.n_patches == info.n_patches
    return bool(own.path) and own.path == info.path


def _test_indices(meta: CheckpointMeta, info: PatchSource, same: bool, run: Path) -> np.ndarray:
    from temshift.errors import DatasetError
    from temshift.training.splits import test_block

    n = info.n_patches
    if not same:
        return np.arange(n)
    trained_on = meta.dataset.n_patches if meta.dataset else None
    if trained_on != n:
        raise DatasetError(f"{info.path}: has {n} patches, the run {run} was trained on {trained_on}")
    if meta.fold is None:
        raise DatasetError(f"{run}: the model records no fold, so its test block of {info.path} is unknown")
    return test_block(n, meta.fold, meta.n_folds or 5)


def evaluate_runs(
    run_dirs,
    dataset_path,
    *,
    dihedral: bool = True,
    batch_size: int = 16,
    device: str = "auto",
    threads: int | None = None,
    use_cache: bool = True,
):
    """Evaluate fold runs on one or more datasets; one tidy row per (run, dataset).

    Parameters
    ----------
    run_dirs : list of str or Path
        Run directories from `train_fold`, folders of them, or model files.
    dataset_path : str, Path or list of them
        Test dataset(s). A run's own dataset is tested on the run's test block only.
    dihedral : bool
        8x dihedral test sets (the paper).
    batch_size : int
    device : str
        "auto", "cpu", "cuda", ...
    threads : int, optional
        torch threads for this process.
    use_cache : bool
        Reuse and store results in each run's ``evaluations.json``.

    Returns
    -------
    pandas.DataFrame
        Columns ``run, fold, seed, train_dataset, test_dataset, test_path, same_dataset,
        n_patches, ce, soft_dice, hard_dice, pooled_dice, fp_rate, fn_rate, overseg_share,
        train_loss, val_loss, id_gap, own_test_ce, ood_gap``.
    """
    import pandas as pd

    from temshift.models.checkpoint import load_model
    from temshift.models.runtime import resolve_device, set_threads
    from temshift.models.unet import ModelConfig
    from temshift.training.data import load_patches

    set_threads(threads)
    dev = resolve_device(device)
    runs = find_runs(run_dirs)
    paths = [dataset_path] if isinstance(dataset_path, (str, Path)) else list(dataset_path)
    models = {run: load_model(_model_file(run)) for run in runs}
    rows = []
    for path in paths:
        loaded = {}
        for run, (model, meta) in models.items():
            config = ModelConfig.model_validate(meta.config)
            key_cfg = (config.in_channels, config.size_multiple)
            if key_cfg not in loaded:
                loaded[key_cfg] = load_patches(path, config)
            images, labels, info = loaded[key_cfg]
            same = _is_same(meta, info)
            idx = _test_indices(meta, info, same, run)
            model_file = _model_file(run)
            stat = model_file.stat()
            key = f"{info.spec_hash or info.path}|n={info.n_patches}|same={same}|dihedral={dihedral}"
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
            cache = _read_cache(run) if use_cache else {}
            hit = cache.get(key)
            if hit and hit.get("model_stamp") == stamp:
                metrics = hit["metrics"]
            else:
                metrics = evaluate_model(
                    model.to(dev), images[idx], labels[idx], dihedral=dihedral, batch_size=batch_size, device=dev
                )
                if use_cache:
                    cache[key] = {"model_stamp": stamp, "same": same, "metrics": metrics}
                    _write_cache(run, cache)
            train_loss = math.nan if meta.train_loss_at_best is None else meta.train_loss_at_best
            val_loss = math.nan if meta.best_val_loss is None else meta.best_val_loss
            rows.append(
                {
                    "run": str(run),
                    "fold": meta.fold,
                    "seed": meta.seed,
                    "train_dataset": (meta.dataset.name if meta.dataset else None) or meta.file,
                    "test_dataset": info.name,
                    "test_path": info.path,
                    "same_dataset": same,
                    **{m: metrics[m] for m in METRICS},
                    "n_patches": metrics["n_patches"],
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "id_gap": val_loss - train_loss,
                    "own_test_ce": _own_ce(run, cache if use_cache else {}, same, metrics),
                }
            )
    df = pd.DataFrame(rows)
    if len(df):
        own = df[df.same_dataset].set_index("run")["ce"]
        df["own_test_ce"] = df.apply(lambda r: own.get(r.run, r.own_test_ce), axis=1)
        df["ood_gap"] = np.where(df.same_dataset, np.nan, df.ce - df.own_test_ce)
    return df


def _own_ce(run: Path, cache: dict, same: bool, metrics: dict) -> float:
    if same:
        return metrics["ce"]
    for entry in cache.values():
        if entry.get("same"):
            return entry["metrics"]["ce"]
    return math.nan


def summarize(df):
    """Mean and standard deviation over fold models per (train dataset, test dataset).

    Returns
    -------
    pandas.DataFrame
        One row per pair; columns ``<metric>_mean``, ``<metric>_std`` and ``n_models``.
    """
    cols = [c for c in (*METRICS, "id_gap", "ood_gap") if c in df]
    grouped = df.groupby(["train_dataset", "test_dataset", "same_dataset"], dropna=False)
    out = grouped[cols].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["n_models"] = grouped.size()
    return out.reset_index()


def mean_std_text(mean: float, std: float, fmt: str = "{:.3f}") -> str:
    """``"mean ± std"``, or the mean alone when the std is undefined (a single model)."""
    if mean is None or not np.isfinite(mean):
        return "-"
    if std is None or not np.isfinite(std):
        return fmt.format(mean)
    return f"{fmt.format(mean)} ± {fmt.format(std)}"
