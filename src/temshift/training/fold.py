"""Train one fold model of a dataset into a run directory (resumable).

A run directory holds ``model.pt`` (best-validation weights as a temshift checkpoint, with
model config, training settings, fold, seed and the training dataset's spec and hash),
``history.csv`` (one row per epoch), ``state.pt`` (resumable per-epoch state, deleted when
the run finishes) and ``result.json`` (summary, written last: its presence marks a finished run).
A run directory belongs to one dataset and one set of settings: asked to train on another
dataset (other spec or content hash) or with other settings, it refuses instead of
resuming or returning the finished model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from temshift.progress import Reporter
from temshift.training.settings import TrainSettings

if TYPE_CHECKING:
    from temshift.training.data import PatchSource

MODEL_FILE = "model.pt"
HISTORY_FILE = "history.csv"
STATE_FILE = "state.pt"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class RunResult:
    """A finished fold run.

    Attributes
    ----------
    run_dir : Path
    fold, seed : int
    best_epoch : int
    best_val_loss : float
    train_loss_at_best : float
        Training loss of the best epoch (for the in-distribution gap).
    epochs_run : int
    stopped_early : bool
    model_path, history_path : Path
    """

    run_dir: Path
    fold: int
    seed: int
    best_epoch: int
    best_val_loss: float
    train_loss_at_best: float
    epochs_run: int
    stopped_early: bool
    model_path: Path
    history_path: Path

    @classmethod
    def read(cls, run_dir) -> RunResult:
        """Read ``result.json`` of a finished run."""
        run_dir = Path(run_dir)
        data = json.loads((run_dir / RESULT_FILE).read_text())
        return cls(
            run_dir=run_dir,
            fold=data["fold"],
            seed=data["seed"],
            best_epoch=data["best_epoch"],
            best_val_loss=data["best_val_loss"],
            train_loss_at_best=data["train_loss_at_best"],
            epochs_run=data["epochs_run"],
            stopped_early=data["stopped_early"],
            model_path=run_dir / MODEL_FILE,
            history_path=run_dir / HISTORY_FILE,
        )


#: what identifies a run's training data (the file may move; its content may not change)
DATASET_KEYS = ("spec_hash", "content_hash", "n_patches")


def _describe_dataset(d: dict) -> str:
    return (
        f"{d.get('path') or d.get('name') or '?'} (spec hash {d.get('spec_hash')}, "
        f"content hash {str(d.get('content_hash'))[:16]}, {d.get('n_patches')} patches)"
    )


def _finished(out_dir: Path, fingerprint: dict, info: PatchSource) -> RunResult:
    """The finished run in `out_dir` if it was trained with these settings on this dataset."""
    from temshift.errors import CheckpointError

    try:
        summary = json.loads((out_dir / RESULT_FILE).read_text())
        stored = summary.get("fingerprint")
    except (OSError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{out_dir / RESULT_FILE}: unreadable run summary ({exc})") from None
    if stored != json.loads(json.dumps(fingerprint)):
        raise CheckpointError(f"{out_dir}: holds a finished run with other settings; use another output folder")
    trained_on = summary.get("dataset") or {}
    if any(trained_on.get(k) != getattr(info, k) for k in DATASET_KEYS):
        raise CheckpointError(
            f"{out_dir}: holds a finished run trained on {_describe_dataset(trained_on)}, not on "
            f"{_describe_dataset(vars(info))}; use another output folder"
        )
    return RunResult.read(out_dir)


def epochs_done(run_dir) -> int:
    """Epochs an interrupted run has saved (rows of ``history.csv``; 0 if none)."""
    try:
        lines = (Path(run_dir) / HISTORY_FILE).read_text().splitlines()
    except OSError:
        return 0
    return max(0, len([ln for ln in lines if ln.strip()]) - 1)


def epoch_seconds(run_dir) -> float:
    """Seconds the saved epochs of a run took, summed over every attempt (a resumed run's task
    time counts only its last attempt); 0.0 without a history."""
    import csv

    try:
        with open(Path(run_dir) / HISTORY_FILE, newline="") as f:
            return float(sum(float(row["seconds"]) for row in csv.DictReader(f)))
    except (OSError, KeyError, ValueError):
        return 0.0


def build_sets(images, labels, fold: int, settings: TrainSettings):
    """Training and validation `PatchSet`s and the split of `fold`."""
    from temshift.training.data import PatchSet, expand
    from temshift.training.splits import split_fold

    split = split_fold(len(images), fold, settings.n_folds, settings.val_fraction)
    train = PatchSet(images, labels, expand(split.train, settings.train_shuffle_seed, settings.dihedral))
    val = PatchSet(images, labels, expand(split.val, settings.val_shuffle_seed, settings.dihedral))
    return train, val, split


def train_fold(
    dataset_path, fold: int, settings: TrainSettings | None = None, out_dir=None, reporter: Reporter | None = None
) -> RunResult:
    """Train the model of one fold; resume an interrupted run; return at once if already finished.

    Parameters
    ----------
    dataset_path : str or Path
        Dataset file (temshift HDF5 or a published ``*_Images.h5``).
    fold : int
        Fold index in ``[0, settings.n_folds)``; its test block is left out, the next block's
        first 12.5 % is validation.
    settings : TrainSettings, optional
        Defaults are the paper's protocol.
    out_dir : str or Path
        Run directory (created).
    reporter : temshift.progress.Reporter, optional
        Receives the training progress (see `trainer.fit`); default: logging.

    Returns
    -------
    RunResult

    Raises
    ------
    DatasetError
        Missing/corrupt dataset, patches unfit for the model, too few patches for the folds.
    SpecError
        Fold out of range.
    CheckpointError
        A corrupt or foreign ``state.pt`` in `out_dir` (never silently restarted), or a
        finished run in `out_dir` with other settings or another dataset (never returned
        for this one).
    """
    from temshift.datasets.records import StoredSpec
    from temshift.datasets.statistics import checkpoint_statistics
    from temshift.errors import DatasetError, SpecError
    from temshift.models.checkpoint import save_checkpoint
    from temshift.models.records import CheckpointMeta
    from temshift.models.runtime import resolve_device, set_threads
    from temshift.models.unet import UNet
    from temshift.training.data import load_patches
    from temshift.training.trainer import fit, torch_generator

    settings = settings or TrainSettings()
    if out_dir is None:
        raise ValueError("out_dir is required")
    out_dir = Path(out_dir)
    if not 0 <= fold < settings.n_folds:
        raise SpecError(f"fold {fold} is out of range 0..{settings.n_folds - 1}")
    seed = settings.seed_for(fold)
    images, labels, info = load_patches(dataset_path, settings.model, settings.patch_crop)
    if (out_dir / RESULT_FILE).exists() and (out_dir / MODEL_FILE).exists():
        return _finished(out_dir, {"settings": settings.fingerprint(), "seed": seed, "fold": fold}, info)
    set_threads(settings.threads)
    try:
        train, val, split = build_sets(images, labels, fold, settings)
    except ValueError as exc:
        raise DatasetError(f"{dataset_path}: {exc}") from None
    device = resolve_device(settings.device)
    model = UNet.from_config(settings.model, generator=torch_generator(seed, 0, 0)).to(device)
    fingerprint = {
        "settings": settings.fingerprint(),
        "seed": seed,
        "fold": fold,
        "dataset_hash": info.spec_hash,
        "content_hash": info.content_hash,
        "n_patches": info.n_patches,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    result = fit(
        model,
        train,
        val,
        settings,
        seed,
        device,
        state_path=out_dir / STATE_FILE,
        history_path=out_dir / "history.csv",
        fingerprint=fingerprint,
        description=f"{info.name} fold {fold}",
        reporter=reporter,
    )
    model.load_state_dict(result.best_state)
    best_row = next(r for r in result.history if r["epoch"] == result.best_epoch)
    trained = info.trained_dataset()
    dataset = trained.model_dump(
        mode="json", by_alias=True
    )  # path, name, spec_hash, content_hash, n_patches, patch_size
    meta = CheckpointMeta(
        kind="fold",
        fold=fold,
        seed=seed,
        n_folds=settings.n_folds,
        val_fraction=settings.val_fraction,
        settings=settings.fingerprint(),
        dataset=trained,
        dataset_spec=StoredSpec.from_stored(info.spec),
        dataset_spec_hash=info.spec_hash,
        split={"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        best_epoch=result.best_epoch,
        best_val_loss=result.best_val_loss,
        train_loss_at_best=best_row["loss"],
        trained_with=result.speed,
        training_statistics=checkpoint_statistics(dataset_path),
    )
    save_checkpoint(out_dir / MODEL_FILE, model.cpu(), meta)
    summary = {
        "fold": fold,
        "seed": seed,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "train_loss_at_best": best_row["loss"],
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "dataset": dataset,
        "fingerprint": {"settings": settings.fingerprint(), "seed": seed, "fold": fold},
    }
    from temshift.io.atomic import atomic_write_text

    atomic_write_text(out_dir / RESULT_FILE, json.dumps(summary, indent=2))
    (out_dir / STATE_FILE).unlink(missing_ok=True)
    return RunResult.read(out_dir)
