"""The realism benchmark as a task graph of the studies' kind (content-addressed tasks).

Per training set of the released models: simulate its catalog groups (``repo``), build
one flat-field-corrected, standardized 512 px dataset (``dataset``), measure it
(``stats``) and run every released model on it (``evaluate``). One more ``repo`` task
simulates paper-scale frames (4096^2, the real hand label's conditions) for ``labels``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from temshift.studies.plan import DATASET_SEED, Task, _where_json

KINDS = ("repo", "dataset", "stats", "evaluate", "labels")
PATCH_PX = 512
DEFAULT_SEED = 11
LABEL_CONDITIONS = {
    "material": "Au",
    "diameter_nm": 5,
    "pixel_scale_nm": (0.02, 0.0005),
    "dose_e_per_A2": (421, 5),
    "date": "11/09/22",
}
"""Catalog group of the real hand label (5 nm Au on UTC, 0.02 nm/px, 421 e/A2, 11/09/22)."""


@dataclass(frozen=True)
class RealismScale:
    """How much is simulated.

    ``frame_size`` / ``frames_per_group`` / ``mode``: the benchmark's datasets;
    ``label_frames`` paper-scale frames (4096^2, ``label_mode``) for the label statistics;
    ``dihedral``: count each test patch in its 8 dihedral variants (the paper's protocol;
    off at ``quick``, as in the studies' quick scale, where it would cost 8x the CPU time).
    """

    name: str
    frame_size: int
    frames_per_group: int
    mode: str
    label_frames: int
    label_mode: str
    dihedral: bool
    cost_s: dict = field(default_factory=dict)
    patch_px: int = PATCH_PX
    label_frame_size: int = 4096


SCALES = {
    "quick": RealismScale(
        "quick",
        1024,
        3,
        "multislice",
        3,
        "projection",
        False,
        {"repo": 120.0, "dataset": 3.0, "stats": 1.0, "evaluate": 4.0, "labels": 2.0},
    ),
    "paper": RealismScale(
        "paper",
        4096,
        8,
        "multislice",
        8,
        "multislice",
        True,
        {"repo": 3000.0, "dataset": 30.0, "stats": 5.0, "evaluate": 60.0, "labels": 5.0},
    ),
}


def simulator_fingerprint() -> str:
    """16 hex digits of the SHA-256 of the simulator's source (`temshift/simulate/*.py`).

    Part of every ``repo`` task's key: the benchmark exists to measure simulator changes,
    so a changed simulator re-simulates (and re-evaluates) instead of reusing old frames.
    """
    from importlib import resources

    h = hashlib.sha256()
    pkg = resources.files("temshift.simulate")
    for name in sorted(p.name for p in pkg.iterdir() if p.name.endswith(".py")):
        h.update(name.encode() + b"\0" + pkg.joinpath(name).read_bytes())
    return h.hexdigest()[:16]


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class RealismPlan:
    """Tasks (dependency order) and what they stand for; duck-types the studies' Plan for
    `run_plan` and `PlanProgress`."""

    scale: RealismScale
    out: Path
    seed: int
    training_sets: list
    simulator: str = ""
    tasks: dict = field(default_factory=dict)
    datasets: dict = field(default_factory=dict)  # training-set key -> dataset task key
    stats: dict = field(default_factory=dict)  # training-set key -> stats task key
    evaluations: list = field(default_factory=list)  # (train key, fold, model file, test key, task key)
    labels: str | None = None
    queries: dict = field(default_factory=dict)  # training-set key -> catalog query
    kinds: tuple = KINDS
    evaluated: bool = True  # False: statistics only, no released model is run
    specimen: dict = field(default_factory=dict)  # specimen options of every simulated frame ({} = the draws)

    @property
    def spec(self):
        return SimpleNamespace(name="realism")

    def add(self, task: Task) -> str:
        self.tasks.setdefault(task.key, task)
        return task.key


def select_sets(sets: list, only: Sequence[str] | None) -> list:
    """The training sets whose key or table name contains one of `only` (case-insensitive).

    None or empty keeps them all; a selector that matches no set is refused (RealismError
    naming it and the keys there are).
    """
    from temshift.realism.training_sets import RealismError

    if not only:
        return list(sets)

    def hit(w: str, ts) -> bool:
        return bool(w) and (w in ts.key.lower() or w in ts.name.lower())

    wanted = [str(w).strip().lower() for w in only]
    for w, raw in zip(wanted, only):
        if not any(hit(w, ts) for ts in sets):
            keys = ", ".join(ts.key for ts in sets)
            raise RealismError(f"--set {raw!r} matches no training set (known: {keys})")
    return [ts for ts in sets if any(hit(w, ts) for w in wanted)]


def resolve(
    models_dir,
    out,
    scale="quick",
    seed: int = DEFAULT_SEED,
    catalog=None,
    evaluate: bool = True,
    only: Sequence[str] | None = None,
    specimen: dict | None = None,
) -> RealismPlan:
    """Plan the benchmark of the released models in `models_dir` under `out`.

    `scale` is a name of `SCALES` or a `RealismScale` (tests use tiny frames). With
    `evaluate` False the plan has no ``evaluate`` tasks: only the synthetic sets, their image
    statistics and the label statistics (at ``paper`` scale the model runs are most of the
    cost). Its other tasks are the same as a full plan's, so a later full run reuses them.
    `only` keeps the training sets it names (`select_sets`): their models run on their sets only.
    `specimen` sets specimen conditions of every simulated frame
    (`temshift.simulate.repository.specimen_options`); they are part of the ``repo`` keys.

    Raises
    ------
    RealismError
        Bad models folder, unknown training set, or unknown scale.
    """
    from temshift.catalog import Catalog
    from temshift.preprocess import PreprocessSettings
    from temshift.realism.training_sets import RealismError, catalog_query, read_training_sets

    if isinstance(scale, RealismScale):
        sc = scale
    elif scale in SCALES:
        sc = SCALES[scale]
    else:
        raise RealismError(f"unknown scale {scale!r} (known: {', '.join(SCALES)})")
    sets = select_sets(read_training_sets(models_dir), only)
    catalog = catalog if catalog is not None else Catalog.published()
    out = Path(out).expanduser().resolve()
    root = str(out / "tasks")
    from temshift.simulate.repository import specimen_options

    options = specimen_options(specimen)
    plan = RealismPlan(
        scale=sc,
        out=out,
        seed=int(seed),
        training_sets=sets,
        simulator=simulator_fingerprint(),
        evaluated=evaluate,
        specimen=options,
    )
    extra = {"specimen": options} if options else {}  # default runs keep their keys
    pre = PreprocessSettings(flatfield=True, rescale="standardize").model_dump(mode="json")
    for ts in sets:
        q = catalog_query(ts, catalog)
        plan.queries[ts.key] = q
        records = sorted(catalog.query(**q).records(), key=lambda r: (r["folder"], r["file"]))
        repo = plan.add(
            Task(
                "repo",
                f"simulate {ts.key}",
                {
                    "rows": records,
                    "frames_per_group": sc.frames_per_group,
                    "frame_size": sc.frame_size,
                    "mode": sc.mode,
                    "seed": plan.seed,
                    "simulator": plan.simulator,
                    **extra,
                },
                {},
                root,
            )
        )
        ds = plan.add(
            Task(
                "dataset",
                f"build {ts.key}",
                {
                    "where": _where_json(q),
                    "preprocess": pre,
                    "patch_size": sc.patch_px,
                    "seed": DATASET_SEED,
                    "repository": {},
                },
                {"repo": repo},
                root,
                meta={"name": ts.key},
            )
        )
        plan.datasets[ts.key] = ds
        plan.stats[ts.key] = plan.add(Task("stats", f"statistics of {ts.key}", {"version": 1}, {"dataset": ds}, root))
    for ts in sets if evaluate else ():
        for fold, path in ts.models:
            sha = file_sha256(path)
            for test in sets:
                key = plan.add(
                    Task(
                        "evaluate",
                        f"evaluate {ts.key} f{fold} on {test.key}",
                        {"model_sha256": sha, "dihedral": sc.dihedral},
                        {"dataset": plan.datasets[test.key]},
                        root,
                        meta={"model_path": str(path)},
                    )
                )
                plan.evaluations.append((ts.key, fold, str(path), test.key, key))
    records = sorted(catalog.query(**LABEL_CONDITIONS).records(), key=lambda r: (r["folder"], r["file"]))
    repo = plan.add(
        Task(
            "repo",
            "simulate paper-scale frames for the label statistics",
            {
                "rows": records,
                "frames_per_group": sc.label_frames,
                "frame_size": sc.label_frame_size,
                "mode": sc.label_mode,
                "seed": plan.seed,
                "simulator": plan.simulator,
                **extra,
            },
            {},
            root,
        )
    )
    plan.labels = plan.add(
        Task("labels", "label statistics of paper-scale frames", {"version": 1}, {"repo": repo}, root)
    )
    return plan
