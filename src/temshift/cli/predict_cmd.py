"""`temshift predict`, `temshift check`, `temshift fetch`: use models on new frames, get real data."""

from __future__ import annotations

from pathlib import Path

import typer

from temshift.cli import app
from temshift.cli.common import (FRAME_HELP, SUM_HELP, console, frame_choice, named, output_dir, output_file,
                                 pixel_scale_option, positive_option)

_MODEL_HELP = ("Model: temshift checkpoint (model.pt), released *_model.h5 weights, a run directory (all model.pt below "
               "it form an ensemble), zoo:auto (per frame, the nearest released training set; see `temshift zoo`), or "
               "generalist (the model shipped in the package, see `temshift pretrain`).")
_ZOO_HELP = "Local zoo folder for zoo:auto (default: $TEMSHIFT_ZOO, else ~/.cache/temshift/zoo)."


def _console():
    return console(stderr=True)


def _frame_info(path: Path, pixel_scale: float | None, dose: float | None, catalog, which=None):
    """Read a frame; pixel scale from flag > file metadata > catalog; dose from flag > catalog."""
    import warnings

    from temshift.io import read_frame
    from temshift.predict.pipeline import frame_metadata
    from temshift.units import check_pixel_scale_nm

    meta = frame_metadata(path, catalog)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = read_frame(path, expected_pixel_scale_nm=meta["pixel_scale_nm"], frame=which)
    notes = [str(w.message) for w in caught]
    scale = pixel_scale or frame.pixel_scale_nm or meta["pixel_scale_nm"]
    if scale and not pixel_scale:  # a recorded size outside the range: say where it came from
        where = "recorded in the file" if frame.pixel_scale_nm else "from the catalog"
        scale = check_pixel_scale_nm(scale, f"{path}: pixel scale {where} (pass --pixel-scale)",
                                     suggest_unit=not frame.pixel_scale_nm)
    return frame, scale, dose or meta["dose_e_per_A2"], notes


def _chooser(model: Path, ensemble: list[Path] | None, zoo_dir: Path | None, dataset: Path | None = None):
    """Model resolution: a fixed model / ensemble, or zoo:auto (see `predict.zoo.ModelChooser`)."""
    from temshift.predict.zoo import ModelChooser

    return ModelChooser(model, ensemble, zoo_dir, dataset)


def _choose(chooser, path: Path, scale, dose, cat, con):
    """The models for one frame; prints what zoo:auto picked and why."""
    extra = {}
    if chooser.auto:
        from temshift.predict.zoo import catalog_conditions

        extra = catalog_conditions(path, cat)
    choice = chooser.for_frame(pixel_scale_nm=scale, dose_e_per_A2=dose, name=path.name, **extra)
    if choice.note:
        con.print(choice.note, highlight=False)
    return choice


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
        own = r.messages(("shift",)) + (["(+ batch findings)"] if r.messages(("batch",)) else []) + \
            [f"[dim]{m}[/]" for m in r.not_compared]
        row = [r.frame, f"[{colour[r.level]}]{r.level}[/]", "\n".join(own) or "-"]
        table.add_row(*row, *(["\n".join(r.doubts) or "-"] if doubts else []))
    return table


def _frame_and_models(path: Path, pixel_scale, dose, cat, which, chooser, con):
    """Read one frame (warnings printed), resolve its metadata and the models it goes to."""
    frame, scale, frame_dose, notes = _frame_info(path, pixel_scale, dose, cat, which)
    for n in notes:
        con.print(f"[yellow]warning:[/] {n}", highlight=False)
    return frame, scale, frame_dose, _choose(chooser, path, scale, frame_dose, cat, con)


def _failure(console, path: Path, exc: Exception) -> str:
    """Print and return the one-line reason a frame failed (its file named once)."""
    from temshift.errors import TemshiftError

    text = (str(exc).strip().splitlines() or [""])[0]
    reason = text if isinstance(exc, TemshiftError) else f"{type(exc).__name__}: {text}".rstrip(": ")
    line = reason if str(path) in reason else f"{path}: {reason}"
    console.print(f"[bold red]failed:[/] {line}", highlight=False, soft_wrap=True)
    return line


