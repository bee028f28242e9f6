"""Models shipped inside the package: ``temshift.models.pretrained("generalist")``.

A shipped model is ``<dir>/<name>.pt`` (a temshift checkpoint, read with ``weights_only``)
plus ``<dir>/<name>.json`` (recipe, parameter ranges, training record), as written by
`temshift pretrain` into its run folder. ``<dir>`` is ``temshift/models/weights/`` in the
installed package; the environment variable ``TEMSHIFT_PRETRAINED_DIR`` or the `folder`
argument points elsewhere (tests, a freshly trained run folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from temshift.errors import CheckpointError

#: names of the models the package can ship
NAMES = ("generalist",)
ENV_DIR = "TEMSHIFT_PRETRAINED_DIR"


def pretrained_dir(folder=None) -> Path:
    """Where shipped models are looked for: `folder`, ``$TEMSHIFT_PRETRAINED_DIR``, or the package's ``weights/``."""
    if folder is not None:
        return Path(folder).expanduser()
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent / "weights"


def is_pretrained_name(name) -> bool:
    """True for a shipped model's name ("generalist"), case-insensitive."""
    return str(name).strip().lower() in NAMES


def pretrained_path(name: str, folder=None) -> Path:
    """The checkpoint file of shipped model `name`.

    Raises
    ------
    CheckpointError
        Unknown name, or the model is not shipped in this install.
    """
    key = str(name).strip().lower()
    if key not in NAMES:
        raise CheckpointError(f"no shipped model called {name!r} (shipped models: {', '.join(NAMES)})")
    path = pretrained_dir(folder) / f"{key}.pt"
    if not path.is_file():
        raise CheckpointError(
            f"the {key} is not shipped yet ({path} is absent); train one with "
            f"`temshift pretrain --out RUN` and predict with RUN/{key}.pt"
        )
    return path


def pretrained_record(name: str, folder=None) -> dict:
    """The JSON record shipped beside the weights (recipe, ranges, training record)."""
    path = pretrained_path(name, folder).with_suffix(".json")
    from temshift.io.jsonfile import read_json_object

    return read_json_object(path, CheckpointError, "record of the shipped model")


def pretrained(name: str = "generalist", folder=None):
    """Load shipped model `name` with the safe checkpoint loader.

    Parameters
    ----------
    name : str
        "generalist".
    folder : path, optional
        Look here instead of the package (see module docstring).

    Returns
    -------
    model : UNet
        Eval mode, CPU.
    meta : CheckpointMeta
        Checkpoint meta; ``meta.pretrain`` holds the recipe, the parameter ranges
        (`PretrainRanges`), the working pixel scale and the training record.

    Raises
    ------
    CheckpointError
        Unknown name, model not shipped, or a corrupt file.
    """
    from temshift.models.checkpoint import load_checkpoint

    path = pretrained_path(name, folder)
    model, meta = load_checkpoint(path)
    if meta.pretrain is None:
        raise CheckpointError(f"{path}: not a pretrained model (its meta has no 'pretrain' record)")
    return model, meta
