"""Typed records of what a dataset file stores and what is measured on it.

Dataset files and checkpoints store these as JSON (HDF5 attributes, checkpoint meta); the
records are built from that JSON on load (:meth:`StoredSpec.from_stored`,
:meth:`DatasetAttrs.from_attrs`, :meth:`TrainingStatistics.from_stored`) and written back
with the same keys (``to_stored``), so files written before the records existed still load.
Fields carry their units in their names; the stored key is the alias where it differs
(``patch_size`` -> ``patch_size_px``, ``tile`` -> ``tile_px``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from temshift.preprocess import PreprocessSettings

__all__ = ["DatasetAttrs", "FringePeak", "SpreadStats", "StoredSpec", "TrainingStatistics", "positive_or_none"]


def positive_or_none(value: object) -> float | None:
    """`value` as a finite positive float, else None (NaN, 0, negative, text, None)."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _number_or_none(value: object) -> float | None:
    """A stored median: NaN (unknown) becomes None; a query condition or text is an error."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _first_error(exc: ValidationError) -> str:
    """One line from a pydantic error: the field path and the message of the first error."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "value"
    return f"{where}: {err.get('msg', 'invalid')}"


class _Record(BaseModel):
    """Frozen record read from stored JSON and written back under the stored key names."""

    # NaN and infinities stay themselves in the JSON (as json.dumps wrote them before the records)
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="allow", ser_json_inf_nan="constants")

    def to_stored(self) -> dict[str, Any]:
        """JSON-ready dict with the stored key names (fields never set are left out)."""
        out: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return out


class StoredSpec(_Record):
    """A dataset spec as stored in a dataset file (attribute ``spec``) and in checkpoints.

    The fields of :class:`temshift.datasets.DatasetSpec` plus what the build measured; every
    field is optional because published pairs and fine-tuning data store fewer. Other keys
    (``imported_from``, ``frames``, ...) are kept as extras.

    Attributes
    ----------
    name : str or None
        Dataset name.
    source : str or None
        ``"published"`` for a published pair.
    where : dict
        Catalog conditions in their JSON form (a tolerance is ``{"value": v, "tol": t}``).
    preprocess : PreprocessSettings or None
        Per-frame preprocessing (None: not recorded).
    patch_size_px : int or None
        Patch side, pixels (stored as ``patch_size``).
    seed : int or None
        Frame shuffle seed.
    min_particle_pixels : float or None
        Patch filter threshold, pixels.
    pixel_scale_nm : float or None
        Median pixel scale of the frames, nm/pixel (None when unknown; NaN is read as None).
    dose_e_per_A2 : float or None
        Median dose of the frames, e/A^2 (None when unknown).
    n_frames : int or None
        Source frames.
    spec_hash : str or None
        :meth:`DatasetSpec.hash` of the spec.
    """

    name: str | None = None
    source: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    preprocess: PreprocessSettings | None = None
    patch_size_px: int | None = Field(None, alias="patch_size")
    seed: int | None = None
    min_particle_pixels: float | None = None
    pixel_scale_nm: float | None = None
    dose_e_per_A2: float | None = None
    n_frames: int | None = None
    spec_hash: str | None = None

    @field_validator("pixel_scale_nm", "dose_e_per_A2", mode="before")
    @classmethod
    def _unknown_is_none(cls, value: object) -> float | None:
        return _number_or_none(value)

    @classmethod
    def from_stored(cls, value: dict[str, Any] | str | None) -> StoredSpec:
        """Record of a stored spec (a dict or its JSON text; None or empty gives an empty record).

        Raises
        ------
        ValueError
            Not JSON, not an object, or a field of the wrong type (the message names the field).
        """
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ValueError(f"dataset spec must be an object, got {type(value).__name__}")
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"dataset spec {_first_error(exc)}") from None


