"""`temshift simulate`: write a synthetic raw repository (abTEM) mirroring a catalog."""

from __future__ import annotations

from pathlib import Path

import typer

from temshift.cli import app
from temshift.cli.common import output_dir, output_file, specimen_option


@app.command("simulate")
def simulate(
    out: Path = typer.Option(..., "--out", help="Repository root to write (created; existing frames are kept)."),
    catalog: Path | None = typer.Option(None, "--catalog", help="Catalog CSV to mirror (default: the published one)."),
    where: list[str] | None = typer.Option(None, "--where", help="Row selection FIELD=VALUE[±TOL]; repeatable."),
    frames_per_group: int | None = typer.Option(
        None, "--frames-per-group", help="At most N frames per (folder, material, size, dose, pixel scale) group."
    ),
    frame_size: int | None = typer.Option(None, "--frame-size", help="Frame side in pixels (default 4096)."),
    mode: str = typer.Option("multislice", "--mode", help="Particle scattering: multislice or projection (faster)."),
    seed: int = typer.Option(0, "--seed", help="Run seed (frames are deterministic for a seed)."),
    workers: int | None = typer.Option(None, "--workers", help="Dask worker processes (default: all cores)."),
    density: float = typer.Option(1.0, "--density", help="Multiplier of the default particle area fraction."),
    specimen: list[str] | None = typer.Option(
        None,
        "--specimen",
        metavar="KEY=VALUE",
        help="Specimen condition of every frame instead of the simulator's draw: support_thickness_A (film, A), "
        "cluster_fraction (0-1), illumination_scale (>= 0, 1 = as drawn); repeatable. Recorded in each sidecar.",
    ),
    preview: Path | None = typer.Option(None, "--preview", help="Also write a PNG page of example frames."),
) -> None:
    """Simulate raw HRTEM frames and exact labels in the published repository layout."""
    from rich.console import Console

    from temshift.cli.progress import RichReporter
    from temshift.simulate.repository import simulate_repository

    specimen_options = specimen_option(specimen)  # checked before anything is created
    output_dir(out)
    if preview is not None:
        output_file(preview, "--preview")
    console = Console(stderr=True)
    result = simulate_repository(
        out,
        catalog=catalog,
        where=where,
        frames_per_group=frames_per_group,
        frame_size=frame_size,
        mode=mode,
        seed=seed,
        workers=workers,
        density=density,
        specimen=specimen_options,
        reporter=RichReporter(),
    )
    console.print(f"{len(result)} frames in {out} (catalog: {out / 'catalog.csv'})", highlight=False)
    if preview is not None:
        from temshift.simulate.preview import write_preview

        write_preview(out, preview)
        console.print(f"preview: {preview}", highlight=False)
