"""temshift checkpoints: state dict + architecture name and config + metadata, read with `weights_only`.

A checkpoint is a torch file holding ``{"format": "temshift.checkpoint", "version": 2,
"architecture": name, "config": architecture config dict, "state_dict": ..., "meta": {...}}``.
The meta is a :class:`~temshift.models.records.CheckpointMeta` as JSON: what downstream
tools need, i.e. the training dataset's spec (preprocessing settings, ``pixel_scale_nm``,
``dose_e_per_A2``), its hash, the training settings, fold, seed and training statistics.
Version 1 files (no ``architecture``: a residual U-Net) load the same way.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temshift.errors import CheckpointError
from temshift.models.records import CheckpointMeta

if TYPE_CHECKING:
    from torch import nn

FORMAT = "temshift.checkpoint"
VERSION = 2
"""Checkpoint format version: 2 names the architecture; 1 (a residual U-Net) still loads."""


def save_checkpoint(path: str | PathLike[str], model: nn.Module, meta: CheckpointMeta | None = None) -> Path:
    """Write `model` (of a registered architecture) and `meta` atomically to `path`.

    Parameters
    ----------
    path : str or Path
        Destination, conventionally ``*.pt``.
    model : torch.nn.Module
        Model of an architecture in :mod:`temshift.models.architectures`; its state dict
        (tensors moved to CPU), architecture name and config are saved.
    meta : CheckpointMeta, optional
        Metadata (its ``architecture`` and ``config`` are taken from `model`).
    """
    import torch

    from temshift.io.atomic import atomic_path
    from temshift.models.architectures import architecture_of

    arch = architecture_of(model)
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    stored = json.loads(json.dumps((meta or CheckpointMeta()).to_stored(), default=_jsonable))
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": arch.name,
        "config": arch.config_of(model),
        "state_dict": state,
        "meta": stored,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _first_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg[:200]


def read_checkpoint_payload(path: str | PathLike[str]) -> dict[str, Any]:
    """Read a temshift checkpoint's raw payload safely (``weights_only=True``).

    Raises
    ------
    CheckpointError
        Missing, truncated, unreadable, or not a temshift checkpoint.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        AttributeError,
    ) as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({_first_line(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a temshift checkpoint")
    version = payload.get("version", 1)
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this temshift "
            f"reads ({VERSION}); update temshift"
        )
    return payload


def checkpoint_meta(path: str | PathLike[str], payload: dict[str, Any]) -> CheckpointMeta:
    """The metadata record of a checkpoint payload (version 1 files: a ``"unet"``).

    Raises
    ------
    CheckpointError
        A metadata field of the wrong type (named).
    """
    config = payload.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: checkpoint has no model config")
    try:
        return CheckpointMeta.from_payload(payload.get("meta"), config=config, architecture=payload.get("architecture"))
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def load_checkpoint(path: str | PathLike[str]) -> tuple[nn.Module, CheckpointMeta]:
    """Load a temshift checkpoint.

    Returns
    -------
    model : torch.nn.Module
        Of the stored architecture, in eval mode, on CPU.
    meta : CheckpointMeta
        The saved metadata with the architecture name and config.

    Raises
    ------
    CheckpointError
        Unreadable file, invalid metadata, unknown architecture, or weights that do not fit.
    """
    from temshift.models.architectures import get_architecture

    payload = read_checkpoint_payload(path)
    meta = checkpoint_meta(path, payload)
    try:
        arch = get_architecture(meta.architecture)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        model = arch.build(meta.config)
        model.load_state_dict(payload["state_dict"], strict=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(
            f"{path}: checkpoint does not fit the {arch.name} architecture ({_first_line(exc)})"
        ) from None
    return model.eval(), meta


def _is_temshift(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
            return bool(pkl) and FORMAT.encode() in zf.read(pkl[0])
    except (zipfile.BadZipFile, OSError):
        return False


def load_model(path: str | PathLike[str]) -> tuple[nn.Module, CheckpointMeta]:
    """Load a temshift checkpoint or the authors' released weights.

    Parameters
    ----------
    path : str or Path
        A temshift ``*.pt`` checkpoint or a released ``*_model.h5`` pickled module.

    Returns
    -------
    model : torch.nn.Module
        Eval mode, CPU.
    meta : CheckpointMeta
        Architecture and config, ``dataset_spec`` (the training dataset's spec: preprocessing,
        ``pixel_scale_nm``, ``dose_e_per_A2``; None for released weights), ``source``
        (``"temshift"`` or ``"published"``) and training details when known.

    Raises
    ------
    CheckpointError
        Missing, corrupt or unsafe file.
    """
    from temshift.models.published import load_published

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    if _is_temshift(path):
        return load_checkpoint(path)
    model = load_published(path)
    return model, published_meta(path, model.config.model_dump())


def published_meta(path: str | PathLike[str], config: dict[str, Any]) -> CheckpointMeta:
    """Metadata of released weights: file name, fold and seed from the name, no dataset spec."""
    from temshift.models.published import published_name_info

    path = Path(path)
    # fold and seed only when the name has them (as stored before the record)
    return CheckpointMeta.model_validate(
        {"source": "published", "file": path.name, "config": config, "dataset_spec": None, **published_name_info(path)}
    )


def model_files(path: str | PathLike[str]) -> list[Path]:
    """Model files behind a path: the file itself, ``DIR/model.pt``, or every ``model.pt`` below DIR (sorted).

    Raises
    ------
    CheckpointError
        No such file or folder, or a folder without any ``model.pt``.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        if (path / "model.pt").is_file():
            return [path / "model.pt"]
        found = sorted(path.rglob("model.pt"))
        if found:
            return found
        raise CheckpointError(f"{path}: no model.pt in this run directory or below it")
    raise CheckpointError(f"{path}: no such model file or run directory")
