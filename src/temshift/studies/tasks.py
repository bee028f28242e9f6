"""The real task callables of a study, one per task kind.

Each has the signature ``fn(inputs, out_dir, deps, runtime) -> dict``: `inputs` are the
task's hashed inputs, `out_dir` its own folder, `deps` the output folders of the tasks
it depends on (by role), `runtime` settings that do not change the result. The returned
dict (the JSON of a result record of :mod:`temshift.studies.records`) is stored in the
task's ``done.json``. Heavy stages are imported inside.
"""

from __future__ import annotations

import json
from pathlib import Path

from temshift.studies.records import BuildResult, DatasetStatistics, EvaluateResult, SimulateResult, TrainResult

REPO = "repo"
DATASET = "dataset.h5"
RUN = "run"
METRICS = "metrics.parquet"
STATS = "stats.json"


def simulate_repo(inputs: dict, out_dir: Path, deps: dict, runtime: dict) -> dict:
    """Simulate the catalog rows in `inputs` into ``out_dir/repo`` (the published layout)."""
    import pandas as pd

    from temshift.catalog import Catalog
    from temshift.simulate import simulate_repository

    rows = Catalog(pd.DataFrame(inputs["rows"]), source="study rows", normalized=True)
    cat = simulate_repository(
        out_dir / REPO,
        catalog=rows,
        frames_per_group=inputs["frames_per_group"],
        frame_size=inputs["frame_size"],
        mode=inputs["mode"],
        seed=inputs["seed"],
        workers=1,
        labeling=inputs.get("labeling"),
        specimen=inputs.get("specimen"),
    )
    return SimulateResult(frames=len(cat), repo=str(out_dir / REPO)).to_stored()


def _catalog_and_root(inputs: dict, deps: dict):
    from temshift.catalog import Catalog

    if "repo" in deps:
        root = Path(deps["repo"]) / REPO
        return Catalog.read(root / "catalog.csv"), root
    repo = inputs["repository"]
    return Catalog.read(repo["catalog"]), Path(repo["root"])


def build(inputs: dict, out_dir: Path, deps: dict, runtime: dict) -> dict:
    """Build the dataset of `inputs` into ``out_dir/dataset.h5``."""
    from temshift.datasets import DatasetSpec, build_dataset
    from temshift.preprocess import PreprocessSettings
    from temshift.studies.plan import where_from_json

    catalog, root = _catalog_and_root(inputs, deps)
    spec = DatasetSpec(
        name=runtime.get("name", "dataset"),
        where=where_from_json(inputs["where"]),
        preprocess=PreprocessSettings(**inputs["preprocess"]),
        patch_size=inputs["patch_size"],
        seed=inputs["seed"],
    )
    path = build_dataset(catalog, root, spec, out_dir / DATASET, workers=runtime.get("threads") or 1)
    return BuildResult(path=str(path), spec_hash=spec.hash()).to_stored()


def statistics(inputs: dict, out_dir: Path, deps: dict, runtime: dict) -> dict:
    """Patch statistics and metadata of a dataset (written to ``stats.json`` and returned)."""
    from temshift.datasets import load_dataset
    from temshift.io.atomic import atomic_write_text
    from temshift.studies.stats import patch_statistics

    ds = load_dataset(Path(deps["dataset"]) / DATASET)
    out = patch_statistics(ds.images, ds.labels)
    spec = ds.spec if isinstance(ds.spec, dict) else {}
    for key in ("pixel_scale_nm", "dose_e_per_A2"):
        value = getattr(ds, key, None)
        value = spec.get(key) if value is None else value
        out[key] = float(value) if value is not None else None
    prov = ds.provenance
    out["frames"] = int(prov["file"].nunique()) if prov is not None and len(prov) and "file" in prov else None
    DatasetStatistics.model_validate(out)  # the record checks the types; the dict keeps the column order
    atomic_write_text(out_dir / STATS, json.dumps(out, indent=1))
    return out


def train(inputs: dict, out_dir: Path, deps: dict, runtime: dict) -> dict:
    """Train one fold model into ``out_dir/run`` (resumes an interrupted run)."""
    import pandas as pd

    from temshift.training import TrainSettings, train_fold

    threads = inputs["threads"] if "threads" in inputs else runtime.get("threads")
    settings = TrainSettings(**inputs["settings"], threads=threads, progress=False)
    res = train_fold(Path(deps["dataset"]) / DATASET, inputs["fold"], settings, out_dir / RUN)
    hist = pd.read_csv(res.history_path)
    best = hist[hist["epoch"] == res.best_epoch].iloc[0]
    return TrainResult(
        run_dir=str(res.run_dir),
        best_epoch=int(res.best_epoch),
        best_val_loss=float(res.best_val_loss),
        epochs_run=int(res.epochs_run),
        train_hard_dice=float(best.get("hard_dice", float("nan"))),
        train_loss=float(best.get("loss", float("nan"))),
        val_hard_dice=float(best.get("val_hard_dice", float("nan"))),
    ).to_stored()


def _evaluate_train_split(run_dir: Path, dataset_path: Path, threads, dihedral: bool = True):
    """Metrics of a fold model on its own training split (dihedral, no augmentation)."""
    import pandas as pd

    from temshift.errors import CheckpointError
    from temshift.evaluation import evaluate_model
    from temshift.models.checkpoint import load_model
    from temshift.models.runtime import set_threads
    from temshift.models.unet import ModelConfig
    from temshift.training.data import load_patches
    from temshift.training.splits import split_fold

    set_threads(threads)
    model, meta = load_model(run_dir / "model.pt")
    if meta.fold is None:
        raise CheckpointError(f"{run_dir / 'model.pt'}: the model records no fold")
    images, labels, info = load_patches(dataset_path, ModelConfig.model_validate(meta.config))
    split = split_fold(
        info.n_patches, meta.fold, meta.n_folds or 5, 0.125 if meta.val_fraction is None else meta.val_fraction
    )
    metrics = evaluate_model(model, images[split.train], labels[split.train], dihedral=dihedral)
    return pd.DataFrame([{"run": str(run_dir), "test_path": info.path, **metrics}])


def evaluate(inputs: dict, out_dir: Path, deps: dict, runtime: dict) -> dict:
    """Test one fold model on one dataset (or on its training split); rows to ``metrics.parquet``."""
    from temshift.io.atomic import atomic_path

    if "pretrained" in inputs:  # an experiment's extra (shipped) model, scored through the prediction path
        from temshift.studies.extra import evaluate_pretrained

        df = evaluate_pretrained(inputs, out_dir, deps, runtime)
        with atomic_path(out_dir / METRICS) as tmp:
            df.to_parquet(tmp, index=False)
        return EvaluateResult(rows=int(len(df))).to_stored()
    run_dir, ds_path = Path(deps["run"]) / RUN, Path(deps["dataset"]) / DATASET
    if inputs.get("split") == "train":
        df = _evaluate_train_split(run_dir, ds_path, runtime.get("threads"), inputs.get("dihedral", True))
    else:
        from temshift.evaluation import evaluate_runs

        df = evaluate_runs(
            [run_dir], ds_path, threads=runtime.get("threads"), use_cache=False, dihedral=inputs.get("dihedral", True)
        )
    with atomic_path(out_dir / METRICS) as tmp:
        df.to_parquet(tmp, index=False)
    return EvaluateResult(rows=int(len(df))).to_stored()


REGISTRY = {"repo": simulate_repo, "dataset": build, "stats": statistics, "train": train, "evaluate": evaluate}
