"""`temshift study ...`: run, inspect and check generalization studies."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from temshift.cli import app
from temshift.cli.common import console as _console
from temshift.cli.common import output_dir

study_app = typer.Typer(
    help="Generalization studies: the paper's experiments as a Dask task graph.", no_args_is_help=True
)
app.add_typer(study_app, name="study")


class ScaleName(str, Enum):
    ci = "ci"
    quick = "quick"
    paper = "paper"


@study_app.command("run")
def run(
    spec: str = typer.Argument(..., help="Preset name (dose, flatfield, ..., all) or a study TOML file."),
    out: Path = typer.Option(..., "--out", "-o", help="Study directory (finished tasks in it are reused)."),
    scale: ScaleName = typer.Option(None, "--scale", help="ci | quick | paper (default: the spec's, quick)."),
    workers: int = typer.Option(None, "--workers", "-w", min=1, help="Local Dask workers (default: one per core)."),
    scheduler: str = typer.Option(None, "--scheduler", help="Use a running Dask scheduler, tcp://HOST:PORT."),
    connect_timeout: float = typer.Option(
        10.0, "--connect-timeout", min=0.1, help="Seconds to wait for --scheduler to answer and to have a worker."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No live progress view."),
    extra_model: list[str] = typer.Option(
        None,
        "--extra-model",
        help="Shipped model (generalist) scored on every dataset of each matrix experiment as an extra row "
        "(the spec's extra_models); repeatable.",
    ),
    labeling: list[str] = typer.Option(
        None,
        "--labeling",
        metavar="KEY=VALUE",
        help="Modelled hand labels for the synthetic repository, training and test alike (the spec's "
        "repository.labeling: enabled, rose_threshold, boundary_offset_nm, boundary_jitter_nm); any "
        "--labeling turns it on unless enabled=false; repeatable. Hand-label frames are simulated "
        "and cached apart from exact-label ones.",
    ),
    specimen: list[str] = typer.Option(
        None,
        "--specimen",
        metavar="KEY=VALUE",
        help="Specimen conditions of every synthetic frame instead of the simulator's draws (the spec's "
        "repository.specimen: support_thickness_A, cluster_fraction, illumination_scale), e.g. "
        "--specimen support_thickness_A=100 for a 10 nm film; repeatable. Such frames are simulated and "
        "cached apart from the default ones.",
    ),
) -> None:
    """Run a study: simulate/build data, build datasets, train fold models, evaluate, report."""
    from temshift.cli.progress import RichReporter
    from temshift.errors import SpecError
    from temshift.studies.runner import run_study
    from temshift.studies.spec import StudySpec, load_spec, with_extra_models, with_labeling, with_specimen

    if workers and scheduler:
        raise SpecError("give either --workers or --scheduler, not both")
    study: str | StudySpec = spec
    if extra_model or labeling or specimen:  # checked before anything is created
        study = with_extra_models(load_spec(spec), extra_model or [])
        study = with_specimen(with_labeling(study, labeling or []), specimen or [])
    output_dir(out)
    console = _console()
    result = run_study(
        study,
        out,
        scale=scale.value if scale else None,
        workers=workers,
        scheduler=scheduler,
        reporter=None if no_progress else RichReporter(console),
        connect_timeout_s=connect_timeout,
    )
    o = result.outcome
    console.print(
        f"{len(result.plan.tasks)} tasks: {len(o.cached)} cached, "
        f"{len(o.records) - len(o.cached)} run, {len(o.failed)} failed, {len(o.skipped)} skipped "
        f"in {o.seconds:.1f} s (+ {result.aggregate_s:.1f} s aggregation)"
    )
    for key, err in o.failed.items():
        console.print(f"[red]failed[/] {result.plan.tasks[key].label}: {err.splitlines()[0]}", highlight=False)
    console.print(f"results: {result.study_dir / 'results.csv'}")
    if result.report:
        console.print(f"report:  {result.report}")
    if o.failed or o.skipped:
        raise SystemExit(1)


@study_app.command("show")
def show(
    spec: str = typer.Argument(..., help="Preset name or study TOML file."),
    scale: ScaleName = typer.Option(None, "--scale", help="ci | quick | paper (default: the spec's)."),
    out: Path = typer.Option(None, "--out", "-o", help="Study directory, to count tasks already done."),
    workers: int = typer.Option(
        None, "--workers", "-w", min=1, help="Local workers assumed (estimate; training thread count)."
    ),
    labeling: list[str] = typer.Option(
        None, "--labeling", metavar="KEY=VALUE", help="As for `study run`: modelled hand labels; repeatable."
    ),
    specimen: list[str] = typer.Option(
        None, "--specimen", metavar="KEY=VALUE", help="As for `study run`: specimen conditions; repeatable."
    ),
) -> None:
    """Print the resolved plan: datasets, experiments, task counts and an estimated time."""
    import os

    from rich.table import Table

    from temshift.progress import format_seconds
    from temshift.studies.runner import cached_keys, plan_study
    from temshift.studies.spec import StudySpec, load_spec, with_labeling, with_specimen

    study: str | StudySpec = spec
    if labeling or specimen:
        study = with_specimen(with_labeling(load_spec(spec), labeling or []), specimen or [])
    plan = plan_study(study, out or Path(".temshift-study-preview"), scale.value if scale else None, workers)
    done = cached_keys(plan) if out else set()
    console = _console()
    console.print(f"[bold]study {plan.spec.name}[/] at scale [bold]{plan.scale.name}[/]: {plan.spec.description}")
    ds = Table(title="datasets", title_justify="left")
    for col in ("name", "label", "where", "preprocess", "patch"):
        ds.add_column(col)
    for name, key in plan.datasets.items():
        t = plan.tasks[key]
        pre = t.inputs["preprocess"]
        ds.add_row(
            name,
            plan.spec.datasets[name].label or "",
            ", ".join(
                f"{k}={v['value']}±{v['tol']}" if isinstance(v, dict) else f"{k}={v}"
                for k, v in t.inputs["where"].items()
            ),
            f"{pre.get('rescale')}{', flat-field' if pre.get('flatfield') else ''}",
            str(t.inputs["patch_size"]),
        )
    console.print(ds)
    ex = Table(title="experiments", title_justify="left")
    for col in ("name", "kind", "train", "test", "variants", "models", "evaluations", "finding"):
        ex.add_column(col)
    for name, e in plan.spec.experiments.items():
        cells = [c for c in plan.cells if c.experiment == name]
        ex.add_row(
            name,
            e.kind,
            str(len(e.train)),
            str(len(e.test_sets)),
            str(len({c.variant for c in cells})),
            str(len({c.train_key for c in cells})),
            str(len({c.eval_key for c in cells})),
            e.finding or "",
        )
    console.print(ex)
    tab = Table(title="tasks (shared tasks counted once)", title_justify="left")
    for col in ("stage", "tasks", "done", "est. s each"):
        tab.add_column(col, justify="right")
    for kind, n in plan.counts().items():
        n_done = sum(1 for k in done if plan.tasks[k].kind == kind)
        tab.add_row(kind, str(n), str(n_done), f"{plan.scale.cost_s.get(kind, 1.0):g}")
    console.print(tab)
    n = workers or os.cpu_count() or 1
    console.print(
        f"folds {plan.spec.folds or plan.scale.folds}; training {plan.scale.training} (+ spec {plan.spec.training})"
    )
    if plan.spec.repository.synthetic:
        console.print(f"labels: {plan.spec.repository.labeling.describe()}")
        console.print(f"specimen: {plan.spec.repository.specimen.describe()}")
    console.print(
        f"estimated time with {n} worker(s): {format_seconds(plan.estimate_s(n, skip=done))} "
        f"(rough; the live view refines it from measured task times)"
    )


@study_app.command("check")
def check(study_dir: Path = typer.Argument(..., help="A finished study directory.")) -> None:
    """Check the paper's findings on a finished study; exit 1 if one that ran is not reproduced."""
    from rich.table import Table

    from temshift.studies.check import check_study

    findings = check_study(study_dir)
    table = Table(title=f"findings in {study_dir}", title_justify="left")
    for col in ("finding", "status", "detail"):
        table.add_column(col)
    for f in findings:
        style = {"reproduced": "green", "not reproduced": "red"}.get(f.status, "dim")
        table.add_row(f.name, f"[{style}]{f.status}[/]", f.detail)
    _console().print(table)
    # SystemExit rather than typer.Exit: the shared entry point runs click in non-standalone mode
    if any(f.failed for f in findings):
        raise SystemExit(1)
    if all(f.status == "not run" for f in findings):
        raise SystemExit(2)


