"""`temshift pretrain`: train a generalist on domain-randomized simulated frames.

The run is a task graph on the studies' Dask machinery (`temshift.studies.graph`): ``frames``
tasks simulate chunks of frames (parameters drawn from ``(seed, index)``, see
`temshift.training.domain`) and cut them into patches, a ``dataset`` task assembles the
patches into a temshift dataset file, a ``train`` task trains the model with
`train_fold` (the studies' own task callable; its ``state.pt`` resumes an interrupted run), and an
``evaluate`` task scores it on the held-out frames of fold 0's test block. Every task's
output lives in ``RUN/tasks/<kind>/<hash>/`` with ``done.json``; running the same command
again reuses what finished. Finally ``RUN/generalist.pt`` (checkpoint, meta extended by
the ranges, the recipe and the training record) and ``RUN/generalist.json`` are written.

Pixel scale: the generalist works at one fixed working scale (`PretrainScale.working_pixel_scale_nm`,
0.04 nm/pixel). Each frame is simulated at its drawn pixel scale and brought to the
working scale by `temshift.predict.pipeline.model_input` -- the very function prediction
uses (preprocessing at the frame's own grid, resampling, restoring the pixel noise, rescaling) --
so the model sees resampled frames exactly as it will at prediction. The dataset records the
working scale as its ``pixel_scale_nm``, so the predictor resamples every frame of known scale to it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from temshift.errors import TemshiftError
from temshift.progress import Reporter
from temshift.training.domain import PretrainRanges

RECIPE_VERSION = 1
PATCHES = "patches.npz"
DRAWS = "draws.json"
MODEL_NAME = "generalist"


class PretrainError(TemshiftError):
    """A pretraining run that cannot start or did not finish."""


class PretrainScale(BaseModel):
    """How big a pretraining run is.

    Attributes
    ----------
    n_frames : int
        Simulated frames.
    frames_per_task : int
        Frames per ``frames`` task (the cache's granularity).
    working_pixel_scale_nm : float
        Scale every frame is resampled to, nm/pixel (the generalist's input scale).
    working_frame_px : int
        Frame edge at the working scale, pixels.
    patch_size : int
        Dataset patch edge, pixels (at the working scale).
    sim_mode : str
        Simulator mode.
    training : dict
        `TrainSettings` fields.
    ranges : dict
        Overrides of the default `PretrainRanges` for this scale.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["ci", "quick", "paper"]
    n_frames: int = Field(..., ge=2)
    frames_per_task: int = Field(..., ge=1)
    working_pixel_scale_nm: float = 0.04
    working_frame_px: int = Field(..., ge=64)
    patch_size: int
    sim_mode: Literal["multislice", "projection"]
    training: dict[str, Any]
    ranges: dict[str, Any] = {}


SCALES: dict[str, PretrainScale] = {
    # tiny frames for tests: particles capped at the 5 nm frame extent, numbers meaningless
    "ci": PretrainScale(
        name="ci",
        n_frames=6,
        frames_per_task=3,
        working_frame_px=128,
        patch_size=64,
        sim_mode="projection",
        training={
            "epochs": 2,
            "batch_size": 8,
            "learning_rate": 1e-3,
            "dihedral": False,
            "n_folds": 3,
            "samples_per_epoch": 16,
        },
        ranges={"diameter_nm_log": (1.5, 3.0), "pixel_scale_nm_log": (0.04, 0.08)},
    ),
    # CPU: 2 cores, about an hour
    "quick": PretrainScale(
        name="quick",
        n_frames=384,
        frames_per_task=16,
        working_frame_px=512,
        patch_size=256,
        sim_mode="projection",
        training={
            "epochs": 40,
            "batch_size": 8,
            "learning_rate": 1e-3,
            "patch_crop": 128,
            "dihedral": False,
            "n_folds": 10,
            "samples_per_epoch": 512,
        },
    ),
    # GPUs: multislice frames, the paper's patch size, long training; ~16000 patches of 512 px
    # (16 GB as float32: the dataset task and train_fold hold them in memory)
    "paper": PretrainScale(
        name="paper",
        n_frames=4000,
        frames_per_task=50,
        working_frame_px=1024,
        patch_size=512,
        sim_mode="multislice",
        training={
            "epochs": 250,
            "batch_size": 32,
            "learning_rate": 1e-4,
            "dihedral": True,
            "n_folds": 20,
            "samples_per_epoch": 8192,
        },
    ),
}


def get_scale(name: str) -> PretrainScale:
    """The pretraining scale called `name`."""
    try:
        return SCALES[name]
    except KeyError:
        raise PretrainError(f"unknown pretrain scale {name!r} (choose from {', '.join(SCALES)})") from None


def scale_ranges(scale: PretrainScale, ranges: PretrainRanges | dict | None = None) -> PretrainRanges:
    """The ranges a run uses: defaults, the scale's overrides, then the caller's."""
    if isinstance(ranges, PretrainRanges):
        return ranges
    from pydantic import ValidationError

    try:
        return PretrainRanges(**{**scale.ranges, **(ranges or {})})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PretrainError(f"ranges.{'.'.join(str(x) for x in err['loc']) or '?'}: {err['msg']}") from None


# ----------------------------------------------------------------------------- task callables


def simulate_chunk(inputs: dict, out_dir: Path, deps: dict, runtime: dict) -> dict:
    """Simulate frames ``inputs["indices"]`` and cut them into patches (``patches.npz``, ``draws.json``).

    A frame the simulator or the preprocessing fails on (e.g. a flat-field fit that is not
    positive everywhere on a frame of ~1 electron per pixel) is recorded in ``draws.json``
    with its error and skipped (deterministic: it would fail again). Each frame goes through
    `model_input` (the prediction path) to the working scale; its exact label is resampled to
    the same grid (bilinear, threshold 0.5).
    """
    from temshift.io.atomic import atomic_path, atomic_write_text
    from temshift.preprocess import PreprocessSettings, extract_patches
    from temshift.preprocess.model_input import model_input
    from temshift.preprocess.scale import resample_to_shape
    from temshift.simulate.micrograph import simulate_frame
    from temshift.training.domain import draw_frame, frame_request

    if runtime.get("threads"):
        os.environ["TEMSHIFT_FFT_WORKERS"] = str(runtime["threads"])
    ranges = PretrainRanges(**inputs["ranges"])
    pre = PreprocessSettings(**inputs["preprocess"])
    working = float(inputs["working_pixel_scale_nm"])
    images, labels, frames, rows, cols, draws = [], [], [], [], [], []
    cpu0 = time.process_time()
    for index in inputs["indices"]:
        draw = draw_frame(
            ranges,
            inputs["seed"],
            index,
            working_pixel_scale_nm=working,
            working_frame_px=inputs["working_frame_px"],
            mode=inputs["mode"],
        )
        try:
            sim = simulate_frame(frame_request(draw))
            image, _ = model_input(sim.counts, pre, draw.pixel_scale_nm, working)
        except Exception as exc:  # noqa: BLE001 -- a frame that cannot be made or preprocessed is recorded, skipped
            draws.append({**draw.model_dump(), "n_patches": 0, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        label = (resample_to_shape(sim.label.astype(np.float32), image.shape) >= 0.5).astype(np.uint8)
        p_img, p_lab, coords = extract_patches(image, label, inputs["patch_size"])
        images.append(p_img)
        labels.append(p_lab)
        frames += [index] * len(p_img)
        rows += coords[:, 0].tolist()
        cols += coords[:, 1].tolist()
        draws.append(
            {
                **draw.model_dump(),
                "n_patches": int(len(p_img)),
                "n_particles": sim.params["n_particles"],
                "label_area_fraction": sim.params["label_area_fraction"],
            }
        )
    p = int(inputs["patch_size"])
    with atomic_path(out_dir / PATCHES) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            images=np.concatenate(images) if images else np.empty((0, p, p), np.float32),
            labels=np.concatenate(labels) if labels else np.empty((0, p, p), np.uint8),
            frame=np.asarray(frames, np.int64),
            row=np.asarray(rows, np.int64),
            col=np.asarray(cols, np.int64),
        )
    atomic_write_text(out_dir / DRAWS, json.dumps(draws, indent=1))
    failed = sum("error" in d for d in draws)
    return {
        "frames": len(draws) - failed,
        "failed_frames": failed,
        "patches": int(len(frames)),
        "cpu_seconds": round(time.process_time() - cpu0, 1),
    }


def assemble(inputs: dict, out_dir: Path, deps: dict, runtime: dict) -> dict:
    """Concatenate the chunks' patches (frame order) into ``dataset.h5``, a temshift dataset file."""
    import hashlib

    import pandas as pd

    from temshift.datasets.store import content_hash, dataset_attrs, write_dataset_file
    from temshift.studies.tasks import DATASET

    image_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    frame_parts: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for role in sorted(deps):
        with np.load(Path(deps[role]) / PATCHES, allow_pickle=False) as z:
            image_parts.append(z["images"])
            label_parts.append(z["labels"])
            frame_parts.append(z["frame"])
            rows.append(z["row"])
            cols.append(z["col"])
    images, labels = np.concatenate(image_parts), np.concatenate(label_parts)
    if not len(images):
        raise PretrainError("no simulated frame gave a patch with particles; nothing to train on")
    spec = {
        "name": MODEL_NAME,
        "source": "pretrain",
        "preprocess": inputs["preprocess"],
        "patch_size": inputs["patch_size"],
        "pixel_scale_nm": inputs["working_pixel_scale_nm"],
        "dose_e_per_A2": None,
        "pretrain_ranges": inputs["ranges"],
        "seed": inputs["seed"],
        "n_frames": inputs["n_frames"],
    }
    spec_hash = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    spec["spec_hash"] = spec_hash
    frames = np.concatenate(frame_parts)
    prov = pd.DataFrame(
        {"file": [f"pretrain/{i}" for i in frames], "row": np.concatenate(rows), "col": np.concatenate(cols)}
    )
    attrs = dataset_attrs(
        MODEL_NAME,
        spec,
        content_hash(images, labels),
        spec_hash=spec_hash,
        preprocess=inputs["preprocess"],
        pixel_scale_nm=inputs["working_pixel_scale_nm"],
        n_frames=int(len(np.unique(frames))),
        patch_size=inputs["patch_size"],
        seed=inputs["seed"],
        stamp=False,
    )
    path = write_dataset_file(out_dir / DATASET, images, labels, prov, attrs)
    return {
        "path": str(path),
        "spec_hash": spec_hash,
        "patches": int(len(images)),
        "frames": int(len(np.unique(frames))),
    }


def _registry():
    from temshift.studies import tasks

    return {"frames": simulate_chunk, "dataset": assemble, "train": tasks.train, "evaluate": tasks.evaluate}


REGISTRY_PATH = "temshift.studies.pretrain:REGISTRY"


def __getattr__(name):
    if name == "REGISTRY":  # resolved on the workers; avoids importing the studies at import time
        return _registry()
    raise AttributeError(name)


# ----------------------------------------------------------------------------- plan


@dataclass
class PretrainPlan:
    """The tasks of a pretraining run, in dependency order (what `run_plan` needs)."""

    run_dir: Path
    scale: PretrainScale
    ranges: PretrainRanges
    seed: int
    settings: dict
    tasks: dict = field(default_factory=dict)
    chunks: list = field(default_factory=list)
    dataset_key: str = ""
    train_key: str = ""
    evaluate_key: str = ""

    def add(self, task) -> str:
        self.tasks.setdefault(task.key, task)
        return task.key


def plan_pretrain(
    run_dir,
    scale: str = "quick",
    seed: int = 0,
    ranges=None,
    train_threads: int | None = None,
    training: dict | None = None,
) -> PretrainPlan:
    """Resolve a pretraining run into content-addressed tasks under ``run_dir/tasks``.

    Parameters
    ----------
    run_dir : path
        Run folder.
    scale : {"ci", "quick", "paper"}
    seed : int
        Run seed: every frame's parameters and simulation noise derive from it and the frame index.
    ranges : PretrainRanges or dict, optional
        Overrides of the scale's ranges.
    train_threads : int, optional
        Torch threads of the training task (part of its key: CPU results depend on it).
    training : dict, optional
        Overrides of the scale's training settings.
    """
    from pydantic import ValidationError

    from temshift.preprocess import PreprocessSettings
    from temshift.realism.plan import simulator_fingerprint
    from temshift.studies.plan import Task
    from temshift.training.settings import TrainSettings

    if not isinstance(seed, int) or seed < 0:
        raise PretrainError(f"seed {seed!r} must be a non-negative integer")
    sc = get_scale(scale)
    rg = scale_ranges(sc, ranges)
    try:
        settings = TrainSettings(**{**sc.training, **(training or {})}).fingerprint()
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PretrainError(f"training.{'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from None
    run_dir = Path(run_dir).expanduser().resolve()
    root = str(run_dir / "tasks")
    plan = PretrainPlan(run_dir, sc, rg, seed, settings)
    common = {
        "seed": seed,
        "ranges": rg.model_dump(mode="json"),
        "preprocess": PreprocessSettings().model_dump(mode="json"),
        "working_pixel_scale_nm": sc.working_pixel_scale_nm,
        "working_frame_px": sc.working_frame_px,
        "patch_size": sc.patch_size,
        "mode": sc.sim_mode,
        "recipe": RECIPE_VERSION,
    }
    # the simulator's source is in the frames' keys (as in the realism benchmark's): frames of an
    # older simulator in the run folder are simulated again, not reused
    frames = {**common, "simulator": simulator_fingerprint()}
    deps = {}
    for c, start in enumerate(range(0, sc.n_frames, sc.frames_per_task)):
        indices = list(range(start, min(sc.n_frames, start + sc.frames_per_task)))
        key = plan.add(
            Task("frames", f"simulate frames {indices[0]}-{indices[-1]}", {**frames, "indices": indices}, {}, root)
        )
        plan.chunks.append(key)
        deps[f"chunk{c:05d}"] = key
    plan.dataset_key = plan.add(
        Task("dataset", "assemble the patches", {**common, "n_frames": sc.n_frames}, deps, root)
    )
    plan.train_key = plan.add(
        Task(
            "train",
            "train the generalist",
            {"fold": 0, "settings": settings, "threads": train_threads},
            {"dataset": plan.dataset_key},
            root,
        )
    )
    plan.evaluate_key = plan.add(
        Task(
            "evaluate",
            "score it on the held-out frames",
            {"dihedral": False},
            {"run": plan.train_key, "dataset": plan.dataset_key},
            root,
        )
    )
    return plan


# ----------------------------------------------------------------------------- run


@dataclass
class PretrainResult:
    """A finished pretraining run."""

    plan: PretrainPlan
    model_path: Path
    record_path: Path
    record: dict
    cached: int
    ran: int


def _record(plan: PretrainPlan, records: dict) -> dict:
    """The JSON record shipped beside the weights: recipe, ranges, training record, held-out score."""
    import pandas as pd

    from temshift import __version__
    from temshift.studies.tasks import METRICS
    from temshift.training.fold import epoch_seconds

    train = records[plan.train_key]["result"]
    ev_dir = Path(records[plan.evaluate_key]["dir"])
    metrics = pd.read_parquet(ev_dir / METRICS).iloc[0].to_dict()
    chunks = [records[k] for k in plan.chunks]
    return {
        "name": MODEL_NAME,
        "recipe": {
            "command": f"temshift pretrain --out RUN --scale {plan.scale.name} --seed {plan.seed}",
            "version": RECIPE_VERSION,
            "scale": plan.scale.model_dump(mode="json"),
            "seed": plan.seed,
            "temshift_version": __version__,
        },
        "ranges": plan.ranges.model_dump(mode="json"),
        "working_pixel_scale_nm": plan.scale.working_pixel_scale_nm,
        "training": {"settings": plan.settings, **{k: v for k, v in train.items() if k != "run_dir"}},
        "data": {
            "frames": sum(c["result"]["frames"] for c in chunks),
            "failed_frames": sum(c["result"].get("failed_frames", 0) for c in chunks),
            "patches": records[plan.dataset_key]["result"]["patches"],
            "simulation_seconds": round(sum(c["seconds"] for c in chunks), 1),
            "simulation_cpu_seconds": round(sum(c["result"].get("cpu_seconds", 0.0) for c in chunks), 1),
            # over every attempt: after a kill the task's own time is only the resumed part
            "training_seconds": round(epoch_seconds(train["run_dir"]) or records[plan.train_key]["seconds"], 1),
        },
        "held_out": {k: float(metrics[k]) for k in ("hard_dice", "soft_dice", "ce") if k in metrics},
    }


def run_pretrain(
    run_dir,
    scale: str = "quick",
    workers: int | None = None,
    scheduler: str | None = None,
    seed: int = 0,
    ranges=None,
    training: dict | None = None,
    train_threads: int | None = None,
    processes: bool = True,
    registry=REGISTRY_PATH,
    reporter: Reporter | None = None,
) -> PretrainResult:
    """Run (or resume) a pretraining run and write ``RUN/generalist.pt`` and ``RUN/generalist.json``.

    Parameters
    ----------
    run_dir : path
        Run folder (finished tasks in it are reused; interrupted training resumes).
    scale : {"ci", "quick", "paper"}
    workers : int, optional
        Local Dask workers (default one per core).
    scheduler : str, optional
        Address of a running Dask scheduler (then `workers` is ignored).
    seed : int
        Run seed.
    ranges, training : dict, optional
        Overrides of the scale's ranges and training settings.
    train_threads : int, optional
        Torch threads of the training task (default: every local core; it runs alone). Part
        of the training task's key: resume with the same count to reuse the trained model.
    processes : bool
        Local workers as processes (False: threads, for tests).
    registry : str or dict
        Task callables.
    reporter : temshift.progress.Reporter, optional
        Receives snapshots of the task graph (job ``"pretrain"``); default: logging.

    Raises
    ------
    PretrainError
        Bad options, or a task failed (named, with its error; re-run to resume).
    """
    from temshift.compute import check_workers_see, local_threads, open_client
    from temshift.io.atomic import atomic_write_text
    from temshift.models.checkpoint import load_checkpoint, save_checkpoint
    from temshift.studies.graph import run_plan
    from temshift.studies.progress import PlanProgress
    from temshift.studies.tasks import RUN
    from temshift.threads import thread_env

    if workers and scheduler:
        raise PretrainError("give either --workers or --scheduler, not both")
    # the training task runs alone, so it gets every local core (its key holds the count)
    if not scheduler and train_threads is None:
        train_threads = os.cpu_count() or 1
    plan = plan_pretrain(run_dir, scale, seed, ranges, None if scheduler else train_threads, training)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    threads = None if scheduler else local_threads(workers)
    with (
        thread_env(threads, ("TEMSHIFT_FFT_WORKERS", "OMP_NUM_THREADS")),
        open_client(workers, scheduler, processes=processes) as (client, th),
    ):
        if scheduler:  # workers elsewhere must see the run folder at the same path
            check_workers_see(client, [plan.run_dir])
        rt = {"threads": th}
        outcome = run_plan(
            plan,
            client,
            registry=registry,
            runtime={"frames": rt, "dataset": {}, "train": {}, "evaluate": rt},
            progress=PlanProgress(
                plan,
                1,
                reporter,
                job="pretrain",
                title=f"pretrain {plan.scale.name}",
                kinds=("frames", "dataset", "train", "evaluate"),
            ),
        )
    if outcome.failed:
        key, err = next(iter(outcome.failed.items()))
        raise PretrainError(
            f"{plan.tasks[key].label} failed ({err.splitlines()[0]}); "
            f"{len(outcome.failed)} task(s) failed; re-run the same command to resume"
        )
    if outcome.skipped:
        raise PretrainError(f"{len(outcome.skipped)} task(s) skipped after a failure; re-run to resume")
    record = _record(plan, outcome.records)
    model, meta = load_checkpoint(Path(outcome.records[plan.train_key]["dir"]) / RUN / "model.pt")
    meta = meta.model_copy(update={"kind": MODEL_NAME, "pretrain": record})
    model_path = save_checkpoint(plan.run_dir / f"{MODEL_NAME}.pt", model, meta)
    record_path = plan.run_dir / f"{MODEL_NAME}.json"
    atomic_write_text(record_path, json.dumps(record, indent=1, default=str))
    return PretrainResult(
        plan, model_path, record_path, record, len(outcome.cached), len(outcome.records) - len(outcome.cached)
    )
