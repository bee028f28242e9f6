"""What a dataset is: a name, a catalog filter, preprocessing, patch size and seed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from temshift.preprocess import PreprocessSettings, min_particle_pixels


def _to_query_value(value):
    """JSON form -> `Catalog.query` form: ``{"value": v, "tol": t}`` becomes ``(v, t)``."""
    if isinstance(value, dict) and set(value) == {"value", "tol"}:
        return (value["value"], value["tol"])
    if isinstance(value, list):
        return [_to_query_value(v) for v in value]
    return value


def _to_json_value(value):
    """`Catalog.query` form -> JSON form (a tuple would turn into a list, i.e. alternatives)."""
    if isinstance(value, tuple):
        return {"value": value[0], "tol": value[1]}
    if isinstance(value, list):
        return [_to_json_value(v) for v in value]
    return value


class DatasetSpec(BaseModel):
    """A dataset definition; everything needed to rebuild it from a catalog and raw frames.

    Attributes
    ----------
    name : str
        Dataset name (used in file names and reports).
    where : dict
        `Catalog.query` conditions: field -> value, ``(value, tol)`` or a list of values.
        Tolerances are stored in JSON as ``{"value": v, "tol": t}``.
    preprocess : PreprocessSettings
        Per-frame preprocessing.
    patch_size : int
        Patch side in pixels.
    seed : int
        Frame shuffle seed (`numpy.random.default_rng(seed).permutation`).
    min_particle_pixels : float or None
        Drop patches with this many particle pixels or fewer; None = 400 * (patch_size/512)^2.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    where: dict[str, Any] = Field(default_factory=dict)
    preprocess: PreprocessSettings = Field(default_factory=PreprocessSettings)
    patch_size: int = Field(512, ge=8)
    seed: int = 34522
    min_particle_pixels: float | None = Field(None, ge=0)

    @field_validator("where", mode="before")
    @classmethod
    def _where_from_json(cls, value):
        return {k: _to_query_value(v) for k, v in (value or {}).items()}

    @field_serializer("where")
    def _where_to_json(self, value):
        return {k: _to_json_value(v) for k, v in value.items()}

    @property
    def particle_threshold(self) -> float:
        """Effective threshold in pixels (explicit or scaled to the patch area)."""
        if self.min_particle_pixels is not None:
            return float(self.min_particle_pixels)
        return min_particle_pixels(self.patch_size)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): what `hash` digests and the HDF5 attrs store."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DatasetSpec:
        """Inverse of `to_json` (extra keys recorded alongside, e.g. medians, are ignored)."""
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.model_fields})

    def hash(self) -> str:
        """Short SHA-256 of the canonical JSON: equal specs give equal hashes."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]
