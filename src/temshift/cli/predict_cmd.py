"""`temshift predict`, `temshift check`, `temshift fetch`: use models on new frames, get real data."""

from __future__ import annotations

from pathlib import Path

import typer

from temshift.cli import app
from temshift.cli.common import console

_MODEL_HELP = "Model: temshift checkpoint (model.pt), released *_model.h5 weights, or a run directory (all model.pt below it form an ensemble)."


def _console():
    return console(stderr=True)


def _frame_info(path: Path, pixel_scale: float | None, dose: float | None, catalog):
    """Read a frame; pixel scale from flag > file metadata > catalog; dose from flag > catalog."""
    import warnings

    from temshift.io import read_frame
    from temshift.predict.pipeline import frame_metadata

    meta = frame_metadata(path, catalog)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = read_frame(path, expected_pixel_scale_nm=meta["pixel_scale_nm"])
    notes = [str(w.message) for w in caught]
    scale = pixel_scale or frame.pixel_scale_nm or meta["pixel_scale_nm"]
    return frame, scale, dose or meta["dose_e_per_A2"], notes


def _load(model: Path, ensemble: list[Path] | None):
    from temshift.predict.pipeline import load_predictor

    return load_predictor([model, *(ensemble or [])])


def _catalog(path: Path | None):
    if path is None:
        return None
    from temshift.catalog import Catalog

    return Catalog.read(path)


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
        own = r.messages(("shift",)) + (["(+ batch findings)"] if r.messages(("batch",)) else [])
        row = [r.frame, f"[{colour[r.level]}]{r.level}[/]", "\n".join(own) or "-"]
        table.add_row(*row, *(["\n".join(r.doubts) or "-"] if doubts else []))
    return table


def _assess_batches(reports, ref) -> list:
    """Batch findings for frames recorded under the same conditions (see `predict.shift.assess_batch`)."""
    from temshift.predict.shift import assess_batch, batch_groups

    return [(group, assess_batch(group, ref)) for group in batch_groups(reports)]


def _print_batches(console, batches) -> None:
    for group, found in batches:
        bad = [f.message for f in found if f.level != "low"]
        if bad:
            s, d = group[0].stats.get("pixel_scale_nm"), group[0].stats.get("dose_e_per_A2")
            cond = ", ".join(x for x in (f"{s:g} nm/px" if s else "", f"{d:g} e/A2" if d else "") if x)
            console.print(f"[yellow]batch of {len(group)} frames{f' ({cond})' if cond else ''}:[/] " + "; ".join(bad),
                          highlight=False)


