"""`temshift train`, `temshift evaluate` and `temshift model import` (torch imported inside the commands)."""

from __future__ import annotations

from pathlib import Path

import typer

from temshift.cli import app
from temshift.cli.common import output_dir, output_file

model_app = typer.Typer(help="Model files: import the authors' released weights.", no_args_is_help=True)
app.add_typer(model_app, name="model")


def _parse_folds(fold: int | None, folds: str | None, n_folds: int) -> list[int]:
    from temshift.errors import SpecError

    if fold is not None and folds is not None:
        raise SpecError("give --fold or --folds, not both")
    if folds is None:
        return [0 if fold is None else fold]
    if folds == "all":
        return list(range(n_folds))
    try:
        return [int(f) for f in folds.split(",")]
    except ValueError:
        raise SpecError(f"--folds must be 'all' or a comma-separated list of integers, got {folds!r}") from None


@app.command("train")
def train(
    dataset: Path = typer.Argument(..., help="Dataset file (HDF5)."),
    out: Path = typer.Option(..., "--out", help="Run directory (one fold) or parent of fold0..foldN (--folds)."),
    fold: int | None = typer.Option(None, "--fold", help="Fold to train (default 0)."),
    folds: str | None = typer.Option(None, "--folds", help="'all' or a list like 0,2,4: one run dir per fold."),
    epochs: int | None = typer.Option(
        None,
        "--epochs",
        help="Epochs (default 250, the paper's protocol: hours to days on a CPU; e.g. --epochs 20 for a first model).",
    ),
    noise_rho: float | None = typer.Option(None, "--noise-rho", help="Fixed Gaussian noise scale rho."),
    noise_rho_max: float | None = typer.Option(None, "--noise-rho-max", help="rho ~ U[0, rho_max] per sample."),
    patch_crop: int | None = typer.Option(None, "--patch-crop", help="Train on random crops of this size."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size (paper: 32)."),
    learning_rate: float | None = typer.Option(None, "--lr", help="Adam learning rate (paper: 1e-4)."),
    early_stopping: int | None = typer.Option(None, "--early-stopping", help="Patience in epochs."),
    seed: int | None = typer.Option(None, "--seed", help="Override the fold seeds."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    threads: int | None = typer.Option(None, "--threads", help="torch threads."),
    bf16: bool | None = typer.Option(
        None, "--bf16/--no-bf16", help="bfloat16 autocast (default: auto, on for CPUs with native bf16)."
    ),
    channels_last: bool | None = typer.Option(
        None, "--channels-last/--no-channels-last", help="Channels-last layout (default: auto, as --bf16)."
    ),
):
    """Train fold model(s) with the paper's protocol; an interrupted run resumes from its last epoch.

    The default is the paper's 250 epochs, which takes hours to days on a CPU (the estimate is
    printed at start); shorten with --epochs, or run a whole study at a small scale
    (temshift study run dose --scale ci|quick).
    """
    from rich.console import Console

    from temshift.cli.progress import RichReporter
    from temshift.training import TrainSettings, train_fold
    from temshift.training.fold import STATE_FILE, epochs_done

    overrides = {
        "epochs": epochs,
        "noise_rho": noise_rho,
        "noise_rho_max": noise_rho_max,
        "patch_crop": patch_crop,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "early_stopping_patience": early_stopping,
        "seed": seed,
        "threads": threads,
    }
    settings = _settings(
        TrainSettings,
        {k: v for k, v in overrides.items() if v is not None},
        device=device,
        bf16=bf16,
        channels_last=channels_last,
    )
    chosen = _parse_folds(fold, folds, settings.n_folds)
    output_dir(out)
    console = Console()
    _announce(console, dataset, settings, chosen, default_epochs=epochs is None)
    for f in chosen:
        run_dir = out / f"fold{f}" if folds is not None else out
        try:
            result = train_fold(dataset, f, settings, run_dir, reporter=RichReporter(console))
        except KeyboardInterrupt:
            Console(stderr=True).print(
                f"[yellow]interrupted:[/] fold {f} has {epochs_done(run_dir)} of {settings.epochs} epochs saved in "
                f"{run_dir / STATE_FILE}; run the same command again to resume from there",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(130) from None
        console.print(
            f"fold {f}: best epoch {result.best_epoch}, val loss {result.best_val_loss:.4f} -> {result.model_path}",
            highlight=False,
        )


def _announce(console, dataset: Path, settings, folds: list[int], default_epochs: bool) -> None:
    """Say how long training will take on a CPU and how to shorten it."""
    from temshift.models.runtime import resolve_device
    from temshift.training.runtime import dataset_patches, estimate_cpu_seconds, format_duration

    epochs = f"{settings.epochs} epochs" + (" (the default: the paper's protocol)" if default_epochs else "")
    shape = dataset_patches(dataset)
    line = f"training {len(folds)} fold model(s) of {dataset.name} for {epochs}"
    if shape is not None and resolve_device(settings.device).type == "cpu":
        n, px = shape
        try:
            seconds = sum(estimate_cpu_seconds(n, px, settings, f) for f in folds)
        except ValueError:  # too few patches: train_fold says so
            seconds = None
        if seconds is not None:
            line += (
                f": roughly {format_duration(seconds)} on one CPU core for {n} patches of {px} px "
                "(benchmarked throughput; the bar shows the real pace)"
            )
            if default_epochs or seconds > 3600:
                line += "; shorten with --epochs N, or run a study at a small scale (--scale ci|quick)"
    console.print(line, highlight=False, soft_wrap=True)


def _settings(cls, values: dict, **extra):
    from pydantic import ValidationError

    from temshift.errors import SpecError

    try:
        return cls(**values, **extra)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(f"invalid training setting {'.'.join(map(str, err['loc'])) or ''}: {err['msg']}") from None


@app.command("evaluate")
def evaluate(
    runs: list[Path] = typer.Argument(..., help="Run directories, folders of fold runs, or model files."),
    on: list[Path] = typer.Option(..., "--on", help="Test dataset(s); repeat for several."),
    out: Path | None = typer.Option(None, "--out", help="Write tidy rows (CSV)."),
    no_dihedral: bool = typer.Option(False, "--no-dihedral", help="Skip the 8x dihedral test expansion."),
    device: str = typer.Option("auto", "--device"),
    threads: int | None = typer.Option(None, "--threads", min=1),
):
    """Evaluate fold models: own dataset on each fold's test block, other datasets whole; mean and std."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from temshift.evaluation import evaluate_runs, summarize
    from temshift.evaluation.evaluate import mean_std_text
    from temshift.io.atomic import atomic_path

    if out is not None:
        output_file(out)
    df = evaluate_runs(runs, on, dihedral=not no_dihedral, device=device, threads=threads)
    console = Console()
    table = Table(title="per model", box=box.SIMPLE_HEAD, pad_edge=False)
    cols = {
        "fold": "fold",
        "train_dataset": "train",
        "test_dataset": "test",
        "same_dataset": "own",
        "hard_dice": "dice",
        "pooled_dice": "pooled",
        "ce": "CE",
        "fp_rate": "FP rate",
        "fn_rate": "FN rate",
        "overseg_share": "overseg",
    }
    for key, label in cols.items():
        named = key in ("train_dataset", "test_dataset")
        table.add_column(label, no_wrap=not named, overflow="fold" if named else "ellipsis", min_width=len(label))
    for _, row in df.iterrows():
        table.add_row(
            *[
                ("yes" if row[c] else "no")
                if c == "same_dataset"
                else f"{row[c]:.3f}"
                if isinstance(row[c], float)
                else str(row[c])
                for c in cols
            ]
        )
    console.print(table)
    table = Table(title="mean ± std over models", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, label in enumerate(("train", "test", "models", "hard dice", "CE", "overseg")):
        table.add_column(label, no_wrap=i > 1, overflow="fold", min_width=len(label))
    for _, row in summarize(df).iterrows():
        table.add_row(
            str(row.train_dataset),
            str(row.test_dataset),
            str(row.n_models),
            *[mean_std_text(row[f"{m}_mean"], row[f"{m}_std"]) for m in ("hard_dice", "ce", "overseg_share")],
        )
    console.print(table)
    if out is not None:
        with atomic_path(out) as tmp:
            df.to_csv(tmp, index=False)
        console.print(f"wrote {out}")


@model_app.command("import")
def import_published(
    published: Path = typer.Argument(..., help="Released weights file (*_model.h5, pickled module)."),
    out: Path = typer.Option(..., "--out", help="temshift checkpoint to write (*.pt)."),
):
    """Convert the authors' released weights into a temshift checkpoint, without running code from the file."""
    from temshift.models import load_published, save_checkpoint
    from temshift.models.checkpoint import published_meta

    output_file(out)
    model = load_published(published)
    save_checkpoint(out, model, published_meta(published, model.config.model_dump()))
    typer.echo(f"imported {published} -> {out}")
