"""Typed record of a checkpoint's metadata: what training wrote, what prediction reads.

A checkpoint stores the metadata as JSON (payload key ``meta``, beside ``architecture``
and ``config``); :meth:`CheckpointMeta.from_payload` builds the record on load, also from
checkpoints written before the record existed, and :meth:`CheckpointMeta.to_stored` gives
the JSON back under the same keys. Keys the record does not name are kept as extras.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from temshift.datasets.records import StoredSpec, TrainingStatistics
from temshift.datasets.statistics import STATS_VERSION

__all__ = ["DEFAULT_ARCHITECTURE", "CheckpointMeta", "TrainedDataset"]

DEFAULT_ARCHITECTURE = "unet"
"""Architecture of checkpoints that do not name one (all written before the registry)."""


class _Record(BaseModel):
    # NaN and infinities stay themselves in the JSON (as json.dumps wrote them before the records)
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="allow", ser_json_inf_nan="constants")


class TrainedDataset(_Record):
    """The training dataset a checkpoint names (meta key ``dataset``).

    Attributes
    ----------
    path : str or None
        Dataset file at training time (may no longer exist).
    name : str or None
        Dataset name.
    spec_hash, content_hash : str or None
        Hash of its spec and SHA-256 of its patches and labels.
    n_patches : int or None
        Patches in the file.
    patch_size_px : tuple of int or None
        Patch height and width, pixels (stored as ``patch_size``).
    """

    path: str | None = None
    name: str | None = None
    spec_hash: str | None = None
    content_hash: str | None = None
    n_patches: int | None = None
    patch_size_px: tuple[int, ...] | None = Field(None, alias="patch_size")

    @field_validator("patch_size_px", mode="before")
    @classmethod
    def _square(cls, value: object) -> object:
        return (value, value) if isinstance(value, int) else value


class CheckpointMeta(_Record):
    """Metadata of a temshift checkpoint or of released weights.

    Attributes
    ----------
    source : {"temshift", "published"}
        Who trained the weights.
    architecture : str
        Registered architecture name (:mod:`temshift.models.architectures`); ``"unet"`` for
        checkpoints that do not name one.
    config : dict
        The architecture's config (for ``"unet"``: a :class:`ModelConfig` dict).
    kind : str or None
        Training that wrote it: ``"fold"``, ``"segmenter"``, ``"finetune"``, ``"generalist"``.
    file : str or None
        File name of released weights.
    fold, n_folds, seed : int or None
        Cross-validation fold, number of folds, training seed.
    val_fraction : float or None
        Validation share of the non-test patches.
    settings : dict or None
        Training settings fingerprint (``TrainSettings.fingerprint()``).
    dataset : TrainedDataset or None
        The training dataset.
    dataset_spec : StoredSpec or None
        The training dataset's spec (preprocessing, pixel scale, dose); None when unknown.
    dataset_spec_hash : str or None
        Hash of that spec.
    split : dict or None
        Patches per split (``train``, ``val``, ``test``).
    best_epoch : int or None
        Epoch of the kept weights.
    best_val_loss, train_loss_at_best : float or None
        Validation and training loss at that epoch (cross-entropy, nats).
    trained_with : dict or None
        Device and speed settings used.
    training_statistics : TrainingStatistics or None
        Statistics of the training data (None: absent, or of other definitions).
    pretrain : dict or None
        Generalist models: the pretraining record (recipe, parameter ranges, tasks).
    freeze, base_model, frames, frames_role : dict, list or None
        Fine-tuned models: what was frozen, the base model (file, sha256, scale, dose), the
        labelled frames and which of them trained or validated.
    """

    source: Literal["temshift", "published"] = "temshift"
    architecture: str = DEFAULT_ARCHITECTURE
    config: dict[str, Any] = Field(default_factory=dict)
    kind: str | None = None
    file: str | None = None
    fold: int | None = None
    n_folds: int | None = None
    seed: int | None = None
    val_fraction: float | None = None
    settings: dict[str, Any] | None = None
    dataset: TrainedDataset | None = None
    dataset_spec: StoredSpec | None = None
    dataset_spec_hash: str | None = None
    split: dict[str, int] | None = None
    best_epoch: int | None = None
    best_val_loss: float | None = None
    train_loss_at_best: float | None = None
    trained_with: dict[str, Any] | None = None
    training_statistics: TrainingStatistics | None = None
    pretrain: dict[str, Any] | None = None
    freeze: dict[str, Any] | None = None
    base_model: dict[str, Any] | None = None
    frames: list[dict[str, Any]] | None = None
    frames_role: dict[str, list[str]] | None = None

    @field_validator("training_statistics", mode="before")
    @classmethod
    def _current_statistics(cls, value: object) -> object:
        # statistics of other definitions are dropped: the reader measures the dataset again
        if isinstance(value, TrainingStatistics):
            return value
        return TrainingStatistics.from_stored(value, STATS_VERSION)

    @classmethod
    def from_payload(
        cls, meta: dict[str, Any] | None, *, config: dict[str, Any], architecture: str | None = None
    ) -> CheckpointMeta:
        """Record of a checkpoint payload's ``meta`` with its architecture and config.

        Raises
        ------
        ValueError
            A field of the wrong type (the message names it).
        """
        data = {**(meta or {}), "config": dict(config), "architecture": architecture or DEFAULT_ARCHITECTURE}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ())) or "meta"
            raise ValueError(f"checkpoint meta {where}: {err.get('msg', 'invalid')}") from None

    def to_stored(self) -> dict[str, Any]:
        """The JSON stored as payload ``meta`` (architecture and config are stored beside it)."""
        out: dict[str, Any] = self.model_dump(
            mode="json", by_alias=True, exclude_unset=True, exclude={"config", "architecture"}
        )
        return out
