"""`temshift realism`: the synthetic repository held against real data."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer

from temshift.cli import app
from temshift.cli.common import console as _console
from temshift.cli.common import specimen_option


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
    seed: list[int] = typer.Option(
        [11],
        "--seed",
        metavar="SEED",
        help="Simulation seed of the synthetic repository. Repeat it (--seed 11 --seed 12 ...) to run each "
        "seed into OUT/seed-N and combine them in OUT/seeds.json and seeds.md: at quick scale one seed's "
        "cell can move by 0.3 hard dice.",
    ),
    workers: int = typer.Option(None, "--workers", "-w", min=1, help="Local Dask workers (default: one per core)."),
    statistics_only: bool = typer.Option(
        False,
        "--statistics-only",
        help="Simulate the sets and measure their image and label statistics without running the "
        "models (at paper scale the model runs take most of the time); a later full run reuses the sets.",
    ),
    only: list[str] = typer.Option(
        [],
        "--set",
        metavar="KEY",
        help="Only the training sets whose key or model_details.csv name contains KEY (case-insensitive; "
        "repeatable), e.g. --set 80e --set 884e for the two sets with a real particle contrast.",
    ),
    specimen: list[str] = typer.Option(
        [],
        "--specimen",
        metavar="KEY=VALUE",
        help="Specimen condition of every simulated frame instead of the simulator's draw (support_thickness_A, "
        "cluster_fraction, illumination_scale), e.g. --specimen support_thickness_A=100 to measure a 10 nm film; "
        "repeatable. Recorded in realism.json; such frames are simulated apart from the default ones.",
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No live progress view."),
) -> None:
    """Run released real-data models on synthetic datasets simulated like their training sets;
    compare scores, image and label statistics with the real ones."""
    from temshift.cli.progress import RichReporter
    from temshift.realism.runner import run_realism, run_realism_seeds

    console = _console()
    options: dict[str, Any] = {
        "scale": scale.value,
        "workers": workers,
        "evaluate": not statistics_only,
        "only": only or None,
        "specimen": specimen_option(specimen),
        "reporter": None if no_progress else RichReporter(console),
    }
    seeds = list(dict.fromkeys(seed))
    if len(seeds) == 1:
        runs, paths = [run_realism(models, out, seed=seeds[0], **options)], {}
    else:
        many = run_realism_seeds(models, out, seeds, **options)
        runs, paths = many.runs, many.paths
    for res in runs:
        _report(console, res, many_seeds=len(runs) > 1)
    if len(runs) > 1:
        c = many.combined
        console.print(
            f"seeds {', '.join(map(str, c['seeds']))}: mean |gap| of the seed means "
            f"{_num(c['mean_abs_gap_of_seed_means'])}; one run's, per seed: "
            + ", ".join(_num(v) for v in c["per_seed_mean_abs_gap"])
        )
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")
    if any(r.outcome.failed or r.outcome.skipped for r in runs):
        raise SystemExit(1)


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _report(console, res, many_seeds: bool) -> None:
    """One run's task counts, failures, gap summary and files."""
    o, g = res.outcome, res.summary["gaps"]
    prefix = f"seed {res.plan.seed}: " if many_seeds else ""
    if res.plan.specimen:
        console.print(f"{prefix}specimen: " + ", ".join(f"{k} = {v:g}" for k, v in res.plan.specimen.items()))
    console.print(
        f"{prefix}{len(res.plan.tasks)} tasks: {len(o.cached)} cached, {len(o.records) - len(o.cached)} run, "
        f"{len(o.failed)} failed, {len(o.skipped)} skipped in {o.seconds:.1f} s"
    )
    for key, err in o.failed.items():
        console.print(f"[red]failed[/] {res.plan.tasks[key].label}: {err.splitlines()[0]}", highlight=False)
    if g["mean_abs_gap"] is not None:
        w = g["worst"]
        console.print(
            f"{prefix}mean |synthetic - real| hard dice {g['mean_abs_gap']:.3f} over {g['known_cells']} cells; "
            f"worst {w['train']} on {w['test']}: {w['synthetic']:.3f} vs real {w['real']:.3f}"
        )
    for key, st in res.summary["image_statistics"].items():
        if st.get("contrast_ratio") is not None:
            console.print(
                f"{prefix}particle contrast {key}: {st['particle_contrast']:.3f} synthetic vs "
                f"{st['real_particle_contrast']:.3f} real ({st['contrast_ratio']:.2f}x)"
            )
    if not many_seeds:
        for kind, path in res.paths.items():
            console.print(f"{kind}: {path}")