class DatasetAttrs(_Record):
    """The attributes of a temshift dataset file (see ``temshift.datasets.store.ATTRS``).

    Attributes
    ----------
    format : str or None
        ``"temshift-dataset"`` (``"published-pair"`` for a pair read in place).
    format_version : int or None
        File format version.
    name : str or None
        Dataset name.
    spec : StoredSpec
        The spec (stored as JSON text).
    spec_hash, content_hash : str or None
        Hash of the spec and SHA-256 of the patches and labels.
    preprocess : PreprocessSettings or None
        Preprocessing (stored as JSON text).
    temshift_version : str or None
        Version that wrote the file.
    pixel_scale_nm : float or None
        Median pixel scale, nm/pixel (NaN stored when unknown; read as None).
    dose_e_per_A2 : float or None
        Median dose, e/A^2.
    n_frames : int or None
        Source frames.
    patch_size_px : int or None
        Patch side, pixels (stored as ``patch_size``).
    seed : int or None
        Frame shuffle seed.
    catalog : str or None
        Catalog the frames were selected from.
    created : str or None
        ISO 8601 UTC time of writing.
    """

    format: str | None = None
    format_version: int | None = None
    name: str | None = None
    spec: StoredSpec = Field(default_factory=lambda: StoredSpec.model_validate({}))
    spec_hash: str | None = None
    content_hash: str | None = None
    preprocess: PreprocessSettings | None = None
    temshift_version: str | None = None
    pixel_scale_nm: float | None = None
    dose_e_per_A2: float | None = None
    n_frames: int | None = None
    patch_size_px: int | None = Field(None, alias="patch_size")
    seed: int | None = None
    catalog: str | None = None
    created: str | None = None

    @field_validator("pixel_scale_nm", "dose_e_per_A2", mode="before")
    @classmethod
    def _unknown_is_none(cls, value: object) -> float | None:
        return _number_or_none(value)

    @field_validator("spec", mode="before")
    @classmethod
    def _spec_json(cls, value: object) -> object:
        return StoredSpec.from_stored(value) if isinstance(value, (str, type(None))) else value

    @field_validator("preprocess", mode="before")
    @classmethod
    def _preprocess_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> DatasetAttrs:
        """Record of a file's attributes (numpy scalars and bytes already converted).

        Raises
        ------
        ValueError
            An attribute of the wrong type or invalid JSON (the message names the attribute).
        """
        try:
            return cls.model_validate(attrs)
        except ValidationError as exc:
            raise ValueError(f"attribute {_first_error(exc)}") from None
        except json.JSONDecodeError:
            raise ValueError("attribute 'preprocess' is not valid JSON") from None


class SpreadStats(_Record):
    """Distribution of a per-frame statistic over the training frames (its own units).

    Attributes
    ----------
    median, spread, min, max : float
        Median, robust SD (1.4826 MAD), smallest and largest value.
    n : int
        Frames with a finite value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    median: float
    spread: float
    min: float
    max: float
    n: int


class FringePeak(_Record):
    """A peak of a fringe profile.

    Attributes
    ----------
    period_px : float
        Fringe period, model-input pixels.
    prominence : float
        Peak height over the background spectrum (ratio, >= 1.5).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    period_px: float
    prominence: float


class TrainingStatistics(_Record):
    """Statistics of a training dataset (:func:`temshift.datasets.training_statistics`).

    Checkpoints carry them (meta key ``training_statistics``) for the shift warnings.

    Attributes
    ----------
    version : int
        ``temshift.datasets.statistics.STATS_VERSION`` of the definitions.
    tile_px : int
        Tile (patch) edge the statistics were measured on, pixels (stored as ``tile``).
    pixel_scale_nm : float or None
        Training pixel scale, nm/pixel.
    dose_e_per_A2 : float or None
        Training dose, e/A^2.
    fringe_peaks : tuple of FringePeak
        Peaks of the mean fringe profile of all measured patches, strongest first.
    fringe_period_px : SpreadStats or None
        Strongest fringe period per frame, pixels (None: no frame had fringes).
    snr, median, contrast : SpreadStats or None
        Background SNR, median after preprocessing, particle contrast per frame.
    n_frames, n_patches : int
        Frames and patches measured.
    dataset : str
        Dataset file measured.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    version: int
    tile_px: int = Field(alias="tile")
    pixel_scale_nm: float | None = None
    dose_e_per_A2: float | None = None
    fringe_peaks: tuple[FringePeak, ...] = ()
    fringe_period_px: SpreadStats | None = None
    snr: SpreadStats | None = None
    median: SpreadStats | None = None
    contrast: SpreadStats | None = None
    n_frames: int
    n_patches: int
    dataset: str

    @classmethod
    def from_stored(cls, value: object, version: int) -> TrainingStatistics | None:
        """Record of stored statistics; None when absent, of another `version` or malformed
        (the caller then measures the dataset again)."""
        if not isinstance(value, dict) or value.get("version") != version:
            return None
        try:
            return cls.model_validate(value)
        except ValidationError:
            return None
