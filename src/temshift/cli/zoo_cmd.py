"""`temshift zoo list|pull|pick`: the authors' released models, chosen by metadata."""

from __future__ import annotations

from pathlib import Path

import typer

from temshift.cli import app
from temshift.cli.common import console

zoo_app = typer.Typer(
    help="The authors' released models (MIT): list, download with SHA-256 check, pick by metadata.",
    no_args_is_help=True,
)
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("list")
def list_models(
    folds: bool = typer.Option(False, "--folds", help="One line per model file instead of per training set."),
    zoo_dir: Path = typer.Option(
        None,
        "--zoo-dir",
        help="Local zoo folder, to show what is pulled (default: $TEMSHIFT_ZOO, else ~/.cache/temshift/zoo).",
    ),
):
    """Show the released models with their training metadata."""
    from rich.table import Table

    from temshift.models import zoo

    folder = zoo.zoo_dir(zoo_dir)
    table = Table(title=f"released models (Sytwu, Rangel DaCosta & Scott; MIT); local: {folder}")
    for col in ("set", "fold" if folds else "folds", "material", "size nm", "nm/px", "e/A2", "session", "local"):
        table.add_column(col, no_wrap=col in ("set", "session"))
    for s in zoo.training_sets():
        rows = [[m] for m in s.models] if folds else [s.models]
        for models in rows:
            have = sum(zoo.is_complete(m, folder) for m in models)
            table.add_row(
                models[0].file if folds else s.name,
                str(models[0].fold) if folds else str(len(models)),
                s.material,
                f"{s.diameter_nm:g}",
                f"{s.pixel_scale_nm:g}",
                f"{s.dose_e_per_A2:g}",
                s.session or "-",
                "yes" if have == len(models) else f"{have}/{len(models)}" if have else "-",
            )
    con = console()
    con.print(table)
    con.print(
        f"{len(zoo.manifest())} of the 50 released models are listed (only files whose SHA-256 is known); "
        "`temshift zoo pull SET --dest DIR` downloads a set's folds.",
        highlight=False,
    )


@zoo_app.command("pull")
def pull(
    names: list[str] = typer.Argument(..., help="Training sets (e.g. 5nmAu330kX423eUTC), model file names, or 'all'."),
    dest: Path = typer.Option(
        None, "--dest", help="Folder to write to (default: the zoo folder, $TEMSHIFT_ZOO or ~/.cache/temshift/zoo)."
    ),
    base_url: str = typer.Option(
        None,
        "--base-url",
        help="URL of the folder holding the released files (default: the authors' GitHub repository).",
    ),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Network timeout, seconds."),
):
    """Download released models, checking each file's SHA-256; complete files are skipped, partial ones resumed."""
    from temshift.models import zoo

    con = console(stderr=True)
    folder = zoo.zoo_dir(dest)

    def on_file(m, status):
        con.print(f"{status:>10}  {m.file}", highlight=False)

    report = zoo.pull(names, folder, base_url=base_url or zoo.DEFAULT_BASE_URL, timeout=timeout, on_file=on_file)
    con.print(
        f"{len(report.downloaded)} downloaded, {len(report.resumed)} resumed, {len(report.skipped)} already "
        f"complete in {folder} (licence: {folder / 'LICENSE'})",
        highlight=False,
    )


@zoo_app.command("pick")
def pick(
    pixel_scale: float = typer.Option(None, "--pixel-scale", help="Frame pixel scale, nm/pixel."),
    dose: float = typer.Option(None, "--dose", help="Frame dose, e/A^2."),
    material: str = typer.Option(None, "--material", help="Particle material, e.g. Au."),
    size: float = typer.Option(None, "--size", help="Particle diameter, nm."),
    top: int = typer.Option(None, "--top", min=1, help="Show only the nearest N training sets."),
):
    """Rank the training sets by distance to a frame's conditions (pixel scale and dose weigh most)."""
    from rich.table import Table

    from temshift.models import zoo

    ranked = zoo.pick(pixel_scale_nm=pixel_scale, dose_e_per_A2=dose, material=material, diameter_nm=size)
    table = Table(title="training sets by distance (see `temshift.models.zoo.distance`)")
    for col in ("rank", "set", "distance", "why"):
        table.add_column(col, no_wrap=col != "why")
    for k, r in enumerate(ranked[:top] if top else ranked, 1):
        table.add_row(str(k), r.set.name, f"{r.distance:.2f}", "; ".join(r.why))
    con = console()
    con.print(table)
    con.print(f"nearest: {zoo.explain(ranked)}", highlight=False)
