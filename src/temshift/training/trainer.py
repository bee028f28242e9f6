"""The training loop: Adam + cross-entropy, best-validation weights, resumable per epoch.

Randomness comes only from generators derived from ``(seed, epoch, stream)``, so a run is
reproducible on CPU for a given seed and an interrupted run resumes exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from temshift.errors import CheckpointError, TemshiftError
from temshift.models.inference import forward
from temshift.models.metrics import MetricSums
from temshift.models.runtime import autocast
from temshift.progress import Reporter, reporter_or_log
from temshift.training import augment
from temshift.training.data import PatchSet
from temshift.training.settings import TrainSettings

HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "soft_dice",
    "hard_dice",
    "val_loss",
    "val_soft_dice",
    "val_hard_dice",
    "seconds",
    "best",
)
STATE_FORMAT = "temshift.train_state"


def derived_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (e.g. run seed, epoch, stream)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def torch_generator(*parts: int) -> torch.Generator:
    """A CPU torch generator seeded by `derived_seed(*parts)`."""
    return torch.Generator().manual_seed(derived_seed(*parts))


@dataclass
class FitResult:
    """Outcome of `fit`: history rows, best weights and where they came from."""

    history: list = field(default_factory=list)
    best_state: dict | None = None
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    stopped_early: bool = False
    speed: dict = field(default_factory=dict)


def _prepare(x: torch.Tensor, settings: TrainSettings, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if settings.channels_last else x


def _noise(x, settings, generator):
    rho = augment.sample_rho(x.shape[0], generator, settings.noise_rho, settings.noise_rho_max)
    return x if rho is None else augment.add_noise(x, rho, generator)


def epoch_samples(n: int, settings: TrainSettings) -> int:
    """Training samples drawn per epoch from a set of `n`."""
    return n if settings.samples_per_epoch is None else min(n, settings.samples_per_epoch)


def train_batches(data: PatchSet, settings: TrainSettings, seed: int, epoch: int):
    """Yield the augmented training batches ``(x, y)`` of one epoch (CPU tensors)."""
    order = np.arange(len(data))
    if settings.shuffle_each_epoch or epoch_samples(len(data), settings) < len(data):
        order = np.random.default_rng(derived_seed(seed, epoch, 1)).permutation(len(data))
    order = order[: epoch_samples(len(data), settings)]
    gen = torch_generator(seed, epoch, 2)
    size = data.images.shape[1]
    for start in range(0, len(order), settings.batch_size):
        rows = order[start : start + settings.batch_size]
        offsets = None
        if settings.patch_crop:
            offsets = augment.crop_offsets(len(rows), size, settings.patch_crop, gen)
        x, y = data.batch(rows, settings.patch_crop, offsets)
        if settings.rotate_probability > 0:
            x, y = augment.random_flip_rotate(x, y, gen, settings.rotate_probability)
        yield _noise(x, settings, gen), y


def train_epoch(
    model, optimizer, data: PatchSet, settings: TrainSettings, seed: int, epoch: int, device: torch.device, advance=None
) -> dict:
    """One pass over the training samples; returns loss, soft and hard dice (train mode)."""
    model.train()
    sums = MetricSums()
    for x, y in train_batches(data, settings, seed, epoch):
        y = y.to(device)
        with autocast(device, bool(settings.bf16)):  # resolved by train_fold (None = off)
            logits = model(_prepare(x, settings, device))
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums.update(logits, y, ce_mean=loss)
        if advance is not None:
            advance(len(y))
    r = sums.result()
    return {"loss": r["ce"], "soft_dice": r["soft_dice"], "hard_dice": r["hard_dice"]}


@torch.no_grad()
def validate(model, data: PatchSet, settings: TrainSettings, seed: int, device: torch.device) -> dict:
    """Validation loss and dice (eval mode); noise, if any, is the same every epoch."""
    model.eval()
    sums = MetricSums()
    gen = torch_generator(seed, 0, 3)
    for start in range(0, len(data), settings.batch_size):
        x, y = data.batch(np.arange(start, min(start + settings.batch_size, len(data))), settings.patch_crop)
        if settings.noise_on_validation:
            x = _noise(x, settings, gen)
        y = y.to(device)
        logits = forward(model, x, device=device, channels_last=bool(settings.channels_last), bf16=bool(settings.bf16))
        sums.update(logits, y)
    r = sums.result()
    return {"val_loss": r["ce"], "val_soft_dice": r["soft_dice"], "val_hard_dice": r["hard_dice"]}


def _save_state(path: Path, model, optimizer, result: FitResult, fingerprint: dict, epoch: int) -> None:
    from temshift.io.atomic import atomic_path

    state = {
        "format": STATE_FORMAT,
        "epoch": epoch,
        "fingerprint": json.dumps(fingerprint, sort_keys=True),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "best_state": result.best_state,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "history": json.dumps(result.history),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_state(path: Path, model, optimizer, fingerprint: dict) -> tuple[FitResult, int]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError("not a temshift training state")
    except Exception as exc:  # noqa: BLE001
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"{path}: corrupt training state, not resuming ({msg}); delete it to restart") from None
    stored, asked = json.loads(state["fingerprint"]), json.loads(json.dumps(fingerprint, sort_keys=True))
    if stored != asked:
        differ = [k for k in sorted(set(stored) | set(asked)) if stored.get(k) != asked.get(k)]
        shown = "; ".join(
            [f"{k}: {_short(stored.get(k))} there, {_short(asked.get(k))} asked" for k in differ if k != "settings"]
            + (["settings differ"] if "settings" in differ else [])
        )
        raise CheckpointError(
            f"{path}: belongs to an interrupted run with other settings or data ({shown}); "
            f"not resuming: use another output folder, or delete {path.parent} to start over"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    result = FitResult(
        history=json.loads(state["history"]),
        best_state=state["best_state"],
        best_epoch=int(state["best_epoch"]),
        best_val_loss=float(state["best_val_loss"]),
    )
    return result, int(state["epoch"])


def _short(value) -> str:
    text = str(value)
    return text[:16] if len(text) > 16 else text


def write_history(path: Path, history: list) -> None:
    """Write the per-epoch history CSV atomically."""
    from temshift.io.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(history)


def fit(
    model,
    train: PatchSet,
    val: PatchSet,
    settings: TrainSettings,
    seed: int,
    device: torch.device,
    *,
    state_path: Path | None = None,
    history_path: Path | None = None,
    fingerprint: dict | None = None,
    description: str = "train",
    reporter: Reporter | None = None,
) -> FitResult:
    """Train `model` in place and return the history and the best-validation weights.

    Parameters
    ----------
    model : UNet
        Initialized model (on `device`); converted to channels-last if chosen.
    train, val : PatchSet
        Training and validation samples; with an empty validation set the training loss
        selects the best epoch.
    settings : TrainSettings
    seed : int
        Run seed (batch order, augmentation, noise).
    device : torch.device
    state_path : Path, optional
        Per-epoch resumable state; if it exists the run resumes from it (a corrupt or
        foreign state raises `CheckpointError`, it never restarts silently).
    history_path : Path, optional
        Per-epoch history CSV.
    fingerprint : dict, optional
        What must match for a resume (settings, data, fold).
    description : str
        Progress job name.
    reporter : temshift.progress.Reporter, optional
        Receives the progress (samples trained; a note per epoch) when ``settings.progress``;
        default: logging.
    """
    from temshift.models.runtime import resolve_speed

    fingerprint = fingerprint or {"settings": settings.fingerprint(), "seed": seed}
    channels_last, bf16 = resolve_speed(settings.channels_last, settings.bf16, device)
    settings = settings.model_copy(update={"channels_last": channels_last, "bf16": bf16})
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, betas=tuple(settings.betas))
    result, done = FitResult(), 0
    if state_path is not None and Path(state_path).exists():
        result, done = _load_state(Path(state_path), model, optimizer, fingerprint)
    stale = done - result.best_epoch if result.history else 0
    result.speed = {"channels_last": channels_last, "bf16": bf16, "device": str(device)}
    rep = reporter_or_log(reporter) if settings.progress else None
    with contextlib.ExitStack() as stack:
        per_epoch = epoch_samples(len(train), settings)
        if rep is not None:
            rep.start(description, settings.epochs * per_epoch, completed=done * per_epoch, unit="samples")
            stack.callback(rep.stop, description)
        advance = (lambda n: rep.advance(description, n)) if rep is not None else None
        for epoch in range(done + 1, settings.epochs + 1):
            if settings.early_stopping_patience and stale >= settings.early_stopping_patience:
                result.stopped_early = True
                break
            start = time.perf_counter()
            row = {"epoch": epoch, **train_epoch(model, optimizer, train, settings, seed, epoch, device, advance)}
            row.update(
                validate(model, val, settings, seed, device)
                if len(val)
                else {"val_loss": row["loss"], "val_soft_dice": row["soft_dice"], "val_hard_dice": row["hard_dice"]}
            )
            row["seconds"] = round(time.perf_counter() - start, 3)
            row["best"] = row["val_loss"] < result.best_val_loss
            if row["best"]:
                result.best_val_loss, result.best_epoch = row["val_loss"], epoch
                result.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                stale = 0
            else:
                stale += 1
            result.history.append(row)
            if history_path is not None:
                write_history(Path(history_path), result.history)
            if state_path is not None:
                _save_state(Path(state_path), model, optimizer, result, fingerprint, epoch)
            if rep is not None:
                rep.note(description, f"epoch {epoch} val {row['val_loss']:.4f} dice {row['val_hard_dice']:.3f}")
    if result.best_state is None:
        raise TemshiftError(f"{description}: training diverged (validation loss never finite); lower the learning rate")
    return result
