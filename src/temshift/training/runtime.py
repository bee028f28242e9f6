"""Expected training time of a fold on CPU, from the benchmarked throughput.

Threads, device and the speed policy (channels-last, bfloat16) are :mod:`temshift.models.runtime`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temshift.training.settings import TrainSettings


#: measured CPU throughput at 256 px patches, one thread, bf16 + channels-last (benchmarks/RESULTS.md,
#: "Training and inference"): full training step and inference; cost scales with the patch area
CPU_TRAIN_PATCHES_PER_S_256 = 16.7
CPU_INFER_PATCHES_PER_S_256 = 86.0


def dataset_patches(path: str | Path) -> tuple[int, int] | None:
    """``(n_patches, patch side px)`` from a dataset file's header (None when it cannot be read)."""
    import h5py

    from temshift.datasets.store import published_pair

    pair = published_pair(path)
    try:
        with h5py.File(pair[1] if pair else path, "r") as f:
            shape = f["images"].shape
    except (OSError, KeyError, ValueError):
        return None
    return (int(shape[0]), int(shape[-1] if len(shape) == 3 else shape[-2])) if len(shape) >= 3 else None


def estimate_cpu_seconds(n_patches: int, patch_px: int, settings: TrainSettings, fold: int = 0) -> float:
    """Rough training time of one fold on one CPU core, seconds, from the benchmarked throughput.

    Counts the dihedral-expanded training samples of an epoch (capped by
    ``samples_per_epoch``) and the validation samples, at `CPU_TRAIN_PATCHES_PER_S_256` and
    `CPU_INFER_PATCHES_PER_S_256` scaled by the patch (or crop) area; early stopping is ignored.
    """
    from temshift.training.splits import split_fold
    from temshift.training.trainer import epoch_samples

    split = split_fold(n_patches, fold, settings.n_folds, settings.val_fraction)
    variants = 8 if settings.dihedral else 1
    train = epoch_samples(len(split.train) * variants, settings)
    val = len(split.val) * variants
    area = ((settings.patch_crop or patch_px) / 256) ** 2
    per_epoch = area * (train / CPU_TRAIN_PATCHES_PER_S_256 + val / CPU_INFER_PATCHES_PER_S_256)
    return settings.epochs * per_epoch


def format_duration(seconds: float) -> str:
    """``"40 s"``, ``"12 min"``, ``"3.5 h"``, ``"2.1 days"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
