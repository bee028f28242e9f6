"""`temshift realism`: the synthetic repository held against real data."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from temshift.cli import app
from temshift.cli.common import console as _console


class RealismScaleName(str, Enum):
    quick = "quick"
    paper = "paper"


@app.command("realism")
def realism(
    models: Path = typer.Option(
        ..., "--models", "-m", help="Folder of released *_model.h5 weights and their model_details.csv."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (finished tasks in it are reused)."),
    scale: RealismScaleName = typer.Option(
        RealismScaleName.quick,
        "--scale",
        help="quick: 1024² multislice frames, 3 per catalog group; paper: 4096², 8 per group.",
    ),
    seed: int = typer.Option(11, "--seed", help="Simulation seed of the synthetic repository."),
    workers: int = typer.Option(None, "--workers", "-w", min=1, help="Local Dask workers (default: one per core)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No live progress view."),
) -> None:
    """Run released real-data models on synthetic datasets simulated like their training sets;
    compare scores, image and label statistics with the real ones."""
    from temshift.cli.progress import RichReporter
    from temshift.realism.runner import run_realism

    console = _console()
    res = run_realism(
        models,
        out,
        scale=scale.value,
        seed=seed,
        workers=workers,
        reporter=None if no_progress else RichReporter(console),
    )
    o, g = res.outcome, res.summary["gaps"]
    console.print(
        f"{len(res.plan.tasks)} tasks: {len(o.cached)} cached, {len(o.records) - len(o.cached)} run, "
        f"{len(o.failed)} failed, {len(o.skipped)} skipped in {o.seconds:.1f} s"
    )
    for key, err in o.failed.items():
        console.print(f"[red]failed[/] {res.plan.tasks[key].label}: {err.splitlines()[0]}", highlight=False)
    if g["mean_abs_gap"] is not None:
        w = g["worst"]
        console.print(
            f"mean |synthetic - real| hard dice {g['mean_abs_gap']:.3f} over {g['known_cells']} cells; "
            f"worst {w['train']} on {w['test']}: {w['synthetic']:.3f} vs real {w['real']:.3f}"
        )
    for kind, path in res.paths.items():
        console.print(f"{kind}: {path}")
    if o.failed or o.skipped:
        raise SystemExit(1)