def _exit_if_failed(console, failed: list[str], n_frames: int) -> None:
    """After the outputs of the good frames are written: list the failed frames, exit 1."""
    if not failed:
        return
    console.print(f"[bold red]{len(failed)} of {n_frames} frame(s) failed[/] (the others' outputs are written):",
                  highlight=False)
    for line in failed:
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _assess_batches(reports, refs, keys) -> list:
    """Batch findings for frames recorded alike and given to the same models (`predict.shift.assess_batch`)."""
    from temshift.predict.shift import assess_batch, batch_groups

    out = []
    for key in dict.fromkeys(keys):
        mine = [r for r, k in zip(reports, keys) if k == key]
        out += [(group, assess_batch(group, refs[key])) for group in batch_groups(mine)]
    return out


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
    frames: list[Path] = typer.Argument(..., help="Raw frames (.dm3, .dm4, .emd, .ser/.emi, .tif, .png, .jpg, .npy)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    pixel_scale: float = typer.Option(None, "--pixel-scale", callback=pixel_scale_option, help="Frame pixel scale, nm/pixel, 0.001-10 (default: file metadata, then catalog)."),
    dose: float = typer.Option(None, "--dose", callback=positive_option, help="Frame dose, e/A^2 (default: catalog), for shift warnings."),
    ensemble: list[Path] = typer.Option(None, "--ensemble", help="More models or run directories; probabilities are averaged. Repeatable."),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="Also write the particle probability map (float32 TIFF)."),
    rescale: bool = typer.Option(True, "--rescale/--no-rescale", help="Resample frames to the model's training pixel scale."),
    noise_match: bool = typer.Option(True, "--noise-match/--no-noise-match", help="After resampling, restore the pixel noise a detector at the training scale records (see docs)."),
    strict: bool = typer.Option(False, "--strict", help="Write no mask for high-risk frames (exit code 2 if any)."),
    particles: bool = typer.Option(True, "--particles/--no-particles", help="Particle tables and size histogram."),
    watershed: bool = typer.Option(False, "--watershed", help="Split touching particles (watershed on the distance transform)."),
    catalog: Path = typer.Option(None, "--catalog", help="Catalog CSV to look frames up by file name (default: the published one)."),
    dataset: Path = typer.Option(None, "--train-dataset", help="Training dataset file, when the model does not carry its statistics."),
    tile: int = typer.Option(2048, "--tile", min=272, help="Largest tile edge, pixels, at least 272 = 2 x overlap + 16 (larger tiles waste less on overlap, need more memory)."),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Tiles per forward pass."),
    threads: int = typer.Option(None, "--threads", min=1, help="Torch CPU threads (default: torch's; 1 is faster on a busy machine)."),
    frame_index: int = typer.Option(None, "--frame", min=0, help=FRAME_HELP),
    sum_frames: bool = typer.Option(False, "--sum", help=SUM_HELP),
    zoo_dir: Path = typer.Option(None, "--zoo-dir", help=_ZOO_HELP),
    tta: bool = typer.Option(False, "--tta", help="Test-time augmentation: average each model over the 8 dihedral variants (8x the time); with it or an ensemble, also a per-pixel SD map (<stem>_std.tif) and per-particle confidence."),
):
    """Segment whole raw frames: masks (PNG, TIFF), overlays, particle tables, risk report."""
    from temshift.io import write_label_png, write_tiff_frame
    from temshift.predict import outputs, particles as parts
    from temshift.predict.naming import unique_frame_names
    from temshift.predict.pipeline import predict_frame
    from temshift.predict.shift import assess_shift, frame_statistics

    which = frame_choice(frame_index, sum_frames)
    output_dir(out)
    con = _console()
    cat = _catalog(catalog)
    chooser = _chooser(model, ensemble, zoo_dir, dataset)
    if threads:
        import torch

        torch.set_num_threads(threads)
    reports, tables, refused, keys, refs, failed = [], {}, [], [], {}, []
    for path, (name, stem) in zip(frames, unique_frame_names(frames)):  # same-named frames get distinct outputs
        try:  # one bad frame does not stop the batch
            frame, scale, frame_dose, choice = _frame_and_models(path, pixel_scale, dose, cat, which, chooser, con)
            predictor, ref = choice.predictor, choice.reference
            with con.status(f"segmenting {name} ({len(predictor.models)} model(s){' x 8 variants' if tta else ''})"), named(path):
                pred = predict_frame(predictor, frame, scale, rescale=rescale, match_noise=noise_match, tile=tile,
                                     batch_size=batch_size, tta=tta)
                stats = frame_statistics(pred.model_input, pixel_scale_nm=scale,
                                         input_pixel_scale_nm=pred.input_pixel_scale_nm, rescaled=pred.zoom != 1.0,
                                         dose_e_per_A2=frame_dose, mask=pred.input_mask, tile=predictor.patch_size,
                                         native_image=pred.native_input, zoom=pred.zoom)
        except Exception as exc:  # noqa: BLE001 -- reported per frame and in the exit code
            failed.append(_failure(con, path, exc))
            continue
        keys.append(choice.key)
        refs[choice.key] = ref
        report = assess_shift(stats, ref, name, rescale_requested=rescale)
        reports.append(report)
        if strict and report.level == "high":
            refused.append(name)
            con.print(f"[bold red]refused:[/] {name}: high risk, no mask written ({'; '.join(report.reasons)})",
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
            tables[name] = table
    if particles and tables:
        combined = parts.combine_tables(tables)
        parts.write_particle_csv(combined, out / "particles.csv")
        hist = parts.size_histogram_table(combined, list(tables))
        parts.write_particle_csv(parts.particle_summary(combined, list(tables)), out / "particle_summary.csv")
        parts.write_particle_csv(hist, out / "size_histogram.csv")
        parts.size_histogram_png(combined, out / "size_histogram.png", ci=hist)
    batches = _assess_batches(reports, refs, keys)
    outputs.write_risk_reports(out, reports)
    from rich.console import Console

    Console().print(_risk_table(reports, f"dataset-shift risk ({out / 'risk.json'})"))
    _print_batches(Console(), batches)
    _exit_if_failed(con, failed, len(frames))
    if refused:
        con.print(f"[bold red]{len(refused)} high-risk frame(s) without mask (--strict)[/]")
        raise typer.Exit(2)


@app.command("check")
def check(
    model: Path = typer.Argument(..., help=_MODEL_HELP),
    frames: list[Path] = typer.Argument(..., help="Raw frames."),
    pixel_scale: float = typer.Option(None, "--pixel-scale", callback=pixel_scale_option, help="Frame pixel scale, nm/pixel, 0.001-10 (default: file metadata, then catalog)."),
    dose: float = typer.Option(None, "--dose", callback=positive_option, help="Frame dose, e/A^2 (default: catalog)."),
    rescale: bool = typer.Option(True, "--rescale/--no-rescale", help="Assume frames are resampled to the training pixel scale."),
    noise_match: bool = typer.Option(True, "--noise-match/--no-noise-match", help="Assume resampled frames get the training scale's pixel noise back."),
    catalog: Path = typer.Option(None, "--catalog", help="Catalog CSV to look frames up by file name."),
    dataset: Path = typer.Option(None, "--train-dataset", help="Training dataset file, when the model does not carry its statistics."),
    json_out: Path = typer.Option(None, "--json", help="Also write the full report (findings, statistics) as JSON."),
    zoo_dir: Path = typer.Option(None, "--zoo-dir", help=_ZOO_HELP),
    frame_index: int = typer.Option(None, "--frame", min=0, help=FRAME_HELP),
    sum_frames: bool = typer.Option(False, "--sum", help=SUM_HELP),
):
    """Report the dataset-shift risk of frames for a model, without predicting."""
    import json

    from temshift.io.atomic import atomic_write_text
    from temshift.predict.naming import unique_frame_names
    from temshift.predict.pipeline import model_input
    from temshift.predict.shift import assess_shift, frame_statistics

    which = frame_choice(frame_index, sum_frames)
    if json_out:
        output_file(json_out, "--json")
    con = _console()
    cat = _catalog(catalog)
    chooser = _chooser(model, None, zoo_dir, dataset)
    reports, keys, refs, failed = [], [], {}, []
    for path, (name, _) in zip(frames, unique_frame_names(frames)):
        try:  # one bad frame does not stop the batch
            frame, scale, frame_dose, choice = _frame_and_models(path, pixel_scale, dose, cat, which, chooser, con)
            predictor, ref = choice.predictor, choice.reference
            with named(path):
                image, zoom, native = model_input(frame.data, predictor.preprocess, scale, predictor.pixel_scale_nm,
                                                  rescale, return_native=True, match_noise=noise_match)
            in_scale = scale / zoom if scale else predictor.pixel_scale_nm
            stats = frame_statistics(image, pixel_scale_nm=scale, input_pixel_scale_nm=in_scale, rescaled=zoom != 1.0,
                                     dose_e_per_A2=frame_dose, tile=predictor.patch_size, native_image=native,
                                     zoom=zoom)
        except Exception as exc:  # noqa: BLE001 -- reported per frame and in the exit code
            failed.append(_failure(con, path, exc))
            continue
        keys.append(choice.key)
        refs[choice.key] = ref
        reports.append(assess_shift(stats, ref, name, rescale_requested=rescale))
    batches = _assess_batches(reports, refs, keys)
    if json_out:
        atomic_write_text(json_out, json.dumps([r.to_dict() for r in reports], indent=2))
    from rich.console import Console

    Console().print(_risk_table(reports, "dataset-shift risk"))
    _print_batches(Console(), batches)
    _exit_if_failed(con, failed, len(frames))


@app.command("fetch")
def fetch(
    where: list[str] = typer.Option(None, "--where", "-w", help="Condition FIELD=VALUE or FIELD=VALUE±TOL, repeatable (e.g. material=Ag)."),
    dest: Path = typer.Option(..., "--dest", help="Local repository root (published layout <Folder>/<File name>)."),
    labels: bool = typer.Option(False, "--labels", help="Also download <Folder>/Labels/<stem>_label.png."),
    base_url: str = typer.Option(None, "--base-url", help="Repository URL (default: the paper's raw-data portal)."),
    catalog: Path = typer.Option(None, "--catalog", help="Catalog CSV (default: the published one)."),
    timeout: float = typer.Option(60.0, "--timeout", callback=positive_option, help="Network timeout, seconds."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace local files whose size differs from the server's."),
):
    """Download raw frames (and labels) of a catalog subset; resumes, skips complete files, writes DEST/catalog.csv."""
    from temshift.catalog import Catalog, parse_where
    from temshift.catalog.fetch import DEFAULT_BASE_URL, fetch as run_fetch
    from temshift.cli.progress import RichReporter

    output_dir(dest, "--dest")
    cat = Catalog.read(catalog) if catalog else Catalog.published()
    cond = parse_where(where)
    if cond:
        cat = cat.query(**cond)
    con = _console()
    report = run_fetch(cat, dest, base_url=base_url or DEFAULT_BASE_URL, labels=labels, timeout=timeout,
                       reporter=RichReporter(con), overwrite=overwrite)
    con.print(f"{len(report.downloaded)} downloaded, {len(report.resumed)} resumed, {len(report.skipped)} already "
              f"complete ({report.bytes_downloaded / 1e6:.1f} MB) in {dest}; catalog: {report.catalog_path}",
              highlight=False)
