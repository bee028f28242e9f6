"""`temshift catalog ...`: query the metadata table."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from temshift.cli import app
from temshift.cli.common import console as _console

catalog_app = typer.Typer(help="Query the metadata table of raw frames.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def load_catalog(spec: str):
    """A catalog from a CSV path, or the packaged published table for 'published'."""
    from temshift.catalog import Catalog

    return Catalog.published() if spec == "published" else Catalog.read(Path(spec))


@catalog_app.command("query")
def query(
    catalog: str = typer.Argument(
        ..., help="Catalog CSV in the published schema, or 'published' for the packaged table."
    ),
    where: list[str] = typer.Option(
        [],
        "--where",
        "-w",
        help="Condition FIELD=VALUE or FIELD=VALUE±TOL ('+-' works too); repeat to combine. "
        "Fields: normalized names (material, diameter_nm, dose_e_per_A2, pixel_scale_nm, session, ...) "
        "or the published column names.",
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format."),
) -> None:
    """Print the frames that match every condition."""
    from temshift.catalog import FIELDS, parse_where

    result = load_catalog(catalog).query(**parse_where(where))
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(result.records(), indent=1, default=str))
    elif fmt is OutputFormat.csv:
        typer.echo(result.df.to_csv(index=False), nl=False)
    else:
        from rich.table import Table

        shown = [f for f in FIELDS if f != "session"]
        table = Table(title=f"{len(result)} frame(s) — {result.source}", show_lines=False)
        for f in shown:
            table.add_column(f, overflow="fold")
        for rec in result.records(shown):
            table.add_row(*(f"{v:g}" if isinstance(v, float) else str(v) for v in rec.values()))
        _console().print(table)


@catalog_app.command("summary")
def summary(
    catalog: str = typer.Argument(..., help="Catalog CSV, or 'published'."),
    where: list[str] = typer.Option([], "--where", "-w", help="Conditions as in `catalog query`."),
) -> None:
    """Count frames per (session, material, size, dose, pixel scale) group."""
    from rich.table import Table

    from temshift.catalog import parse_where

    result = load_catalog(catalog).query(**parse_where(where))
    keys = ["date", "folder", "material", "diameter_nm", "dose_e_per_A2", "pixel_scale_nm"]
    groups = result.df.groupby(keys, sort=True).size().reset_index(name="frames")
    table = Table(title=f"{len(result)} frame(s) in {len(groups)} group(s)")
    for k in [*keys, "frames"]:
        table.add_column(k, overflow="fold")
    for rec in groups.to_dict("records"):
        table.add_row(*(f"{v:g}" if isinstance(v, float) else str(v) for v in rec.values()))
    _console().print(table)
