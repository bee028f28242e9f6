"""`temshift dataset build|info|import`: build datasets from raw frames, inspect, import published pairs."""

from __future__ import annotations

from pathlib import Path

import typer

from temshift.cli import app
from temshift.cli.common import RESCALE_HELP, output_file, rescale_name

dataset_app = typer.Typer(
    help="Build patch datasets (HDF5) from a catalog and raw frames, inspect them (`info`), import published pairs.",
    no_args_is_help=True,
)
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("build")
def build(
    catalog: Path = typer.Argument(..., help="Catalog CSV in the published schema."),
    name: str = typer.Option(..., "--name", help="Dataset name (stored in the file)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output HDF5 file (written atomically)."),
    root: Path = typer.Option(
        None, "--root", help="Repository root with <folder>/<file>; default: the catalog's folder."
    ),
    where: list[str] = typer.Option(
        None,
        "--where",
        "-w",
        help="Condition FIELD=VALUE or FIELD=VALUE±TOL (or +-), repeatable, e.g. dose_e_per_A2=423±20.",
    ),
    patch_size: int = typer.Option(512, "--patch-size", min=8, help="Patch side in pixels."),
    seed: int = typer.Option(34522, "--seed", min=0, help="Frame shuffle seed (numpy default_rng)."),
    rescale: str = typer.Option("standardize", "--rescale", metavar="METHOD", parser=rescale_name, help=RESCALE_HELP),
    xray_threshold: float = typer.Option(
        1500.0, "--xray-threshold", help="X-ray threshold above the median (counts); 0 skips."
    ),
    flatfield: bool = typer.Option(True, "--flatfield/--no-flatfield", help="Flat-field correction."),
    min_particle_pixels: float = typer.Option(
        None,
        "--min-particle-pixels",
        min=0,
        help="Drop patches with this many particle pixels or fewer; default 400*(patch/512)^2.",
    ),
    workers: int = typer.Option(None, "--workers", min=1, help="Frames processed concurrently (default min(4, CPUs))."),
) -> None:
    """Build a dataset: select frames by metadata, shuffle, preprocess, cut patches, write HDF5.

    Example: temshift dataset build catalog.csv --where material=Au --where "dose_e_per_A2=423±20" --name Au_423e --out Au_423e.h5
    """  # noqa: E501  a command line for --help, one line to copy
    from rich.console import Console

    from temshift.catalog import Catalog, parse_where
    from temshift.cli.progress import RichReporter
    from temshift.datasets import DatasetSpec, build_dataset
    from temshift.preprocess import PreprocessSettings

    output_file(out)
    from pydantic import ValidationError

    from temshift.errors import SpecError

    cat = Catalog.read(catalog)
    try:
        spec = DatasetSpec(
            name=name,
            where=parse_where(where or []),
            preprocess=PreprocessSettings(
                xray_threshold=xray_threshold if xray_threshold > 0 else None, flatfield=flatfield, rescale=rescale
            ),
            patch_size=patch_size,
            seed=seed,
            min_particle_pixels=min_particle_pixels,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(f"invalid dataset setting {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    path = build_dataset(
        cat, root if root is not None else catalog.parent, spec, out, workers=workers, reporter=RichReporter()
    )
    print_summary(path, Console())


@dataset_app.command("info")
def info(path: Path = typer.Argument(..., help="Dataset file (ours, or either file of a published pair).")) -> None:
    """Show a dataset's size, spec, preprocessing and provenance summary."""
    from rich.console import Console

    print_summary(path, Console())


@dataset_app.command("import")
def import_(
    path: Path = typer.Argument(..., help="<name>_Images.h5 of a published pair (its _Labels.h5 beside it)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output file; default <name>.h5 beside the pair."),
) -> None:
    """Register a published pair (<name>_Images.h5 + <name>_Labels.h5) as a temshift dataset file."""
    from rich.console import Console

    from temshift.datasets import import_published

    if out is not None:
        output_file(out)
    written = import_published(path, out)
    print_summary(written, Console())


def print_summary(path, console) -> None:
    """Render `temshift.datasets.dataset_summary` as a rich table."""
    import json

    from rich.table import Table

    from temshift.datasets import dataset_summary

    s = dataset_summary(path)
    a = s["attrs"]
    t = Table(title=f"dataset {a.get('name', Path(path).stem)}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    n, h, w = s["images"][0]
    t.add_row("file", str(path))
    t.add_row("format", f"{a.get('format', '?')} (temshift {a.get('temshift_version', '-')})")
    t.add_row("patches", f"{n} x {h} x {w}  images {s['images'][1]}, labels {s['labels'][1]}")
    t.add_row("particle fraction", f"{100 * s['particle_fraction']:.2f} % of pixels")
    if "n_frames" in a:
        t.add_row("frames", f"{s.get('frames', '?')} with patches, of {a['n_frames']} selected")
    for key, unit in (("pixel_scale_nm", "nm/pixel"), ("dose_e_per_A2", "e/Å²")):
        v = a.get(key)
        if v is not None and v == v:
            t.add_row(key, f"{v:g} {unit}" + (" (median of the frames)" if "n_frames" in a else ""))
    try:
        spec = json.loads(a.get("spec", "{}"))
    except json.JSONDecodeError:
        spec = {}
    if "imported_from" in spec:
        t.add_row("imported from", f"{spec['imported_from'].get('images')} (+ _Labels.h5)")
    if spec.get("where") is not None:
        t.add_row("where", json.dumps(spec["where"], ensure_ascii=False) or "{}")
    if "preprocess" in spec:
        t.add_row("preprocess", json.dumps(spec["preprocess"]))
    if "seed" in spec:
        t.add_row("seed / patch", f"{spec['seed']} / {spec.get('patch_size')}")
    for key in ("spec_hash", "content_hash"):
        if key in a:
            t.add_row(key, str(a[key]))
    console.print(t)
