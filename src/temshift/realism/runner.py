"""Run the realism benchmark end to end on the studies' Dask task graph."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from temshift.compute import open_client
from temshift.io.atomic import atomic_write_text
from temshift.progress import Reporter
from temshift.realism.plan import DEFAULT_SEED, RealismPlan, resolve
from temshift.studies.graph import RunOutcome, run_plan

REGISTRY = "temshift.realism.tasks:REGISTRY"


@dataclass
class RealismRun:
    plan: RealismPlan
    outcome: RunOutcome
    summary: dict
    paths: dict


def _examples(plan: RealismPlan, records: dict) -> dict:
    import numpy as np

    from temshift.realism.tasks import EXAMPLES

    out = {}
    for key, stats_key in plan.stats.items():
        rec = records.get(stats_key)
        path = Path(rec["dir"]) / EXAMPLES if rec else None
        if path is not None and path.is_file():
            with np.load(path) as z:
                out[key] = {"image": z["image"], "label": z["label"]}
    return out


def aggregate(plan: RealismPlan, outcome: RunOutcome, figure: bool = True) -> tuple[dict, dict]:
    """Summary and output files of a (possibly partly failed) run."""
    from temshift.realism.report import write_outputs
    from temshift.realism.summary import summarize

    summary = summarize(plan, outcome.records)
    summary["failures"] = {plan.tasks[k].label: e.splitlines()[0] for k, e in outcome.failed.items()}
    summary["skipped"] = [plan.tasks[k].label for k in outcome.skipped]
    return summary, write_outputs(summary, _examples(plan, outcome.records), plan.out, figure=figure)


def run_realism(
    models_dir,
    out,
    scale: str = "quick",
    seed: int = DEFAULT_SEED,
    workers: int | None = None,
    registry=REGISTRY,
    processes: bool = True,
    reporter: Reporter | None = None,
    figure: bool = True,
    catalog=None,
    evaluate: bool = True,
    only: Sequence[str] | None = None,
    specimen: dict | None = None,
) -> RealismRun:
    """Simulate the training sets of the released models in `models_dir`, test every model on every set.

    Parameters
    ----------
    models_dir : str or Path
        Released ``*_model.h5`` weights and their ``model_details.csv``.
    out : str or Path
        Output folder; finished tasks under ``out/tasks`` are reused.
    scale : {"quick", "paper"}
    seed : int
        Simulation seed of the synthetic repository.
    workers : int, optional
        Local Dask workers (default one per core).
    registry, processes
        Task callables and local workers as processes (tests: fakes, threads).
    reporter : temshift.progress.Reporter, optional
        Receives snapshots of the task graph (job ``"realism"``); default: logging.
    catalog : Catalog, optional
        Catalog to map training sets to (default: the packaged published catalog).
    evaluate : bool
        Run the released models (False: only the synthetic sets and their image and label
        statistics; the tasks are the same, so a later full run reuses them).
    only : sequence of str, optional
        Keep only the training sets whose key or table name contains one of these
        (case-insensitive; `temshift.realism.plan.select_sets`).
    specimen : dict, optional
        Specimen conditions of every simulated frame instead of the simulator's draws
        (`temshift.simulate.repository.specimen_options`), e.g. ``{"support_thickness_A": 100}``.

    Returns
    -------
    RealismRun
    """
    from temshift.studies.progress import PlanProgress

    plan = resolve(models_dir, out, scale, seed, catalog=catalog, evaluate=evaluate, only=only, specimen=specimen)
    plan.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open_client(workers, processes=processes) as (client, threads):
        slots = max(1, sum(client.nthreads().values()))
        runtime = {kind: {"threads": threads} for kind in plan.kinds}
        view = PlanProgress(plan, slots, reporter, job="realism")
        outcome = run_plan(plan, client, registry=registry, runtime=runtime, progress=view)
    summary, paths = aggregate(plan, outcome, figure=figure)
    atomic_write_text(
        plan.out / "run.json",
        json.dumps(
            {
                "scale": plan.scale.name,
                "seed": plan.seed,
                "models_evaluated": plan.evaluated,
                "tasks": len(plan.tasks),
                "cached": len(outcome.cached),
                "failed": len(outcome.failed),
                "skipped": len(outcome.skipped),
                "seconds": time.perf_counter() - t0,
                "workers": slots,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
            indent=1,
        ),
    )
    return RealismRun(plan, outcome, summary, paths)


@dataclass
class RealismSeedsRun:
    runs: list[RealismRun]
    combined: dict
    paths: dict


def run_realism_seeds(models_dir, out, seeds, **options) -> RealismSeedsRun:
    """:func:`run_realism` once per seed, into ``out/seed-N``, then the seeds combined.

    Writes ``out/seeds.json`` (:func:`temshift.realism.seeds.combine_seeds`) and ``out/seeds.md``
    (its tables). Each seed's folder is a complete run of its own (resumable the same way).
    `options` are those of :func:`run_realism`.
    """
    from temshift.realism.seeds import combine_seeds, seeds_markdown

    seeds = list(dict.fromkeys(int(s) for s in seeds))  # in order, each once
    if not seeds:
        raise ValueError("no seeds")
    out = Path(out)
    runs = [run_realism(models_dir, out / f"seed-{s}", seed=s, **options) for s in seeds]
    combined = combine_seeds([r.summary for r in runs])
    labels = {t["key"]: t["label"] for t in runs[0].summary["training_sets"]}
    paths = {"seeds json": out / "seeds.json", "seeds table": out / "seeds.md"}
    atomic_write_text(paths["seeds json"], json.dumps(combined, indent=1))
    atomic_write_text(paths["seeds table"], seeds_markdown(combined, labels))
    return RealismSeedsRun(runs, combined, paths)
