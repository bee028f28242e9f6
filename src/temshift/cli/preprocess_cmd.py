"""`temshift preprocess`: preprocess full frames to float32 .npy for inspection and tools."""

from __future__ import annotations

from pathlib import Path

import typer

from temshift.cli import app
from temshift.cli.common import FRAME_HELP, RESCALE_HELP, SUM_HELP, frame_choice, output_dir, rescale_name
from temshift.errors import named


@app.command("preprocess")
def preprocess(
    frames: list[Path] = typer.Argument(..., help="Raw frames (.dm3 .dm4 .emd .ser/.emi .tif .tiff .png .jpg .npy)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for <stem>.npy and <stem>.json."),
    xray_threshold: float = typer.Option(
        1500.0,
        "--xray-threshold",
        help="Counts above the frame median that mark an x-ray spike; 0 or less skips the step.",
    ),
    flatfield: bool = typer.Option(
        True, "--flatfield/--no-flatfield", help="Divide by a fitted Bernstein (2,2) background."
    ),
    rescale: str = typer.Option("standardize", "--rescale", metavar="METHOD", parser=rescale_name, help=RESCALE_HELP),
    frame_index: int = typer.Option(None, "--frame", min=0, help=FRAME_HELP),
    sum_frames: bool = typer.Option(False, "--sum", help=SUM_HELP),
) -> None:
    """Preprocess full frames (x-rays, flat field, rescale; no patching).

    Writes each result as float32 OUT/<stem>.npy and a JSON sidecar OUT/<stem>.json with the settings, the source file and its pixel size.
    """  # noqa: E501  typer prints the docstring's lines as they are: one line for --help
    import json

    import numpy as np
    from rich.console import Console
    from rich.progress import track

    from temshift.io import read_frame
    from temshift.io.atomic import atomic_path, atomic_write_text
    from temshift.preprocess import PreprocessSettings, preprocess_frame

    settings = PreprocessSettings(
        xray_threshold=xray_threshold if xray_threshold > 0 else None, flatfield=flatfield, rescale=rescale
    )
    stems = [f.stem for f in frames]
    dup = {s for s in stems if stems.count(s) > 1}
    if dup:
        from temshift.errors import FrameReadError

        raise FrameReadError(f"two input frames share the name {sorted(dup)[0]!r}; their outputs would collide")
    which = frame_choice(frame_index, sum_frames)
    output_dir(out)
    console = Console(stderr=True)
    for path in track(frames, description="preprocessing", console=console, disable=len(frames) < 2):
        frame = read_frame(path, frame=which)
        with named(path):
            img = preprocess_frame(frame.data, settings)
        target = out / f"{path.stem}.npy"
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.save(fh, img)
        sidecar = {
            "source": str(path),
            "shape": list(img.shape),
            "dtype": "float32",
            "pixel_scale_nm": frame.pixel_scale_nm,
            "preprocess": settings.model_dump(mode="json"),
        }
        atomic_write_text(out / f"{path.stem}.json", json.dumps(sidecar, indent=2) + "\n")
        console.print(f"{path} -> {target}", highlight=False)
