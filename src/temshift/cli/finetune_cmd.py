"""`temshift finetune`: adapt a model to a user's own labelled frames (logic in training/finetune.py)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from temshift.cli import app


class FreezeChoice(str, Enum):
    """Part of the network kept fixed while fine-tuning."""

    decoder = "decoder"
    encoder = "encoder"
    none = "none"


@app.command("finetune")
def finetune(
    model: str = typer.Argument(
        ...,
        help="Base model: temshift checkpoint, released *_model.h5, a run directory "
        "with one model.pt, the shipped 'generalist', or a zoo training set / file name "
        "(pulled with `temshift zoo pull`).",
    ),
    images: Path = typer.Option(
        ..., "--images", help="Folder of frames (.png/.jpg 8-bit, .tif, .dm3/.dm4, .emd, .ser, .npy)."
    ),
    labels: Path = typer.Option(
        ...,
        "--labels",
        help="Folder of label masks (.png/.tif, nonzero = particle), paired "
        "by name: image_K <-> label_K, NAME <-> NAME or NAME_label.",
    ),
    out: Path = typer.Option(..., "--out", help="Run folder (model.pt, frames.h5, history.csv, result.json)."),
    freeze: FreezeChoice = typer.Option(
        FreezeChoice.decoder,
        "--freeze",
        help="Keep the decoder (up path + final conv), the encoder (down path + bottleneck) or nothing fixed.",
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default 60)."),
    pixel_scale: float | None = typer.Option(
        None,
        "--pixel-scale",
        help="Pixel scale of the frames, nm/pixel (default: file metadata; unknown = frames used on their own grid).",
    ),
    val_frames: int = typer.Option(
        0,
        "--val-frames",
        help="Hold out the last N frames to choose the best epoch (default 0: the training loss chooses).",
    ),
    learning_rate: float | None = typer.Option(None, "--lr", help="Adam learning rate (default 1e-3)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size (default 8)."),
    patch_crop: int | None = typer.Option(
        None, "--patch-crop", help="Train on random crops of this size (default 256; 0 = whole patches)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of batch order and augmentation (default 962)."),
    zoo_dir: Path | None = typer.Option(
        None, "--zoo-dir", help="Local zoo folder for zoo names (default: $TEMSHIFT_ZOO, else ~/.cache/temshift/zoo)."
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    threads: int | None = typer.Option(None, "--threads", help="torch threads."),
):
    """Fine-tune a model on a few labelled frames of your own; an interrupted run resumes.

    The frames get the base model's preprocessing and pixel-scale matching, as at prediction;
    RUN/model.pt is a normal checkpoint for `temshift predict`. Details: docs/finetune.md.
    """
    from rich.console import Console

    from temshift.cli.model_cmd import _settings
    from temshift.cli.progress import RichReporter
    from temshift.training import TrainSettings
    from temshift.training.finetune import FINETUNE_DEFAULTS, STATE_FILE, resolve_base
    from temshift.training.finetune import finetune as run
    from temshift.training.fold import epochs_done
    from temshift.training.labelled_frames import pair_frames

    values: dict[str, object] = {
        **FINETUNE_DEFAULTS,
        **{
            k: v
            for k, v in {
                "epochs": epochs,
                "learning_rate": learning_rate,
                "batch_size": batch_size,
                "seed": seed,
                "threads": threads,
            }.items()
            if v is not None
        },
    }
    if patch_crop is not None:
        values["patch_crop"] = patch_crop or None
    settings = _settings(TrainSettings, values, device=device)
    console = Console()
    pairs = pair_frames(images, labels)
    base, note = resolve_base(model, zoo_dir)
    if note:
        console.print(note, highlight=False, soft_wrap=True)
    console.print(
        f"fine-tuning {base.name} on {len(pairs) - val_frames} frame(s)"
        + (f" (+{val_frames} for validation)" if val_frames else "")
        + f", {freeze.value} frozen, {settings.epochs} epochs -> {out}",
        highlight=False,
        soft_wrap=True,
    )
    try:
        result = run(
            base,
            pairs,
            out,
            freeze=freeze.value,
            settings=settings,
            pixel_scale_nm=pixel_scale,
            val_frames=val_frames,
            zoo_dir=zoo_dir,
            reporter=RichReporter(console),
        )
    except KeyboardInterrupt:
        Console(stderr=True).print(
            f"[yellow]interrupted:[/] {epochs_done(out)} of {settings.epochs} epochs saved in {out / STATE_FILE}; "
            "run the same command again to resume from there",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    zooms = sorted(set(result.zoom))
    own = result.base_pixel_scale_nm
    scale_note = (
        "frames used on their own pixel grid (pixel scale unknown"
        + (f": taken as the base's training scale, {own:g} nm/px)" if own else ")")
        if zooms == [1.0]
        else f"frames resampled by x{', x'.join(f'{z:.3g}' for z in zooms)}"
    )
    console.print(
        f"best epoch {result.best_epoch} of {result.epochs_run}, loss {result.best_loss:.4f}, "
        f"{result.seconds:.0f} s training; {scale_note} -> {result.model_path}",
        highlight=False,
        soft_wrap=True,
    )
