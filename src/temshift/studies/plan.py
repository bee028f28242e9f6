"""Resolve a study spec at a scale into content-addressed tasks.

Every task's key is a hash of its kind, its inputs and the keys of the tasks it
depends on, so a key changes exactly when anything upstream changes. Tasks shared by
several experiments (the same dataset, the same fold model) appear once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temshift.errors import SpecError
from temshift.studies.scales import Scale, get_scale, thin_grid
from temshift.studies.spec import Experiment, StudySpec, layered

KINDS = ("repo", "dataset", "stats", "train", "evaluate")
DATASET_SEED = 34522
NOISE_PARAMS = ("noise_rho", "noise_rho_max")


def content_hash(obj) -> str:
    """16 hex digits of the SHA-256 of `obj` as canonical JSON."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Task:
    """One unit of work: `kind` applied to `inputs` after the tasks in `deps`.

    Attributes
    ----------
    kind : str
        One of ``repo, dataset, stats, train, evaluate``.
    label : str
        Short human description.
    inputs : dict
        JSON-able inputs that determine the output (hashed).
    deps : dict
        Role -> key of a task this one reads the output of (hashed through the key).
    root : str
        Folder under which the task's output folder ``<kind>/<key>`` lives.
    meta : dict
        Hints that do not change the result (a dataset's first name); not hashed.
    """

    kind: str
    label: str
    inputs: dict
    deps: dict
    root: str
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}-{content_hash({'kind': self.kind, 'inputs': self.inputs, 'deps': self.deps})}"

    @property
    def out_dir(self) -> Path:
        return Path(self.root) / self.kind / self.key.split("-", 1)[1]


#: variant name of the result rows of an experiment's extra (shipped) models
EXTRA_VARIANT = "extra"


@dataclass(frozen=True)
class Cell:
    """One result row group: a fold model of `train` (variant) tested on `test`.

    For an extra model (``variant == EXTRA_VARIANT``) `train` is the model's name, `fold`
    is 0 and `train_key` is empty: the model was trained elsewhere.
    """

    experiment: str
    variant: str
    train: str
    fold: int
    test: str
    train_key: str
    eval_key: str
    split: str = "test"


@dataclass
class Plan:
    """The resolved study: tasks in dependency order and the cells they produce."""

    spec: StudySpec
    scale: Scale
    study_dir: Path
    tasks: dict = field(default_factory=dict)
    cells: list = field(default_factory=list)
    datasets: dict = field(default_factory=dict)  # name -> dataset task key
    stats: dict = field(default_factory=dict)  # name -> stats task key
    variants: dict = field(default_factory=dict)  # (experiment, variant) -> training overrides
    train_threads: int | None = None

    def add(self, task: Task) -> str:
        self.tasks.setdefault(task.key, task)
        return task.key

    def counts(self) -> dict:
        out = dict.fromkeys(KINDS, 0)
        for t in self.tasks.values():
            out[t.kind] += 1
        return out

    def estimate_s(self, workers: int = 1, skip=()) -> float:
        """Rough wall time in seconds with `workers` parallel workers, tasks in `skip` excluded."""
        total = sum(self.scale.cost_s.get(t.kind, 1.0) for k, t in self.tasks.items() if k not in skip)
        return total / max(1, workers)


def _training_settings(overrides: dict, where: str) -> dict:
    """Overrides validated by TrainSettings (when the training stage is installed)."""
    try:
        from temshift.training.settings import TrainSettings
    except ImportError:
        return dict(overrides)
    from pydantic import ValidationError

    bad = [k for k in overrides if k not in TrainSettings.model_fields]
    if bad:
        raise SpecError(f"{where}.{bad[0]}: unknown training setting")
    try:
        return TrainSettings(**overrides).fingerprint()
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise SpecError(f"{where}{'.' + loc if loc else ''}: {err['msg']}") from None


def _preprocess(spec: StudySpec, name: str) -> dict[str, Any]:
    return layered(spec.preprocess, spec.datasets[name].preprocess).model_dump(mode="json")


def _where_json(query: dict) -> dict:
    """JSON form of a query: ``(value, tol)`` pairs become ``{"value", "tol"}`` tables."""
    return {k: {"value": v[0], "tol": v[1]} if isinstance(v, tuple) else v for k, v in sorted(query.items())}


