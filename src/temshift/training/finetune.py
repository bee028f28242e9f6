"""Few-shot transfer: adapt a trained model to a user's own labelled frames (resumable).

The frames go through the base model's own preprocessing and pixel-scale matching, exactly
as `temshift predict` treats a frame (`temshift.preprocess.model_input.model_input`); labels follow
the same resampling. The prepared patches are written to ``RUN/frames.h5`` as an ordinary
temshift dataset (so the model carries training statistics for shift warnings) and trained
with the project's loop (`temshift.training.trainer.fit`: dihedral expansion, flips and
rotations, per-epoch resumable state). The result, ``RUN/model.pt``, is a normal temshift
checkpoint recording the base model, the frames and the freeze mode.

A run directory belongs to one base model, one set of frames and one set of settings: asked
to fine-tune anything else into it, it refuses (interrupted or finished) instead of mixing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from temshift.errors import CheckpointError, DatasetError, TemshiftError
from temshift.progress import Reporter
from temshift.training.freeze import FREEZE_MODES
from temshift.training.labelled_frames import FramePair

MODEL_FILE = "model.pt"
DATA_FILE = "frames.h5"
HISTORY_FILE = "history.csv"
STATE_FILE = "state.pt"
RESULT_FILE = "result.json"

#: defaults for few-shot fine-tuning (the rest are the paper's TrainSettings); see docs/finetune.md
FINETUNE_DEFAULTS = {"epochs": 60, "batch_size": 8, "learning_rate": 1e-3, "patch_crop": 256, "seed": 962}


class FinetuneError(TemshiftError):
    """A fine-tuning request that cannot be carried out (model, frames, run folder)."""


@dataclass(frozen=True)
class FinetuneResult:
    """A finished fine-tuning run.

    Attributes
    ----------
    run_dir, model_path, history_path : Path
    base_model : str
        File of the base model.
    freeze : str
    n_frames, n_patches : int
        Training frames and the patches cut from them (before the 8 dihedral variants).
    best_epoch, epochs_run : int
    best_loss : float
        Validation loss of the best epoch (training loss without validation frames).
    seconds : float
        Wall time of the training, seconds (summed over resumed sessions).
    zoom : list of float
        Resampling factor applied to each frame (1.0 when its pixel scale is unknown).
    base_pixel_scale_nm : float or None
        Training pixel scale of the base model, nm/pixel: what frames of unknown scale,
        used on their own grid, are taken to be.
    """

    run_dir: Path
    model_path: Path
    history_path: Path
    base_model: str
    freeze: str
    n_frames: int
    n_patches: int
    best_epoch: int
    epochs_run: int
    best_loss: float
    seconds: float
    zoom: list = field(default_factory=list)
    base_pixel_scale_nm: float | None = None

    @classmethod
    def read(cls, run_dir) -> FinetuneResult:
        """Read ``result.json`` of a finished run."""
        run_dir = Path(run_dir)
        d = json.loads((run_dir / RESULT_FILE).read_text())
        return cls(
            run_dir,
            run_dir / MODEL_FILE,
            run_dir / HISTORY_FILE,
            d["base_model"]["file"],
            d["freeze"],
            d["n_frames"],
            d["n_patches"],
            d["best_epoch"],
            d["epochs_run"],
            d["best_loss"],
            d["seconds"],
            d["zoom"],
            d["base_model"].get("pixel_scale_nm"),
        )


def finetune_settings(**overrides):
    """`TrainSettings` for fine-tuning: `FINETUNE_DEFAULTS` (60 epochs, batches of 8 random 256 px crops,
    lr 1e-3), then `overrides` (None values ignored)."""
    from temshift.training.settings import TrainSettings

    return TrainSettings(**{**FINETUNE_DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}})


# --- the base model ------------------------------------------------------------------------


def resolve_base(model, zoo_dir=None) -> tuple[Path, str | None]:
    """The one model file to start from, and a note on how it was found.

    Parameters
    ----------
    model : str or Path
        A temshift checkpoint, a released ``*_model.h5``, a run directory holding one
        ``model.pt``, a shipped model's name (``"generalist"``, as `temshift predict` takes it:
        `temshift.models.pretrained`), or a zoo name: a training set (its fold-0 model) or a
        released file name. An existing file or folder of that name wins over a name.
    zoo_dir : path, optional
        Local zoo folder (default `temshift.models.zoo.zoo_dir`).

    Raises
    ------
    FinetuneError, ZooError, CheckpointError
        Nothing of that name; a run directory with several models; zoo files not pulled; a
        shipped model absent from this install.
    """
    from temshift.models import zoo
    from temshift.models.checkpoint import model_files
    from temshift.models.pretrained import NAMES, is_pretrained_name, pretrained_path

    path = Path(model)
    if path.exists():
        files = model_files(path)
        if len(files) > 1:
            raise FinetuneError(
                f"{path}: holds {len(files)} models (an ensemble); fine-tune one of them, e.g. {files[0]}"
            )
        return files[0], None
    if is_pretrained_name(model):  # the lookup `temshift predict generalist` uses
        shipped = pretrained_path(str(model))
        return shipped, f"shipped model {shipped.stem}: {shipped}"
    try:
        found = zoo.resolve([str(model)])
    except zoo.ZooError:
        raise FinetuneError(
            f"{model}: no such model file or run directory, not a shipped model ({', '.join(NAMES)}) "
            "and not a zoo model (see `temshift zoo list`)"
        ) from None
    if str(model).strip().lower() == "all":
        raise FinetuneError("'all' names every released model; fine-tune one training set or file")
    chosen = sorted(found, key=lambda m: m.fold)[0]
    folder = zoo.zoo_dir(zoo_dir)
    if not zoo.is_complete(chosen, folder):
        raise zoo.ZooError(
            f"zoo model {chosen.file}: missing or damaged in {folder}; "
            f"run `temshift zoo pull {chosen.set} --dest {folder}`"
        )
    note = f"zoo set {chosen.set}: starting from its fold-{chosen.fold} model {chosen.file}" if len(found) > 1 else None
    return folder / chosen.file, note


# --- frames -> patches ---------------------------------------------------------------------


@dataclass
class PreparedFrames:
    """Patches of the prepared frames and where they come from.

    Attributes
    ----------
    images : (N, P, P) float32
        Model-input patches (preprocessed, resampled).
    labels : (N, P, P) uint8
    frame_index, rows, cols : (N,) int
        Source frame of each patch and its top-left corner on the model-input grid, pixels.
    frames : list of dict
        Per frame: ``image``, ``label`` (file names), ``image_sha256``, ``label_sha256``,
        ``shape`` (frame pixels), ``input_shape`` (model-input pixels), ``zoom``.
    """

    images: np.ndarray
    labels: np.ndarray
    frame_index: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    frames: list


def _origins(n: int, patch: int) -> list[int]:
    """Tile starts covering ``[0, n)`` with tiles of `patch` (the last one flush with the edge)."""
    starts = list(range(0, n - patch + 1, patch))
    return starts + ([n - patch] if starts[-1] + patch < n else [])


def _sha256(path: Path) -> str:
    from temshift.catalog.fetch import sha256_file

    return sha256_file(path)


def prepare_frames(
    pairs: list[FramePair],
    preprocess,
    model_pixel_scale_nm: float | None,
    patch_size: int,
    size_multiple: int,
    pixel_scale_nm: float | None = None,
) -> PreparedFrames:
    """Preprocess labelled frames as at prediction and cut them into patches.

    Parameters
    ----------
    pairs : list of FramePair
    preprocess : PreprocessSettings
        The base model's preprocessing.
    model_pixel_scale_nm : float or None
        The base model's training pixel scale, nm/pixel.
    patch_size : int
        The base model's training patch size, pixels; smaller frames give smaller patches
        (a multiple of `size_multiple`), the same for all frames.
    size_multiple : int
        The model's size multiple (``2 ** depth``).
    pixel_scale_nm : float, optional
        Pixel scale of all frames, nm/pixel; overrides the one a file records. Frames of
        unknown scale are not resampled.

    Raises
    ------
    FrameReadError, PairingError
        Unreadable files, shape mismatches (files named).
    DatasetError
        A frame smaller than the model's size multiple; frames of known and unknown pixel scale mixed.
    """
    from temshift.preprocess.model_input import model_input
    from temshift.preprocess.scale import resample_to_shape
    from temshift.training.labelled_frames import read_pair

    inputs, records = [], []
    for pair in pairs:
        frame, label = read_pair(pair)
        scale = pixel_scale_nm or frame.pixel_scale_nm
        image, zoom = model_input(frame.data, preprocess, scale, model_pixel_scale_nm, rescale=True)
        if zoom != 1.0:
            label = (resample_to_shape(label.astype(np.float32), image.shape) >= 0.5).astype(np.uint8)
        if min(image.shape) < size_multiple:
            raise DatasetError(
                f"{pair.image}: {image.shape[0]}x{image.shape[1]} px after resampling, smaller than "
                f"the model's {size_multiple} px minimum"
            )
        inputs.append((image, label))
        records.append(
            {
                "image": pair.image.name,
                "label": pair.label.name,
                "image_sha256": _sha256(pair.image),
                "label_sha256": _sha256(pair.label),
                "shape": list(frame.data.shape),
                "input_shape": list(image.shape),
                "pixel_scale_nm": scale,
                "zoom": float(zoom),
            }
        )
    known = [f["pixel_scale_nm"] is not None for f in records]
    if any(known) and not all(known):  # one model cannot hold frames on the base's grid and on their own
        missing = next(f["image"] for f in records if f["pixel_scale_nm"] is None)
        having = next(f["image"] for f in records if f["pixel_scale_nm"] is not None)
        raise DatasetError(f"{missing}: records no pixel scale while {having} does; give --pixel-scale for all frames")
    smallest = min(min(im.shape) for im, _ in inputs)
    patch = min(int(patch_size), smallest // size_multiple * size_multiple)
    images, labels, index, rows, cols = [], [], [], [], []
    for k, (image, label) in enumerate(inputs):
        for r in _origins(image.shape[0], patch):
            for c in _origins(image.shape[1], patch):
                images.append(image[r : r + patch, c : c + patch])
                labels.append(label[r : r + patch, c : c + patch])
                index.append(k)
                rows.append(r)
                cols.append(c)
    return PreparedFrames(
        np.stack(images).astype(np.float32),
        np.stack(labels).astype(np.uint8),
        np.asarray(index),
        np.asarray(rows),
        np.asarray(cols),
        records,
    )


def _data_spec(prepared: PreparedFrames, preprocess, model_pixel_scale_nm, base_sha256: str) -> dict:
    """The spec of the fine-tuning data as a dataset spec (what `load_predictor` reads back)."""
    resampled = all(f["pixel_scale_nm"] for f in prepared.frames)
    return {
        "name": "finetune",
        "preprocess": json.loads(preprocess.model_dump_json()),
        "patch_size": int(prepared.images.shape[-1]),
        # frames of known scale were resampled to the base's scale; otherwise their own grid is the model's
        "pixel_scale_nm": model_pixel_scale_nm if resampled else None,
        "dose_e_per_A2": None,
        "frames": [
            {k: f[k] for k in ("image", "label", "image_sha256", "label_sha256", "pixel_scale_nm")}
            for f in prepared.frames
        ],
        "base_model_sha256": base_sha256,
        "n_frames": len(prepared.frames),
    }


def _write_data(path: Path, prepared: PreparedFrames, spec: dict) -> dict:
    """Write the prepared patches as a temshift dataset; returns its identity (spec/content hash)."""
    import pandas as pd

    from temshift.datasets.store import content_hash, dataset_attrs, write_dataset_file
    from temshift.training.data import spec_hash

    spec_sha, content_sha = spec_hash(spec), content_hash(prepared.images, prepared.labels)
    info = {"spec_hash": spec_sha, "content_hash": content_sha, "n_patches": int(len(prepared.images))}
    if not path.exists():
        prov = pd.DataFrame(
            {
                "file": [prepared.frames[k]["image"] for k in prepared.frame_index],
                "row": prepared.rows,
                "col": prepared.cols,
            }
        )
        attrs = dataset_attrs(
            spec["name"],
            spec,
            content_sha,
            spec_hash=spec_sha,
            preprocess=spec["preprocess"],
            pixel_scale_nm=spec["pixel_scale_nm"],
            patch_size=spec["patch_size"],
            n_frames=spec["n_frames"],
            stamp=False,
        )
        write_dataset_file(path, prepared.images, prepared.labels, prov, attrs)
    return info


def _check_run_dir(out_dir: Path, identity: dict) -> None:
    """Refuse a run folder that holds another fine-tuning (other base, frames or settings) or a train run."""
    summary_path = out_dir / RESULT_FILE
    if not summary_path.exists():
        return
    try:
        stored = json.loads(summary_path.read_text()).get("identity") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{summary_path}: unreadable run summary ({exc})") from None
    if stored.get("kind") != "finetune":
        raise CheckpointError(f"{out_dir}: holds a training run, not a fine-tuning run; use another output folder")
    differ = [
        k
        for k in ("base_sha256", "content_hash", "freeze", "settings", "val_frames")
        if stored.get(k) != identity.get(k)
    ]
    if differ:
        what = {
            "base_sha256": "another base model",
            "content_hash": "other frames",
            "freeze": "another freeze mode",
            "settings": "other settings",
            "val_frames": "other validation frames",
        }
        raise CheckpointError(
            f"{out_dir}: holds a finished fine-tuning run with "
            f"{', '.join(what[k] for k in differ)} ({_describe(stored)}); use another output folder"
        )


def _describe(identity: dict) -> str:
    frames = identity.get("frames") or []
    return (
        f"base {identity.get('base_file')}, {len(frames)} frames "
        f"{', '.join(frames[:3])}{' ...' if len(frames) > 3 else ''}, freeze {identity.get('freeze')}"
    )


def finetune(
    model,
    pairs: list[FramePair],
    out_dir,
    *,
    freeze: str = "decoder",
    settings=None,
    pixel_scale_nm: float | None = None,
    val_frames: int = 0,
    zoo_dir=None,
    reporter: Reporter | None = None,
) -> FinetuneResult:
    """Fine-tune `model` on labelled frames into the run folder `out_dir`; resume an interrupted run.

    Parameters
    ----------
    model : str or Path
        Base model (see :func:`resolve_base`): a file, a run folder, ``"generalist"`` (the
        shipped model) or a zoo name.
    pairs : list of FramePair
        Labelled frames (:func:`temshift.training.labelled_frames.pair_frames`).
    out_dir : str or Path
        Run folder: ``model.pt``, ``frames.h5``, ``history.csv``, ``result.json``
        (``state.pt`` while unfinished).
    freeze : {"decoder", "encoder", "none"}
        Part of the network kept fixed (see :mod:`temshift.training.freeze`).
    settings : TrainSettings, optional
        Default :func:`finetune_settings`. ``settings.seed`` seeds batch order and augmentation.
    pixel_scale_nm : float, optional
        Pixel scale of the frames, nm/pixel (default: what the files record; unknown = not
        resampled).
    val_frames : int
        Frames (the last ones in name order) held out to pick the best epoch; 0 = the
        training loss picks it.
    zoo_dir : path, optional
        Local zoo folder for zoo names.
    reporter : temshift.progress.Reporter, optional
        Receives the training progress (see `trainer.fit`); default: logging.

    Returns
    -------
    FinetuneResult

    Raises
    ------
    FinetuneError, PairingError, FrameReadError, DatasetError, CheckpointError
        Bad model, frames or options; a run folder holding another run.
    """
    import time

    from temshift.datasets.records import StoredSpec
    from temshift.datasets.statistics import checkpoint_statistics
    from temshift.models.checkpoint import load_model, save_checkpoint
    from temshift.models.conditions import training_conditions
    from temshift.models.records import CheckpointMeta, TrainedDataset
    from temshift.models.runtime import resolve_device, set_threads
    from temshift.training.data import PatchSet, check_arrays, expand
    from temshift.training.freeze import freeze as freeze_parts
    from temshift.training.trainer import fit

    if freeze not in FREEZE_MODES:
        raise FinetuneError(f"--freeze must be one of {', '.join(FREEZE_MODES)}, got {freeze!r}")
    settings = settings or finetune_settings()
    pairs = list(pairs)
    if not pairs:
        raise FinetuneError("no labelled frames given")
    if not 0 <= val_frames < len(pairs):
        raise FinetuneError(
            f"--val-frames {val_frames}: must leave at least one of the {len(pairs)} frames for training"
        )
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FinetuneError(f"{out_dir}: exists and is not a folder")
    base_path, _ = resolve_base(model, zoo_dir)
    net, base_meta = load_model(base_path)
    trained = training_conditions(base_meta)  # as prediction with the base model prepares frames
    base_sha = _sha256(base_path)
    prepared = prepare_frames(
        pairs,
        trained.preprocess,
        trained.pixel_scale_nm,
        trained.patch_size_px,
        net.config.size_multiple,
        pixel_scale_nm,
    )
    if settings.patch_crop and settings.patch_crop >= prepared.images.shape[-1]:
        settings = settings.model_copy(update={"patch_crop": None})  # small frames: train on whole patches
    check_arrays(
        prepared.images, prepared.labels, net.config, source="fine-tuning frames", patch_crop=settings.patch_crop
    )
    seed = settings.seed_for(0)
    identity = {
        "kind": "finetune",
        "base_sha256": base_sha,
        "base_file": base_path.name,
        "content_hash": None,
        "freeze": freeze,
        "settings": settings.fingerprint(),
        "seed": seed,
        "val_frames": val_frames,
        "frames": [f["image"] for f in prepared.frames],
    }
    spec = _data_spec(prepared, trained.preprocess, trained.pixel_scale_nm, base_sha)
    from temshift.datasets.store import content_hash

    identity["content_hash"] = content_hash(prepared.images, prepared.labels)
    _check_run_dir(out_dir, identity)
    if (out_dir / RESULT_FILE).exists() and (out_dir / MODEL_FILE).exists():
        return FinetuneResult.read(out_dir)
    data_path = out_dir / DATA_FILE
    if data_path.exists():
        try:
            from temshift.datasets import load_dataset

            there = load_dataset(data_path).record.content_hash
        except Exception as exc:  # noqa: BLE001  (damaged file: say so rather than train on it)
            raise CheckpointError(
                f"{data_path}: unreadable fine-tuning data ({exc}); delete {out_dir} to start over"
            ) from None
        if there != identity["content_hash"]:
            raise CheckpointError(
                f"{out_dir}: holds an interrupted fine-tuning run on other frames or preprocessing "
                f"({data_path.name} content hash {str(there)[:16]}, these frames "
                f"{identity['content_hash'][:16]}); use another output folder, or delete it to start over"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    info = _write_data(data_path, prepared, spec)

    set_threads(settings.threads)
    device = resolve_device(settings.device)
    frozen = freeze_parts(net, freeze)
    net.to(device)
    n_train = len(pairs) - val_frames
    train_idx = np.flatnonzero(prepared.frame_index < n_train)
    val_idx = np.flatnonzero(prepared.frame_index >= n_train)
    train = PatchSet(
        prepared.images, prepared.labels, expand(train_idx, settings.train_shuffle_seed, settings.dihedral)
    )
    val = PatchSet(prepared.images, prepared.labels, expand(val_idx, settings.val_shuffle_seed, settings.dihedral))
    fingerprint = {
        k: identity[k] for k in ("kind", "base_sha256", "content_hash", "freeze", "settings", "seed", "val_frames")
    }
    start = time.perf_counter()
    result = fit(
        net,
        train,
        val,
        settings,
        seed,
        device,
        state_path=out_dir / STATE_FILE,
        history_path=out_dir / HISTORY_FILE,
        fingerprint=fingerprint,
        description=f"fine-tune {base_path.name} ({freeze} frozen)",
        reporter=reporter,
    )
    net.load_state_dict(result.best_state)
    seconds = sum(float(r["seconds"]) for r in result.history)
    best_row = next(r for r in result.history if r["epoch"] == result.best_epoch)
    base = {
        "path": str(base_path.resolve()),
        "file": base_path.name,
        "sha256": base_sha,
        "source": base_meta.source,
        "kind": base_meta.kind,
        "dataset_spec_hash": base_meta.dataset_spec_hash,
        "pixel_scale_nm": trained.pixel_scale_nm,
        "dose_e_per_A2": trained.dose_e_per_A2,
    }
    meta = CheckpointMeta(
        kind="finetune",
        seed=seed,
        settings=settings.fingerprint(),
        freeze=frozen,
        base_model=base,
        frames=prepared.frames,
        frames_role={
            "train": [f["image"] for f in prepared.frames[:n_train]],
            "val": [f["image"] for f in prepared.frames[n_train:]],
        },
        dataset=TrainedDataset.model_validate(
            {
                "path": str(data_path.resolve()),
                "name": "finetune",
                **info,
                "patch_size": list(prepared.images.shape[1:]),
            }
        ),
        dataset_spec=StoredSpec.from_stored(spec),
        dataset_spec_hash=info["spec_hash"],
        best_epoch=result.best_epoch,
        best_val_loss=result.best_val_loss,
        train_loss_at_best=best_row["loss"],
        trained_with=result.speed,
        training_statistics=checkpoint_statistics(data_path),
    )
    from temshift.models.unet import UNet

    plain = UNet.from_config(net.config)  # ordinary BatchNorms: the checkpoint is a normal U-Net
    plain.load_state_dict(net.state_dict())
    save_checkpoint(out_dir / MODEL_FILE, plain, meta)
    summary = {
        "base_model": base,
        "freeze": freeze,
        "n_frames": n_train,
        "n_patches": int(len(train_idx)),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "best_loss": result.best_val_loss,
        "seconds": round(seconds, 1),
        "zoom": [f["zoom"] for f in prepared.frames],
        "wall_seconds_this_session": round(time.perf_counter() - start, 1),
        "identity": identity,
    }
    from temshift.io.atomic import atomic_write_text

    atomic_write_text(out_dir / RESULT_FILE, json.dumps(summary, indent=2))
    (out_dir / STATE_FILE).unlink(missing_ok=True)
    return FinetuneResult.read(out_dir)