@app.command("predict")
def predict(
    model: Path = typer.Argument(..., help=_MODEL_HELP),
    frames: list[Path] = typer.Argument(..., help="Raw frames (.dm3, .dm4, .emd, .ser, .tif, .npy)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    pixel_scale: float = typer.Option(None, "--pixel-scale", help="Frame pixel scale, nm/pixel (default: file metadata, then catalog)."),
    dose: float = typer.Option(None, "--dose", help="Frame dose, e/A^2 (default: catalog), for shift warnings."),
    ensemble: list[Path] = typer.Option(None, "--ensemble", help="More models or run directories; probabilities are averaged. Repeatable."),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="Also write the particle probability map (float32 TIFF)."),
    rescale: bool = typer.Option(True, "--rescale/--no-rescale", help="Resample frames to the model's training pixel scale."),
    noise_match: bool = typer.Option(True, "--noise-match/--no-noise-match", help="After resampling, restore the pixel noise a detector at the training scale records (see docs)."),
    strict: bool = typer.Option(False, "--strict", help="Write no mask for high-risk frames (exit code 2 if any)."),
    particles: bool = typer.Option(True, "--particles/--no-particles", help="Particle tables and size histogram."),
    watershed: bool = typer.Option(False, "--watershed", help="Split touching particles (watershed on the distance transform)."),
    catalog: Path = typer.Option(None, "--catalog", help="Catalog CSV to look frames up by file name (default: the published one)."),
    dataset: Path = typer.Option(None, "--train-dataset", help="Training dataset file, when the model does not carry its statistics."),
    tile: int = typer.Option(2048, "--tile", help="Largest tile edge, pixels (larger tiles waste less on overlap, need more memory)."),
    batch_size: int = typer.Option(1, "--batch-size", help="Tiles per forward pass."),
    threads: int = typer.Option(None, "--threads", help="Torch CPU threads (default: torch's; 1 is faster on a busy machine)."),
    tta: bool = typer.Option(False, "--tta", help="Test-time augmentation: average each model over the 8 dihedral variants (8x the time); with it or an ensemble, also a per-pixel SD map (<stem>_std.tif) and per-particle confidence."),
):
    """Segment whole raw frames: masks (PNG, TIFF), overlays, particle tables, risk report."""
    from temshift.io import write_label_png, write_tiff_frame
    from temshift.predict import outputs, particles as parts
    from temshift.predict.pipeline import predict_frame
    from temshift.predict.shift import assess_shift, frame_statistics

    con = _console()
    cat = _catalog(catalog)
    predictor = _load(model, ensemble)
    if threads:
        import torch

        torch.set_num_threads(threads)
    ref = predictor.training_reference(dataset)
    out.mkdir(parents=True, exist_ok=True)
    reports, tables, refused = [], {}, []
    for path in frames:
        frame, scale, frame_dose, notes = _frame_info(path, pixel_scale, dose, cat)
        for n in notes:
            con.print(f"[yellow]warning:[/] {n}", highlight=False)
        with con.status(f"segmenting {path.name} ({len(predictor.models)} model(s){' x 8 variants' if tta else ''})"):
            pred = predict_frame(predictor, frame, scale, rescale=rescale, match_noise=noise_match, tile=tile,
                                 batch_size=batch_size, tta=tta)
            stats = frame_statistics(pred.model_input, pixel_scale_nm=scale, input_pixel_scale_nm=pred.input_pixel_scale_nm,
                                     rescaled=pred.zoom != 1.0, dose_e_per_A2=frame_dose, mask=pred.input_mask,
                                     tile=predictor.patch_size, native_image=pred.native_input, zoom=pred.zoom)
        report = assess_shift(stats, ref, path.name, rescale_requested=rescale)
        reports.append(report)
        stem = path.stem
        if strict and report.level == "high":
            refused.append(path.name)
            con.print(f"[bold red]refused:[/] {path.name}: high risk, no mask written ({'; '.join(report.reasons)})",
                      highlight=False)
            continue
        write_label_png(out / f"{stem}_mask.png", pred.mask)
        outputs.write_mask_tiff(out / f"{stem}_mask.tif", pred.mask, scale)
        outputs.write_overlay_png(out / f"{stem}_overlay.png", frame.data, pred.mask)
        if save_probabilities:
            write_tiff_frame(out / f"{stem}_probability.tif", pred.probabilities, scale)
        if pred.std is not None:
            write_tiff_frame(out / f"{stem}_std.tif", pred.std, scale)
        if particles:
            spread = {} if pred.std is None else {"probabilities": pred.probabilities, "std": pred.std,
                                                  "members": pred.members}
            table = parts.particle_table(pred.mask, scale, watershed=watershed, **spread)
            parts.write_particle_csv(table, out / f"{stem}_particles.csv")
            tables[path.name] = table
    if particles and tables:
        combined = parts.combine_tables(tables)
        parts.write_particle_csv(combined, out / "particles.csv")
        hist = parts.size_histogram_table(combined, list(tables))
        parts.write_particle_csv(parts.particle_summary(combined, list(tables)), out / "particle_summary.csv")
        parts.write_particle_csv(hist, out / "size_histogram.csv")
        parts.size_histogram_png(combined, out / "size_histogram.png", ci=hist)
    batches = _assess_batches(reports, ref)
    outputs.write_risk_reports(out, reports)
    from rich.console import Console

    Console().print(_risk_table(reports, f"dataset-shift risk ({out / 'risk.json'})"))
    _print_batches(Console(), batches)
    if refused:
        con.print(f"[bold red]{len(refused)} high-risk frame(s) without mask (--strict)[/]")
        raise typer.Exit(2)