def where_from_json(where: dict) -> dict:
    """Inverse of :func:`_where_json`: `Catalog.query` keyword arguments."""
    return {k: (v["value"], v["tol"]) if isinstance(v, dict) else v for k, v in where.items()}


def _repository_task(plan: Plan, name: str, query: dict, tasks_root: str) -> tuple[dict, dict]:
    """Dependencies and inputs that identify the raw frames of dataset `name`."""
    repo = plan.spec.repository
    if not repo.synthetic:
        root = Path(repo.source).expanduser().resolve()
        catalog = Path(repo.catalog).expanduser().resolve() if repo.catalog else root / "catalog.csv"
        if not catalog.is_file():
            raise SpecError(f"repository.catalog: {catalog} not found")
        return {}, {"root": str(root), "catalog": str(catalog), "catalog_sha": content_hash(catalog.read_text())}
    from temshift.catalog import Catalog
    from temshift.errors import CatalogError

    try:
        rows = Catalog.published().query(**query)
    except CatalogError as exc:
        raise SpecError(f"datasets.{name}.where: {exc}") from None
    records = sorted(rows.records(), key=lambda r: (r["folder"], r["file"]))
    cache = str(Path(repo.cache).expanduser().resolve()) if repo.cache else tasks_root
    inputs: dict[str, Any] = {
        "rows": records,
        "frames_per_group": repo.frames_per_group or plan.scale.frames_per_group,
        "frame_size": repo.frame_size or plan.scale.frame_size,
        "mode": repo.mode or plan.scale.sim_mode,
        "seed": repo.seed,
    }
    labeling = repo.labeling.simulation_options()
    if labeling is not None:  # only then: exact-label repositories keep their keys
        inputs["labeling"] = labeling
    specimen = repo.specimen.simulation_options()
    if specimen is not None:  # likewise: repositories of the simulator's draws keep their keys
        inputs["specimen"] = specimen
    task = Task(
        kind="repo",
        label=f"simulate {len(records)} catalog rows for {name}"
        + (" (hand labels)" if labeling else "")
        + (f" ({repo.specimen.describe()})" if specimen else ""),
        inputs=inputs,
        deps={},
        root=cache,
    )
    return {"repo": plan.add(task)}, {}


def _add_dataset(plan: Plan, name: str, tasks_root: str) -> str:
    if name in plan.datasets:
        return plan.datasets[name]
    ds = plan.spec.datasets[name]
    query = ds.query()
    deps, repo_inputs = _repository_task(plan, name, query, tasks_root)
    inputs = {
        "where": _where_json(query),
        "preprocess": _preprocess(plan.spec, name),
        "patch_size": ds.patch_size or plan.scale.patch_size,
        "seed": DATASET_SEED,
        "repository": repo_inputs,
    }
    key = plan.add(Task("dataset", f"build {name}", inputs, deps, tasks_root, meta={"name": name}))
    plan.datasets[name] = key
    plan.stats[name] = plan.add(Task("stats", f"statistics of {name}", {}, {"dataset": key}, tasks_root))
    return key


def _variants(exp: Experiment, scale: Scale) -> list[tuple[str, dict]]:
    if exp.grid is not None:
        out = []
        for v in thin_grid(sorted(exp.grid.values), scale.grid_points):
            value = None if (v == 0 and exp.grid.param in NOISE_PARAMS) else v
            out.append((f"{exp.grid.param}={v:g}", {exp.grid.param: value}))
        return out
    if exp.variants:
        return [(v.name, dict(v.training)) for v in exp.variants]
    return [("base", {})]


def _extra_model(name: str, where: str) -> tuple[Path, str]:
    """Checkpoint path and SHA-256 (first 16 hex digits) of shipped model `name`."""
    from temshift.errors import CheckpointError
    from temshift.models.pretrained import pretrained_path

    try:
        path = pretrained_path(name)
    except CheckpointError as exc:
        raise SpecError(f"{where}: {exc}") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return path, digest


