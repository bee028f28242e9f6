"""`temshift pretrain`: train the generalist on domain-randomized simulated frames."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from temshift.cli import app
from temshift.cli.common import console as _console


class PretrainScaleName(str, Enum):
    ci = "ci"
    quick = "quick"
    paper = "paper"


@app.command("pretrain")
def pretrain(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (finished work in it is reused; training resumes)."),
    scale: PretrainScaleName = typer.Option(
        PretrainScaleName.quick, "--scale", help="ci (tests, ~1 min) | quick (CPU, ~1 h on 2 cores) | paper (GPUs)."
    ),
    workers: int = typer.Option(None, "--workers", "-w", min=1, help="Local Dask workers (default: one per core)."),
    scheduler: str = typer.Option(None, "--scheduler", help="Use a running Dask scheduler, tcp://HOST:PORT."),
    seed: int = typer.Option(0, "--seed", min=0, help="Run seed: each frame's parameters derive from (seed, index)."),
    ranges: Path = typer.Option(None, "--ranges", help="JSON file of PretrainRanges overrides (docs/pretrain.md)."),
    train_threads: int = typer.Option(
        None, "--train-threads", min=1, help="Torch threads for training (default: all cores; resume with the same)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No live progress view (for logs and batch jobs)."),
) -> None:
    """Train a generalist on simulated frames drawn across wide parameter ranges; writes OUT/generalist.pt."""

    from temshift.cli.progress import RichReporter
    from temshift.studies.pretrain import PretrainError, run_pretrain

    overrides = None
    if ranges is not None:
        from temshift.io.jsonfile import read_json_object

        overrides = read_json_object(ranges, PretrainError, "ranges file")
    con = _console()
    res = run_pretrain(
        out,
        scale.value,
        workers=workers,
        scheduler=scheduler,
        seed=seed,
        ranges=overrides,
        train_threads=train_threads,
        reporter=None if no_progress else RichReporter(con, graph="line"),
    )
    rec = res.record
    con.print(
        f"{len(res.plan.tasks)} tasks: {res.cached} cached, {res.ran} run; "
        f"{rec['data']['frames']} frames, {rec['data']['patches']} patches; "
        f"held-out hard dice {rec['held_out'].get('hard_dice', float('nan')):.3f}"
    )
    con.print(f"model:  {res.model_path}\nrecord: {res.record_path}")
