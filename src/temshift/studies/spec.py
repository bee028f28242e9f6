"""Study specification: a TOML file validated with pydantic.

A study names its data (a synthetic repository by default, or a real one with its
catalog), its datasets (a catalog filter plus preprocessing), its experiments (which
models are tested on which datasets, with which training variants) and the scale it
runs at. Unknown keys are refused with a message naming the key.

Example
-------
::

    name = "dose"
    scale = "quick"

    [datasets.d80]
    label = "80 e/A2"
    where = { material = "Au", diameter_nm = 5, pixel_scale_nm = 0.02, dose_e_per_A2 = "80±5" }

    [experiments.dose]
    train = ["d80", "d423", "d884"]
    finding = "dose"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    ValidationError,
    field_validator,
    model_validator,
)

from temshift.errors import SpecError
from temshift.preprocess.pipeline import PreprocessSettings

SCALES = ("ci", "quick", "paper")
FINDINGS = ("dose", "flatfield", "magnification", "noise", "rescaling", "size", "material")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Labeling(_Strict):
    """Modelled hand labels of a synthetic repository (`temshift.simulate.labels.LabelingModel`).

    Off by default: the labels are the exact particle footprints. On, every frame of the
    repository (training and test alike: real test sets are hand labelled too) is labelled
    as an annotator would: particles below the Rose visibility threshold missed, outlines
    moved by `boundary_offset_nm` plus a smooth error of rms `boundary_jitter_nm`.

    Attributes
    ----------
    enabled : bool
        Use modelled hand labels (False: exact labels; the other keys are then ignored).
    rose_threshold : float
        Rose criterion ``C sqrt(N) >= k``: the k below which a particle is missed (dimensionless).
    boundary_offset_nm : float
        Mean signed outline offset, nm (positive: drawn outside the footprint).
    boundary_jitter_nm : float
        Rms of the smooth outline displacement, nm.
    """

    enabled: bool = False
    rose_threshold: float = Field(default=5.0, ge=0, allow_inf_nan=False)
    boundary_offset_nm: float = Field(default=0.0, allow_inf_nan=False)
    boundary_jitter_nm: float = Field(default=0.0, ge=0, allow_inf_nan=False)

    def simulation_options(self) -> dict[str, Any] | None:
        """The `simulate_repository(labeling=...)` options, None for exact labels."""
        return self.model_dump() if self.enabled else None

    def describe(self) -> str:
        """One line saying which labels a study uses."""
        if not self.enabled:
            return "exact labels (the simulated particle footprints)"
        return (
            f"modelled hand labels for training and test (Rose threshold {self.rose_threshold:g}, "
            f"outline offset {self.boundary_offset_nm:g} nm, jitter {self.boundary_jitter_nm:g} nm rms)"
        )


class Specimen(_Strict):
    """Specimen conditions of every frame of a synthetic repository, instead of the simulator's draws.

    Unset fields keep the draws (`temshift.simulate.repository.specimen_options`).

    Attributes
    ----------
    support_thickness_A : float, optional
        Support film thickness, A (default: drawn around the film's mean, 3 nm for ultrathin carbon).
    cluster_fraction : float, optional
        Probability (0-1) that a particle is placed touching an earlier one (default 0.4).
    illumination_scale : float, optional
        Strength of the beam fall-off and gain-reference error (1 = as drawn, 0 = flat).
    """

    support_thickness_A: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    cluster_fraction: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    illumination_scale: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    def simulation_options(self) -> dict[str, float] | None:
        """The `simulate_repository(specimen=...)` options, None when every draw is kept."""
        options = self.model_dump(exclude_none=True)
        return options or None

    def describe(self) -> str:
        """One line saying which specimen conditions a study sets."""
        options = self.simulation_options()
        if options is None:
            return "the simulator's specimen draws"
        return ", ".join(f"{k} = {v:g}" for k, v in options.items())


class Repository(_Strict):
    """Where raw frames come from.

    `source = "synthetic"` simulates the frames each dataset needs on first use
    (cached under `cache`, default the study directory); any other value is the root
    of a real repository in the published layout, read with `catalog`
    (default ``<source>/catalog.csv``). `mode`, `frame_size` and `frames_per_group`
    override the scale's simulation settings; `labeling` (see `Labeling`) asks the
    synthetic repository for modelled hand labels instead of exact ones, and `specimen`
    (see `Specimen`) sets its specimen conditions (e.g. the film thickness).
    """

    source: str = "synthetic"
    catalog: str | None = None
    cache: str | None = None
    seed: int = 0
    mode: Literal["multislice", "projection"] | None = None
    frame_size: int | None = Field(default=None, gt=0)
    frames_per_group: int | None = Field(default=None, gt=0)
    labeling: Labeling = Labeling()
    specimen: Specimen = Specimen()

    @model_validator(mode="after")
    def _labeling_ok(self) -> Repository:
        if self.labeling.enabled and not self.synthetic:
            raise ValueError("labeling: modelled hand labels are for a synthetic repository only")
        if self.specimen.simulation_options() is not None and not self.synthetic:
            raise ValueError("specimen: specimen conditions are for a synthetic repository only")
        return self

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"


def _legacy_nulls(value: Any) -> Any:
    """Study folders written before preprocessing reused `PreprocessSettings` stored unwritten
    keys as null (``flatfield: null``): drop them, so that their ``spec.json`` still loads."""
    if isinstance(value, dict) and any(v is None for k, v in value.items() if k != "xray_threshold"):
        return {k: v for k, v in value.items() if v is not None}
    return value


def _written(value: PreprocessSettings, info: SerializationInfo) -> dict[str, Any]:
    # only the keys the spec wrote: the dump of a spec layers like the spec itself
    return value.model_dump(mode=info.mode, exclude_unset=True)


#: Preprocessing in a spec: `PreprocessSettings` itself (same keys, checks and meaning; TOML
#: writes ``xray_threshold = false`` for None); the keys a spec writes override the layer below.
PreprocessLayer = Annotated[PreprocessSettings, BeforeValidator(_legacy_nulls), PlainSerializer(_written)]


def layered(*layers: PreprocessSettings) -> PreprocessSettings:
    """The settings of `layers`, each layer's written keys over the ones before (unwritten: the default)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer.model_dump(exclude_unset=True))
    return PreprocessSettings(**merged)


WhereValue = float | int | str | bool | list[float | int | str] | dict[str, float]


class DatasetDef(_Strict):
    """A named dataset: a catalog filter and preprocessing.

    `where` values: a number or string (exact), ``"423±20"`` (tolerance), a list of
    alternatives, or ``{ value = 423, tol = 20 }``.
    """

    label: str | None = None
    where: dict[str, WhereValue]
    preprocess: PreprocessLayer = PreprocessSettings()
    patch_size: int | None = Field(default=None, gt=0)

    @field_validator("where")
    @classmethod
    def _where_ok(cls, where: dict[str, WhereValue]) -> dict[str, WhereValue]:
        if not where:
            raise ValueError("needs at least one condition")
        for key, value in where.items():
            if isinstance(value, dict) and set(value) != {"value", "tol"}:
                raise ValueError(f"condition {key!r}: a table must have exactly 'value' and 'tol'")
        return where

    def query(self) -> dict[str, Any]:
        """The filter as `Catalog.query` keyword arguments."""
        from temshift.catalog import parse_condition

        out: dict[str, Any] = {}
        for key, value in self.where.items():
            if isinstance(value, dict):
                out[key] = (value["value"], value["tol"])
            elif isinstance(value, str):
                out[key] = parse_condition(f"{key}={value}")[1]
            else:
                out[key] = value
        return out


class Variant(_Strict):
    """A training variant: a name and overrides of the training settings."""

    name: str
    training: dict[str, Any] = {}


class Grid(_Strict):
    """Variants generated from one training setting over a list of values."""

    param: str
    values: list[float] = Field(min_length=1)


class Experiment(_Strict):
    """Which models are trained and on which datasets they are tested.

    Every dataset in `train` gets 5-fold models (one per fold of the scale) for each
    variant; each model is tested on every dataset of `test` (default: `train`), or only
    on its own dataset with ``pairs = "diagonal"``. `extra_models` names shipped models
    (``"generalist"``, resolved by `temshift.models.pretrained`) that are scored on every
    dataset of the experiment through the prediction path and shown as extra matrix rows
    (matrix experiments only).
    """

    kind: Literal["matrix", "rescaling", "noise"] = "matrix"
    title: str | None = None
    train: list[str] = Field(min_length=1)
    test: list[str] | None = None
    pairs: Literal["all", "diagonal"] = "all"
    variants: list[Variant] = []
    grid: Grid | None = None
    reference: list[str] = []
    finding: Literal[FINDINGS] | None = None  # type: ignore[valid-type]
    normalize_by_diagonal: bool = False
    labels: dict[str, str] = {}
    order: Literal["difficulty", "spec"] = "difficulty"
    extra_models: list[str] = []

    @model_validator(mode="after")
    def _variants_ok(self) -> Experiment:
        if self.variants and self.grid:
            raise ValueError("give either 'variants' or 'grid', not both")
        names = [v.name for v in self.variants]
        if self.extra_models and self.kind != "matrix":
            raise ValueError("'extra_models' is for matrix experiments only")
        if self.extra_models and "extra" in names:
            raise ValueError("the variant name 'extra' is taken by the extra_models rows")
        if len(set(self.extra_models)) != len(self.extra_models):
            raise ValueError("extra_models must be unique")
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        return self

    @property
    def test_sets(self) -> list[str]:
        return list(self.test) if self.test is not None else list(self.train)

    @property
    def all_sets(self) -> list[str]:
        """Every dataset the experiment trains or tests on, in spec order."""
        return list(dict.fromkeys(self.train + self.test_sets))


class StudySpec(_Strict):
    """A whole study (see the module docstring for the TOML layout)."""

    name: str
    description: str = ""
    scale: Literal[SCALES] = "quick"  # type: ignore[valid-type]
    include: list[str] = []
    repository: Repository = Repository()
    preprocess: PreprocessLayer = PreprocessSettings()
    datasets: dict[str, DatasetDef] = {}
    experiments: dict[str, Experiment] = {}
    training: dict[str, Any] = {}
    folds: list[int] | None = None

    @field_validator("folds")
    @classmethod
    def _folds_ok(cls, folds: list[int] | None) -> list[int] | None:
        if folds is not None and (not folds or any(f < 0 or f > 4 for f in folds) or len(set(folds)) != len(folds)):
            raise ValueError("folds are distinct integers in 0..4")
        return folds

    @model_validator(mode="after")
    def _references_ok(self) -> StudySpec:
        if not self.experiments and not self.include:
            raise ValueError("a study needs at least one experiment (or an 'include')")
        for ename, exp in self.experiments.items():
            for field in ("train", "test", "reference"):
                for ds in getattr(exp, field) or []:
                    if ds not in self.datasets and not self.include:
                        raise ValueError(f"experiments.{ename}.{field}: unknown dataset {ds!r}")
        return self

    @property
    def experiment_order(self) -> list[str]:
        return list(self.experiments)


def with_extra_models(spec: StudySpec, names: list[str]) -> StudySpec:
    """`spec` with `names` added to the `extra_models` of every matrix experiment."""
    if not names:
        return spec
    data = spec.model_dump()
    for exp in data["experiments"].values():
        if exp["kind"] == "matrix":
            exp["extra_models"] = list(dict.fromkeys([*exp["extra_models"], *names]))
    return _validate(data, f"study {spec.name!r} with extra models")


def _with_repository_table(
    spec: StudySpec, section: str, options: list[str], fields: Iterable[str], **preset: Any
) -> StudySpec:
    """`spec` with ``KEY=VALUE`` `options` (and `preset` keys) over its ``repository.<section>`` table."""
    if not options:
        return spec
    data = spec.model_dump()
    table = {**data["repository"][section], **preset}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--{section} {option!r}: expected KEY=VALUE (keys: {', '.join(fields)})")
        table[key.strip()] = value.strip()
    data["repository"][section] = table
    return _validate(data, f"study {spec.name!r} with --{section}")


def with_labeling(spec: StudySpec, options: list[str]) -> StudySpec:
    """`spec` with ``KEY=VALUE`` `options` over its ``repository.labeling`` table.

    Any option turns the labelling model on unless ``enabled=false`` is among them.

    Raises
    ------
    SpecError
        For an option without ``=``, an unknown key or a bad value (the message names the key).
    """
    return _with_repository_table(spec, "labeling", options, Labeling.model_fields, enabled=True)


def with_specimen(spec: StudySpec, options: list[str]) -> StudySpec:
    """`spec` with ``KEY=VALUE`` `options` over its ``repository.specimen`` table.

    Raises
    ------
    SpecError
        For an option without ``=``, an unknown key or a bad value (the message names the key).
    """
    return _with_repository_table(spec, "specimen", options, Specimen.model_fields)


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif str(item).startswith(("function-", "tagged-")):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _format_error(source: str, exc: ValidationError) -> str:
    msgs = []
    for err in exc.errors():
        where = _location(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        msgs.append(f"{where}: {msg}" if where else msg)
    return f"{source}: " + "; ".join(msgs)


def preset_names() -> list[str]:
    """Names of the packaged presets."""
    folder = resources.files("temshift.studies") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _preset_text(name: str) -> str:
    ref = resources.files("temshift.studies") / "presets" / f"{name}.toml"
    return ref.read_text()


def _validate(raw: dict[str, Any], source: str) -> StudySpec:
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_error(source, exc)) from None


def parse_spec(
    text: str, source: str = "<spec>", base_dir: Path | None = None, _seen: tuple[str, ...] = ()
) -> StudySpec:
    """Validate TOML text into a StudySpec, resolving `include`.

    Included specs (preset names or paths relative to the spec) contribute their
    datasets and experiments; the including spec's scale, repository and training win.

    Raises
    ------
    SpecError
        On TOML syntax errors or invalid/unknown keys (the message names the key).
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML ({exc})") from None
    spec = _validate(raw, source)
    if not spec.include:
        return spec
    data = spec.model_dump()
    data["include"] = []
    for inc in spec.include:
        if inc in _seen:
            raise SpecError(f"{source}: include: {inc!r} includes itself")
        child = load_spec(inc, base_dir=base_dir, _seen=(*_seen, inc)).model_dump()
        for key in ("datasets", "experiments"):
            for name, value in child[key].items():
                if name in data[key] and data[key][name] != value:
                    raise SpecError(f"{source}: {key}.{name} is defined differently by include {inc!r}")
                data[key][name] = value
    return _validate(data, source)


def load_spec(
    preset_or_path: str | os.PathLike[str], base_dir: Path | None = None, _seen: tuple[str, ...] = ()
) -> StudySpec:
    """Load a packaged preset by name, or a TOML file by path."""
    text_name = str(preset_or_path)
    path = Path(text_name)
    if base_dir is not None and not path.is_absolute() and (base_dir / path).is_file():
        path = base_dir / path
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise SpecError(f"{path}: study spec file not found")
        return parse_spec(path.read_text(), source=str(path), base_dir=path.parent, _seen=_seen)
    if text_name in preset_names():
        return parse_spec(_preset_text(text_name), source=f"preset {text_name!r}", _seen=_seen)
    raise SpecError(f"{text_name!r} is neither a spec file nor a preset (presets: {', '.join(preset_names())})")
