"""`temshift predict`, `temshift check`, `temshift fetch`: use models on new frames, get real data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from temshift.cli import app
from temshift.cli.common import (
    FRAME_HELP,
    SUM_HELP,
    console,
    frame_choice,
    output_dir,
    output_file,
    pixel_scale_option,
    positive_option,
)

_MODEL_HELP = (
    "Model: temshift checkpoint (model.pt), released *_model.h5 weights, a run directory (all model.pt below "
    "it form an ensemble), zoo:auto (per frame, the nearest released training set; see `temshift zoo`), or "
    "generalist (the model shipped in the package, see `temshift pretrain`)."
)
_ZOO_HELP = "Local zoo folder for zoo:auto (default: $TEMSHIFT_ZOO, else ~/.cache/temshift/zoo)."


def _console():
    return console(stderr=True)


def _risk_table(reports, title: str):
    from rich.table import Table

    colour = {"low": "green", "medium": "yellow", "high": "bold red"}
    table = Table(title=title, show_lines=False)
    table.add_column("frame")
    table.add_column("risk")
    table.add_column("reasons")
    doubts = any(r.doubts for r in reports)
    if doubts:
        table.add_column("mask quality")
    for r in reports:
        # batch findings are printed once below the table (see _print_batches)
        own = (
            r.messages(("shift",))
            + (["(+ batch findings)"] if r.messages(("batch",)) else [])
            + [f"[dim]{m}[/]" for m in r.not_compared]
        )
        row = [r.frame, f"[{colour[r.level]}]{r.level}[/]", "\n".join(own) or "-"]
        table.add_row(*row, *(["\n".join(r.doubts) or "-"] if doubts else []))
    return table


def _print_frame(con: Any, p: Any) -> None:
    """What the command line says about a frame once it is done: read warnings, zoo:auto's pick,
    a failure or a strict-mode refusal."""
    if p.metadata is not None:
        for n in p.metadata.notes:
            con.print(f"[yellow]warning:[/] {n}", highlight=False)
    if p.choice_note:
        con.print(p.choice_note, highlight=False)
    if p.error:
        con.print(f"[bold red]failed:[/] {p.error}", highlight=False, soft_wrap=True)
    elif p.refused:
        con.print(
            f"[bold red]refused:[/] {p.name}: high risk, no mask written ({'; '.join(p.report.reasons)})",
            highlight=False,
        )


def _exit_if_failed(console: Any, failed: list[str], n_frames: int) -> None:
    """After the outputs of the good frames are written: list the failed frames, exit 1."""
    if not failed:
        return
    console.print(
        f"[bold red]{len(failed)} of {n_frames} frame(s) failed[/] (the others' outputs are written):", highlight=False
    )
    for line in failed:
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _print_batches(console: Any, predictions: list[Any]) -> None:
    from temshift.predict.batch import batch_findings

    for batch in batch_findings(predictions):
        bad = [f.message for f in batch.findings if f.level != "low"]
        if bad:
            cond = batch.conditions
            console.print(
                f"[yellow]batch of {len(batch.frames)} frames{f' ({cond})' if cond else ''}:[/] " + "; ".join(bad),
                highlight=False,
            )


def _report(predictions: list[Any], title: str, con: Any, n_frames: int) -> None:
    """The risk table on stdout, batch findings below it, then the failed frames (exit 1)."""
    from rich.console import Console

    reports = [p.report for p in predictions if p.report is not None]
    Console().print(_risk_table(reports, title))
    _print_batches(Console(), predictions)
    _exit_if_failed(con, [p.error for p in predictions if p.error], n_frames)


# shared by predict and check: the same frames get the same scale estimate in both
_ESTIMATE_SCALE_OPTION = typer.Option(
    True,
    "--estimate-scale/--no-estimate-scale",
    help="Frames with no pixel scale: estimate it from lattice fringes when confident (see docs/predict.md).",
)
_MATERIAL_OPTION = typer.Option(
    None,
    "--material",
    help="Particle material for that estimate: Au, Ag, Pt, Pd, CdSe (default: catalog, else Au).",
)


def _settings(
    pixel_scale, dose, frame_index, sum_frames, rescale, noise_match, estimate_scale, material, **more: Any
) -> Any:
    """`PredictSettings` from the options `predict` and `check` share, plus `more` (predict's own)."""
    from temshift.predict.batch import PredictSettings

    return PredictSettings(
        pixel_scale_nm=pixel_scale,
        dose_e_per_A2=dose,
        frame=frame_choice(frame_index, sum_frames),
        rescale=rescale,
        match_noise=noise_match,
        estimate_scale=estimate_scale,
        material=material,
        **more,
    )


@app.command("predict")
def predict(
    model: Path = typer.Argument(..., help=_MODEL_HELP),
    frames: list[Path] = typer.Argument(..., help="Raw frames (.dm3, .dm4, .emd, .ser/.emi, .tif, .png, .jpg, .npy)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    pixel_scale: float = typer.Option(
        None,
        "--pixel-scale",
        callback=pixel_scale_option,
        help="Frame pixel scale, nm/pixel, 0.001-10 (default: file metadata, then catalog).",
    ),
    dose: float = typer.Option(
        None, "--dose", callback=positive_option, help="Frame dose, e/A^2 (default: catalog), for shift warnings."
    ),
    estimate_scale: bool = _ESTIMATE_SCALE_OPTION,
    material: str = _MATERIAL_OPTION,
    ensemble: list[Path] = typer.Option(
        None, "--ensemble", help="More models or run directories; probabilities are averaged. Repeatable."
    ),
    save_probabilities: bool = typer.Option(
        False, "--save-probabilities", help="Also write the particle probability map (float32 TIFF)."
    ),
    rescale: bool = typer.Option(
        True, "--rescale/--no-rescale", help="Resample frames to the model's training pixel scale."
    ),
    noise_match: bool = typer.Option(
        True,
        "--noise-match/--no-noise-match",
        help="After resampling, restore the pixel noise a detector at the training scale records (see docs).",
    ),
    strict: bool = typer.Option(False, "--strict", help="Write no mask for high-risk frames (exit code 2 if any)."),
    particles: bool = typer.Option(True, "--particles/--no-particles", help="Particle tables and size histogram."),
    watershed: bool = typer.Option(
        False, "--watershed", help="Split touching particles (watershed on the distance transform)."
    ),
    catalog: Path = typer.Option(
        None, "--catalog", help="Catalog CSV to look frames up by file name (default: the published one)."
    ),
    dataset: Path = typer.Option(
        None, "--train-dataset", help="Training dataset file, when the model does not carry its statistics."
    ),
    tile: int = typer.Option(
        2048,
        "--tile",
        min=272,
        help="Largest tile edge, pixels, at least 272 = 2 x overlap + 16 "
        "(larger tiles waste less on overlap, need more memory).",
    ),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Tiles per forward pass."),
    threads: int = typer.Option(
        None, "--threads", min=1, help="Torch CPU threads (default: torch's; 1 is faster on a busy machine)."
    ),
    frame_index: int = typer.Option(None, "--frame", min=0, help=FRAME_HELP),
    sum_frames: bool = typer.Option(False, "--sum", help=SUM_HELP),
    zoo_dir: Path = typer.Option(None, "--zoo-dir", help=_ZOO_HELP),
    tta: bool = typer.Option(
        False,
        "--tta",
        help="Test-time augmentation: average each model over the 8 dihedral variants (8x the time); "
        "with it or an ensemble, also a per-pixel SD map (<stem>_std.tif) and per-particle confidence.",
    ),
):
    """Segment whole raw frames: masks (PNG, TIFF), overlays, particle tables, risk report."""
    import contextlib

    from temshift.cli import loading_libraries
    from temshift.predict.histogram import HistogramProcess

    # started first: the child imports matplotlib on the other core while this process imports torch
    with HistogramProcess() if particles else contextlib.nullcontext() as histogram:
        with loading_libraries():
            from temshift.predict import pipeline, shift  # noqa: F401  (torch, pandas, SciPy: loaded at once)
            from temshift.predict.batch import predict_frames
            from temshift.predict.outputs import FrameWriter, write_batch_outputs

        settings = _settings(
            pixel_scale,
            dose,
            frame_index,
            sum_frames,
            rescale,
            noise_match,
            estimate_scale,
            material,
            tile=tile,
            batch_size=batch_size,
            tta=tta,
            strict=strict,
            particles=particles,
            watershed=watershed,
            save_probabilities=save_probabilities,
            threads=threads,
        )
        output_dir(out)
        con = _console()

        def on_frame(p: Any) -> None:  # written as each frame is done (in the background), no frames kept in memory
            _print_frame(con, p)
            writer.submit(p)

        with FrameWriter(out, settings) as writer:
            preds = predict_frames(
                model,
                frames,
                settings,
                catalog=catalog,
                ensemble=ensemble,
                zoo_dir=zoo_dir,
                train_dataset=dataset,
                status=con.status,
                on_frame=on_frame,
                keep_arrays=False,
                on_segmented=writer.prepare,  # the PNGs are encoded while the frame is measured
            )
            write_batch_outputs(
                preds,
                out,
                settings,
                frame_writer=writer,
                histogram=histogram,
                inputs={
                    "models": [str(model), *map(str, ensemble or [])],
                    "catalog": str(catalog) if catalog else "published catalog",
                    "train_dataset": dataset,
                    "zoo_dir": zoo_dir,
                },
            )
        _report(preds, f"dataset-shift risk ({out / 'risk.json'})", con, len(frames))
        refused = [p for p in preds if p.refused]
        if refused:
            con.print(f"[bold red]{len(refused)} high-risk frame(s) without mask (--strict)[/]")
            raise typer.Exit(2)


@app.command("check")
def check(
    model: Path = typer.Argument(..., help=_MODEL_HELP),
    frames: list[Path] = typer.Argument(..., help="Raw frames."),
    pixel_scale: float = typer.Option(
        None,
        "--pixel-scale",
        callback=pixel_scale_option,
        help="Frame pixel scale, nm/pixel, 0.001-10 (default: file metadata, then catalog).",
    ),
    dose: float = typer.Option(None, "--dose", callback=positive_option, help="Frame dose, e/A^2 (default: catalog)."),
    estimate_scale: bool = _ESTIMATE_SCALE_OPTION,
    material: str = _MATERIAL_OPTION,
    rescale: bool = typer.Option(
        True, "--rescale/--no-rescale", help="Assume frames are resampled to the training pixel scale."
    ),
    noise_match: bool = typer.Option(
        True,
        "--noise-match/--no-noise-match",
        help="Assume resampled frames get the training scale's pixel noise back.",
    ),
    catalog: Path = typer.Option(None, "--catalog", help="Catalog CSV to look frames up by file name."),
    dataset: Path = typer.Option(
        None, "--train-dataset", help="Training dataset file, when the model does not carry its statistics."
    ),
    json_out: Path = typer.Option(None, "--json", help="Also write the full report (findings, statistics) as JSON."),
    zoo_dir: Path = typer.Option(None, "--zoo-dir", help=_ZOO_HELP),
    frame_index: int = typer.Option(None, "--frame", min=0, help=FRAME_HELP),
    sum_frames: bool = typer.Option(False, "--sum", help=SUM_HELP),
):
    """Report the dataset-shift risk of frames for a model, without predicting."""
    import json

    from temshift.cli import loading_libraries
    from temshift.io.atomic import atomic_write_text

    with loading_libraries():
        from temshift.predict import pipeline, shift  # noqa: F401  (torch, pandas, SciPy: loaded at once)
        from temshift.predict.batch import check_frames

    settings = _settings(pixel_scale, dose, frame_index, sum_frames, rescale, noise_match, estimate_scale, material)
    if json_out:
        output_file(json_out, "--json")
    con = _console()
    preds = check_frames(
        model,
        frames,
        settings,
        catalog=catalog,
        zoo_dir=zoo_dir,
        train_dataset=dataset,
        on_frame=lambda p: _print_frame(con, p),
    )
    if json_out:
        atomic_write_text(json_out, json.dumps([p.report.to_dict() for p in preds if p.report is not None], indent=2))
    _report(preds, "dataset-shift risk", con, len(frames))


@app.command("fetch")
def fetch(
    where: list[str] = typer.Option(
        None, "--where", "-w", help="Condition FIELD=VALUE or FIELD=VALUE±TOL, repeatable (e.g. material=Ag)."
    ),
    dest: Path = typer.Option(..., "--dest", help="Local repository root (published layout <Folder>/<File name>)."),
    labels: bool = typer.Option(False, "--labels", help="Also download <Folder>/Labels/<stem>_label.png."),
    base_url: str = typer.Option(None, "--base-url", help="Repository URL (default: the paper's raw-data portal)."),
    catalog: Path = typer.Option(None, "--catalog", help="Catalog CSV (default: the published one)."),
    timeout: float = typer.Option(60.0, "--timeout", callback=positive_option, help="Network timeout, seconds."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace local files whose size differs from the server's."
    ),
):
    """Download raw frames (and labels) of a catalog subset; resumes, skips complete files, writes DEST/catalog.csv."""
    from temshift.catalog import Catalog, parse_where
    from temshift.catalog.fetch import DEFAULT_BASE_URL
    from temshift.catalog.fetch import fetch as run_fetch
    from temshift.cli.progress import RichReporter

    output_dir(dest, "--dest")
    cat = Catalog.read(catalog) if catalog else Catalog.published()
    cond = parse_where(where)
    if cond:
        cat = cat.query(**cond)
    con = _console()
    report = run_fetch(
        cat,
        dest,
        base_url=base_url or DEFAULT_BASE_URL,
        labels=labels,
        timeout=timeout,
        reporter=RichReporter(con),
        overwrite=overwrite,
    )
    con.print(
        f"{len(report.downloaded)} downloaded, {len(report.resumed)} resumed, {len(report.skipped)} already "
        f"complete ({report.bytes_downloaded / 1e6:.1f} MB) in {dest}; catalog: {report.catalog_path}",
        highlight=False,
    )