@app.command("check")
def check(
    model: Path = typer.Argument(..., help=_MODEL_HELP),
    frames: list[Path] = typer.Argument(..., help="Raw frames."),
    pixel_scale: float = typer.Option(None, "--pixel-scale", help="Frame pixel scale, nm/pixel (default: file metadata, then catalog)."),
    dose: float = typer.Option(None, "--dose", help="Frame dose, e/A^2 (default: catalog)."),
    rescale: bool = typer.Option(True, "--rescale/--no-rescale", help="Assume frames are resampled to the training pixel scale."),
    noise_match: bool = typer.Option(True, "--noise-match/--no-noise-match", help="Assume resampled frames get the training scale's pixel noise back."),
    catalog: Path = typer.Option(None, "--catalog", help="Catalog CSV to look frames up by file name."),
    dataset: Path = typer.Option(None, "--train-dataset", help="Training dataset file, when the model does not carry its statistics."),
    json_out: Path = typer.Option(None, "--json", help="Also write the full report (findings, statistics) as JSON."),
):
    """Report the dataset-shift risk of frames for a model, without predicting."""
    import json

    from temshift.io.atomic import atomic_write_text
    from temshift.predict.pipeline import model_input
    from temshift.predict.shift import assess_shift, frame_statistics

    con = _console()
    cat = _catalog(catalog)
    predictor = _load(model, None)
    ref = predictor.training_reference(dataset)
    reports = []
    for path in frames:
        frame, scale, frame_dose, notes = _frame_info(path, pixel_scale, dose, cat)
        for n in notes:
            con.print(f"[yellow]warning:[/] {n}", highlight=False)
        image, zoom, native = model_input(frame.data, predictor.preprocess, scale, predictor.pixel_scale_nm, rescale,
                                          return_native=True, match_noise=noise_match)
        in_scale = scale / zoom if scale else predictor.pixel_scale_nm
        stats = frame_statistics(image, pixel_scale_nm=scale, input_pixel_scale_nm=in_scale, rescaled=zoom != 1.0,
                                 dose_e_per_A2=frame_dose, tile=predictor.patch_size, native_image=native, zoom=zoom)
        reports.append(assess_shift(stats, ref, path.name, rescale_requested=rescale))
    batches = _assess_batches(reports, ref)
    if json_out:
        atomic_write_text(json_out, json.dumps([r.to_dict() for r in reports], indent=2))
    from rich.console import Console

    Console().print(_risk_table(reports, "dataset-shift risk"))
    _print_batches(Console(), batches)


@app.command("fetch")
def fetch(
    where: list[str] = typer.Option(None, "--where", "-w", help="Condition FIELD=VALUE or FIELD=VALUE±TOL, repeatable (e.g. material=Ag)."),
    dest: Path = typer.Option(..., "--dest", help="Local repository root (published layout <Folder>/<File name>)."),
    labels: bool = typer.Option(False, "--labels", help="Also download <Folder>/Labels/<stem>_label.png."),
    base_url: str = typer.Option(None, "--base-url", help="Repository URL (default: the paper's raw-data portal)."),
    catalog: Path = typer.Option(None, "--catalog", help="Catalog CSV (default: the published one)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Network timeout, seconds."),
):
    """Download raw frames (and labels) of a catalog subset; resumes and skips complete files."""
    from temshift.catalog import Catalog, parse_where
    from temshift.predict.fetch import DEFAULT_BASE_URL, fetch as run_fetch

    cat = Catalog.read(catalog) if catalog else Catalog.published()
    cond = parse_where(where)
    if cond:
        cat = cat.query(**cond)
    con = _console()
    report = run_fetch(cat, dest, base_url=base_url or DEFAULT_BASE_URL, labels=labels, timeout=timeout, console=con)
    con.print(f"{len(report.downloaded)} downloaded, {len(report.resumed)} resumed, {len(report.skipped)} already "
              f"complete ({report.bytes_downloaded / 1e6:.1f} MB) in {dest}", highlight=False)