@study_app.command("presets")
def presets() -> None:
    """List the packaged study presets."""
    from temshift.studies.spec import load_spec, preset_names

    for name in preset_names():
        typer.echo(f"{name:14s} {load_spec(name).description}")


@study_app.command("acceptance")
def acceptance(
    study_dir: Path = typer.Argument(None, help="A finished study (omit with --from-scores)."),
    from_scores: Path = typer.Option(
        None,
        "--from-scores",
        metavar="DIR",
        help="Re-assess an earlier --out folder (frame_scores.csv, references.json) without inference.",
    ),
    experiment: str = typer.Option(None, "--experiment", help="Experiment name (default: the first)."),
    max_frames: int = typer.Option(None, "--max-frames", min=1, help="At most N frames per other test dataset."),
    folds: str = typer.Option(None, "--folds", help="Fold models to use, comma-separated (default: all trained)."),
    out: Path = typer.Option(None, "--out", help="Write frame_scores.csv, acceptance.json, references.json here."),
    default_only: bool = typer.Option(
        False, "--default-only", help="Score only the default mode (matching with noise restoration), 3x faster."
    ),
) -> None:
    """Score a finished study's models on whole frames (with and without pixel-scale matching) and its shift warnings.

    Prints the summary JSON (criteria in docs/predict.md); --out also keeps the per-frame scores.
    """
    import json

    from temshift.cli.model_cmd import _parse_folds
    from temshift.cli.progress import RichReporter
    from temshift.errors import SpecError
    from temshift.studies import acceptance as acc

    if out is not None:
        output_dir(out)
    if from_scores is not None:
        scores = acc.read_scores(from_scores)
    elif study_dir is not None:
        chosen = None if folds in (None, "all") else _parse_folds(None, folds, 0)
        scores = acc.study_frame_scores(
            study_dir,
            experiment,
            max_frames=max_frames,
            folds=chosen,
            modes=acc.MODES[:1] if default_only else acc.MODES,
            reporter=RichReporter(_console(stderr=True)),
        )
    else:
        raise SpecError("give a study directory or --from-scores DIR")
    summary = acc.acceptance_summary(scores)
    if out is not None:
        acc.write_acceptance(scores, summary, out)
    typer.echo(json.dumps(summary, indent=2))
