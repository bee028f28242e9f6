"""Typed records of what study tasks pass on: completion records and each kind's result.

A task callable returns its result as JSON (``XResult(...).to_stored()``); the graph
stores it in the task's ``done.json`` (:class:`TaskRecord`); downstream readers
(:mod:`temshift.studies.results`) build the records back with ``from_task``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BuildResult", "DatasetStatistics", "EvaluateResult", "SimulateResult", "TaskRecord", "TrainResult"]

R = TypeVar("R", bound="_Result")


class TaskRecord(BaseModel):
    """A task's completion record (``done.json``).

    Attributes
    ----------
    key, kind : str
        Content key and task kind.
    dir : str
        The task's output folder.
    inputs : dict
        Its hashed inputs.
    deps : dict
        Role -> key of each dependency.
    result : dict
        What the task returned (JSON; one of the ``*Result`` records below).
    seconds : float or None
        Wall time of the task, s.
    started, finished : str or None
        ISO 8601 UTC times.
    host : str or None
        Host name of the worker.
    pid : int or None
        Worker process id.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    key: str
    kind: str
    dir: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    deps: dict[str, str] = Field(default_factory=dict)
    result: dict[str, Any] = Field(default_factory=dict)
    seconds: float | None = None
    started: str | None = None
    finished: str | None = None
    host: str | None = None
    pid: int | None = None


class _Result(BaseModel):
    # NaN (e.g. a dice not recorded) stays NaN in done.json, as json.dumps writes it
    model_config = ConfigDict(frozen=True, extra="ignore", ser_json_inf_nan="constants")

    def to_stored(self) -> dict[str, Any]:
        """The JSON the task returns (stored as ``result`` in ``done.json``)."""
        out: dict[str, Any] = self.model_dump(mode="json")
        return out

    @classmethod
    def from_task(cls: type[R], record: dict[str, Any] | None) -> R | None:
        """The result of a completion record (None when the task has not finished)."""
        if record is None:
            return None
        return cls.model_validate(TaskRecord.model_validate(record).result)


class SimulateResult(_Result):
    """A simulated repository: ``frames`` simulated, ``repo`` its folder."""

    frames: int
    repo: str


class BuildResult(_Result):
    """A built dataset: ``path`` of the file, ``spec_hash`` of its spec."""

    path: str
    spec_hash: str


class TrainResult(_Result):
    """A trained fold model.

    Attributes
    ----------
    run_dir : str or None
        The run folder (``model.pt``, ``history.csv``).
    best_epoch, epochs_run : int
        Epoch of the kept weights, epochs trained.
    best_val_loss, train_loss : float
        Validation and training cross-entropy at the best epoch, nats.
    train_hard_dice, val_hard_dice : float
        Hard dice on the training batches and on validation at the best epoch (NaN when
        not recorded).
    """

    # optional: registries may swap the task for one that records less, and completion
    # records of earlier versions may lack some (read as None)
    run_dir: str | None = None
    best_epoch: int | None = None
    best_val_loss: float | None = None
    epochs_run: int | None = None
    train_hard_dice: float | None = None
    train_loss: float | None = None
    val_hard_dice: float | None = None


class EvaluateResult(_Result):
    """An evaluation: ``rows`` written to ``metrics.parquet``."""

    rows: int


class DatasetStatistics(_Result):
    """Statistics and metadata of a study dataset (``stats.json``).

    The patch statistics of :func:`temshift.studies.stats.image_statistics` are kept as
    extras under their own names (columns of ``datasets.csv``).

    Attributes
    ----------
    pixel_scale_nm : float or None
        Median pixel scale of the frames, nm/pixel.
    dose_e_per_A2 : float or None
        Median dose of the frames, e/A^2.
    frames : int or None
        Source frames of the patches.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    pixel_scale_nm: float | None = None
    dose_e_per_A2: float | None = None
    frames: int | None = None
