"""Run a whole study: resolve, execute the task graph, aggregate, draw, report."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from temshift.compute import CONNECT_TIMEOUT_S, check_workers_see, local_threads, open_client
from temshift.io.atomic import atomic_write_text
from temshift.progress import Reporter
from temshift.studies.graph import DEFAULT_REGISTRY, RunOutcome, read_done, run_plan
from temshift.studies.plan import Plan, resolve
from temshift.studies.spec import StudySpec, load_spec


@dataclass
class StudyRun:
    """A finished (or partly failed) study run."""

    plan: Plan
    outcome: RunOutcome
    study_dir: Path
    report: Path | None
    aggregate_s: float


def plan_study(
    spec_or_name, out, scale: str | None = None, workers: int | None = None, scheduler: str | None = None
) -> Plan:
    """Load a spec (preset name, path or StudySpec) and resolve it under `out`.

    The worker count fixes the torch threads of training tasks (part of their keys);
    on an external `scheduler` each worker uses its default.
    """
    spec = spec_or_name if isinstance(spec_or_name, StudySpec) else load_spec(spec_or_name)
    return resolve(spec, out, scale, train_threads=None if scheduler else local_threads(workers))


def cached_keys(plan: Plan) -> set:
    """Keys of the tasks whose output already exists."""
    return {k for k, t in plan.tasks.items() if read_done(t.out_dir) is not None}


def _write_plan(plan: Plan) -> None:
    d = plan.study_dir
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "spec.json", plan.spec.model_dump_json(indent=1))
    tasks = [
        {"key": k, "kind": t.kind, "label": t.label, "deps": t.deps, "dir": str(t.out_dir)}
        for k, t in plan.tasks.items()
    ]
    atomic_write_text(d / "plan.json", json.dumps({"scale": plan.scale.model_dump(), "tasks": tasks}, indent=1))


def _task_roots(plan: Plan) -> list[Path]:
    """Folders that hold the task folders (``<root>/<kind>/<hash>``), created here."""
    roots = list(dict.fromkeys(Path(t.out_dir).parent.parent for t in plan.tasks.values()))
    for r in roots:
        r.mkdir(parents=True, exist_ok=True)
    return roots


def _read_files(plan: Plan) -> dict[str | Path, str]:
    """Files tasks read by the path planned here (a shipped extra model's weights) -> what they are."""
    return {
        t.meta["model_path"]: f"weights of extra model {t.inputs['pretrained']!r}"
        for t in plan.tasks.values()
        if "model_path" in t.meta
    }


def aggregate(plan: Plan, outcome: RunOutcome, figures: bool = True) -> Path | None:
    """Write results, timings, failures, figures and the report of a run; return the report path."""
    from temshift.studies import results as res

    d = plan.study_dir
    table, datasets = res.collect(plan, outcome.records)
    res.write(table, datasets, d)
    timing = res.timings(plan, outcome.records)
    timing["cached"] = timing["key"].isin(outcome.cached)
    timing.to_csv(d / "timings.csv", index=False)
    failures = {k: {"label": plan.tasks[k].label, "error": e} for k, e in outcome.failed.items()}
    failures.update(
        {
            k: {"label": plan.tasks[k].label, "error": f"skipped: needs {u}, which failed"}
            for k, u in outcome.skipped.items()
        }
    )
    atomic_write_text(d / "failures.json", json.dumps(failures, indent=1))
    if not figures or not len(table):
        return None
    from temshift.studies.figures import draw_all
    from temshift.studies.report import write_report

    figs = draw_all(plan, table, datasets, d / "figures")
    return write_report(plan, table, datasets, timing, outcome, figs, d / "report.html")


def run_study(
    spec_or_name,
    out,
    scale: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    registry=DEFAULT_REGISTRY,
    processes: bool = True,
    reporter: Reporter | None = None,
    figures: bool = True,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> StudyRun:
    """Run a study end to end.

    Parameters
    ----------
    spec_or_name : str, Path or StudySpec
        Preset name or spec file.
    out : str or Path
        Study directory (created; finished tasks in it are reused).
    scale : {"ci", "quick", "paper"}, optional
        Overrides the spec's scale.
    workers : int, optional
        Local Dask workers (default one per core).
    scheduler : str, optional
        Address of an existing Dask scheduler.
    registry : str or dict
        Task callables (tests inject fakes).
    processes : bool
        Local workers as processes (False: threads, for tests).
    reporter : temshift.progress.Reporter, optional
        Receives snapshots of the task graph (job ``"study"``); default: logging.
    figures : bool
        Draw figures and write the report.
    connect_timeout_s : float
        Wait for an external `scheduler` to answer and to have a worker, seconds.

    Returns
    -------
    StudyRun
    """
    from temshift.studies.progress import PlanProgress

    plan = plan_study(spec_or_name, out, scale, workers, scheduler)
    _write_plan(plan)
    with open_client(workers, scheduler, processes=processes, connect_timeout_s=connect_timeout_s) as (client, threads):
        if scheduler:
            # workers elsewhere must see the study folder (and any task cache) at the same path
            check_workers_see(client, [plan.study_dir, *_task_roots(plan)], _read_files(plan))
        slots = max(1, sum(client.nthreads().values()))
        runtime = {
            "repo": {"threads": threads},
            "dataset": {"threads": threads},
            "train": {"threads": threads},
            "evaluate": {"threads": threads},
            "stats": {},
        }
        view = PlanProgress(plan, slots, reporter)
        outcome = run_plan(plan, client, registry=registry, runtime=runtime, progress=view)
    t0 = time.perf_counter()
    report = aggregate(plan, outcome, figures=figures)
    agg_s = time.perf_counter() - t0
    summary = {
        "study": plan.spec.name,
        "scale": plan.scale.name,
        "tasks": len(plan.tasks),
        "cached": len(outcome.cached),
        "failed": len(outcome.failed),
        "skipped": len(outcome.skipped),
        "graph_seconds": outcome.seconds,
        "aggregate_seconds": agg_s,
        "workers": slots,
        "pid": os.getpid(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_text(plan.study_dir / "run.json", json.dumps(summary, indent=1))
    return StudyRun(plan, outcome, plan.study_dir, report, agg_s)