def _add_extra_models(plan: Plan, ename: str, exp: Experiment, ev: dict, tasks_root: str) -> None:
    """Evaluate tasks of the experiment's shipped models on each of its datasets.

    The key holds the model's name and content hash (not its path: the same weights give
    the same key wherever the package is installed); the path reaches the worker as a
    runtime hint (`Task.meta`), and the worker checks the hash.
    """
    for i, name in enumerate(exp.extra_models):
        path, digest = _extra_model(name, f"experiments.{ename}.extra_models[{i}]")
        key_name = str(name).strip().lower()
        for test in exp.all_sets:
            test_key = _add_dataset(plan, test, tasks_root)
            ds = plan.tasks[test_key]
            ekey = plan.add(
                Task(
                    "evaluate",
                    f"evaluate {key_name} on {test}",
                    {**ev, "pretrained": key_name, "model_sha256": digest, "repository": ds.inputs["repository"]},
                    {"dataset": test_key, **ds.deps},
                    tasks_root,
                    meta={"model_path": str(path)},
                )
            )
            plan.cells.append(Cell(ename, EXTRA_VARIANT, key_name, 0, test, "", ekey))


def _add_experiment(plan: Plan, ename: str, exp: Experiment, base: dict, folds: list[int], tasks_root: str) -> None:
    ev = {"dihedral": plan.scale.eval_dihedral}
    groups = [(vname, over, exp.train, exp.test_sets, exp.pairs) for vname, over in _variants(exp, plan.scale)]
    if exp.reference:
        groups.append(("reference", {}, exp.reference, exp.reference, "diagonal"))
    for gi, (vname, over, train_sets, test_sets, pairs) in enumerate(groups):
        if not over:
            where = "training"
        elif exp.grid is not None:
            where = f"experiments.{ename}.grid"
        else:
            where = f"experiments.{ename}.variants[{gi}].training"
        settings = _training_settings({**base, **over}, where)
        plan.variants[(ename, vname)] = over
        for train in train_sets:
            ds_key = _add_dataset(plan, train, tasks_root)
            for fold in folds:
                tkey = plan.add(
                    Task(
                        "train",
                        f"train {train} fold {fold} ({vname})",
                        {"fold": fold, "settings": settings, "threads": plan.train_threads},
                        {"dataset": ds_key},
                        tasks_root,
                    )
                )
                for test in [train] if pairs == "diagonal" else test_sets:
                    test_key = _add_dataset(plan, test, tasks_root)
                    ekey = plan.add(
                        Task(
                            "evaluate",
                            f"evaluate {train} f{fold} ({vname}) on {test}",
                            ev,
                            {"run": tkey, "dataset": test_key},
                            tasks_root,
                        )
                    )
                    plan.cells.append(Cell(ename, vname, train, fold, test, tkey, ekey))
                if exp.kind == "rescaling":
                    ekey = plan.add(
                        Task(
                            "evaluate",
                            f"evaluate {train} f{fold} ({vname}) on its training split",
                            {**ev, "split": "train"},
                            {"run": tkey, "dataset": ds_key},
                            tasks_root,
                        )
                    )
                    plan.cells.append(Cell(ename, vname, train, fold, train, tkey, ekey, split="train"))
    if exp.extra_models:
        _add_extra_models(plan, ename, exp, ev, tasks_root)


def resolve(spec: StudySpec, study_dir, scale: str | None = None, train_threads: int | None = None) -> Plan:
    """Resolve `spec` at `scale` (default: the spec's) into a Plan under `study_dir`.

    `train_threads` (torch threads of each training task) is part of the training tasks'
    keys: CPU float reductions, hence trained weights, depend on the thread count, so a
    study only reuses models trained with the same count (None: each worker's default).

    Raises
    ------
    SpecError
        When a dataset filter matches no catalog row or a training setting is invalid.
    """
    sc = get_scale(scale or spec.scale)
    study_dir = Path(study_dir).expanduser().resolve()
    plan = Plan(spec=spec, scale=sc, study_dir=study_dir, train_threads=train_threads)
    tasks_root = str(study_dir / "tasks")
    base = {**sc.training, **spec.training}
    _training_settings(base, "training")
    folds = spec.folds or sc.folds
    for name in spec.datasets:
        _add_dataset(plan, name, tasks_root)
    for ename, exp in spec.experiments.items():
        _add_experiment(plan, ename, exp, base, folds, tasks_root)
    return plan
