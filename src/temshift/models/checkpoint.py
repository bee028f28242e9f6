"""temshift checkpoints: state dict + model config + metadata, read with `weights_only`.

A checkpoint is a torch file holding ``{"format": "temshift.checkpoint", "version": 1,
"config": ModelConfig dict, "state_dict": ..., "meta": {...}}``. The meta dict carries
what downstream tools need: the training dataset's spec (preprocessing settings,
``pixel_scale_nm``, ``dose_e_per_A2``), its hash, the training settings, fold and seed.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

from temshift.errors import CheckpointError

FORMAT = "temshift.checkpoint"
VERSION = 1


def save_checkpoint(path, model, meta: dict | None = None) -> Path:
    """Write `model` (a temshift `UNet`) and `meta` atomically to `path`.

    Parameters
    ----------
    path : str or Path
        Destination, conventionally ``*.pt``.
    model : UNet
        Model whose state dict and config are saved (tensors moved to CPU).
    meta : dict, optional
        JSON-like metadata (str, int, float, bool, None, lists, dicts).
    """
    import json

    import torch

    from temshift.io.atomic import atomic_path

    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "config": model.config.model_dump(),
               "state_dict": state, "meta": json.loads(json.dumps(meta or {}, default=_jsonable))}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read_checkpoint_payload(path) -> dict:
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
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError,
            AttributeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({msg[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a temshift checkpoint")
    return payload


def load_checkpoint(path):
    """Load a temshift checkpoint.

    Returns
    -------
    model : UNet
        In eval mode, on CPU.
    meta : dict
        The saved metadata plus ``"config"`` (the model config dict).
    """
    from temshift.models.unet import UNet

    payload = read_checkpoint_payload(path)
    try:
        model = UNet.from_config(payload["config"])
        model.load_state_dict(payload["state_dict"], strict=True)
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: checkpoint does not fit the residual U-Net ({msg[:200]})") from None
    meta = dict(payload.get("meta") or {})
    meta["config"] = dict(payload["config"])
    return model.eval(), meta


def _is_temshift(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
            return bool(pkl) and FORMAT.encode() in zf.read(pkl[0])
    except (zipfile.BadZipFile, OSError):
        return False


def load_model(path):
    """Load a temshift checkpoint or the authors' released weights.

    Parameters
    ----------
    path : str or Path
        A temshift ``*.pt`` checkpoint or a released ``*_model.h5`` pickled module.

    Returns
    -------
    model : UNet
        Eval mode, CPU.
    meta : dict
        ``config`` (model config dict), ``dataset_spec`` (training dataset spec dict, incl.
        preprocessing, ``pixel_scale_nm``, ``dose_e_per_A2``; None for released weights),
        ``source`` (``"temshift"`` or ``"published"``) and training details when known.

    Raises
    ------
    CheckpointError
        Missing, corrupt or unsafe file.
    """
    from temshift.models.published import load_published, published_name_info

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    if _is_temshift(path):
        model, meta = load_checkpoint(path)
        meta.setdefault("source", "temshift")
        return model, meta
    model = load_published(path)
    meta = {"source": "published", "file": path.name, "config": model.config.model_dump(),
            "dataset_spec": None, **published_name_info(path)}
    return model, meta
