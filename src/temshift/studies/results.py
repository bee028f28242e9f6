"""Tidy results of a study: one row per (experiment, train dataset, fold, variant, test dataset).

``results.parquet`` / ``results.csv`` hold every metric of the evaluation stage (``ce,
soft_dice, hard_dice, pooled_dice, fp_rate, fn_rate, overseg_share`` and any others it
reports) with the identifiers of the model and the datasets; ``datasets.csv`` holds one
row per dataset with its statistics and metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from temshift.studies.plan import EXTRA_VARIANT
from temshift.studies.records import TaskRecord, TrainResult

METRICS = ("hard_dice", "soft_dice", "ce", "pooled_dice", "fp_rate", "fn_rate", "overseg_share")
ID_COLUMNS = (
    "study",
    "scale",
    "experiment",
    "variant",
    "train_dataset",
    "fold",
    "test_dataset",
    "split",
    "same_dataset",
)


def collect(plan, records: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results and dataset tables from the completion records of a run.

    Parameters
    ----------
    plan : Plan
    records : dict
        Task key -> completion record (``done.json``); cells whose evaluation is missing
        (failed or skipped) are left out.

    Returns
    -------
    (results, datasets) : pandas.DataFrame
    """
    rows = []
    for cell in plan.cells:
        rec = records.get(cell.eval_key)
        if rec is None:
            continue
        metrics = pd.read_parquet(Path(rec["dir"]) / "metrics.parquet")
        trained = TrainResult.from_task(records.get(cell.train_key))
        ids = {
            "study": plan.spec.name,
            "scale": plan.scale.name,
            "experiment": cell.experiment,
            "variant": cell.variant,
            "train_dataset": cell.train,
            "fold": cell.fold,
            "test_dataset": cell.test,
            "split": cell.split,
            "same_dataset": cell.train == cell.test,
        }
        over = plan.variants.get((cell.experiment, cell.variant), {})
        extra = {
            "noise_rho": over.get("noise_rho"),
            "noise_rho_max": over.get("noise_rho_max"),
            "train_hard_dice": trained.train_hard_dice if trained else None,
            "train_loss": trained.train_loss if trained else None,
            "best_epoch": trained.best_epoch if trained else None,
            "best_val_loss": trained.best_val_loss if trained else None,
            "train_key": cell.train_key,
            "eval_key": cell.eval_key,
            "train_dataset_key": plan.datasets.get(cell.train),  # None for an extra model
            "test_dataset_key": plan.datasets[cell.test],
        }
        for _, mrow in metrics.iterrows():
            row = dict(ids)
            for col, value in mrow.items():
                row[col if col not in ids and col not in extra else f"eval_{col}"] = value
            row.update(extra)
            rows.append(row)
    results = pd.DataFrame(rows)
    if len(results) and "ce" in results:
        _add_ood_gap(results)
    if len(results):
        first = [c for c in ID_COLUMNS if c in results] + [m for m in METRICS if m in results]
        results = results[first + [c for c in results.columns if c not in first]]
    return results, dataset_table(plan, records)


def _add_ood_gap(results: pd.DataFrame) -> None:
    """``ood_gap``: CE on another dataset minus the same fold model's CE on its own test block."""
    test = results["split"] == "test"
    own = results[test & results["same_dataset"]].groupby("train_key")["ce"].first()
    own_ce = results["train_key"].map(own)
    results["ood_gap"] = (results["ce"] - own_ce).where(test & ~results["same_dataset"])


def dataset_table(plan, records: dict) -> pd.DataFrame:
    """One row per named dataset: label, keys, filter, preprocessing, statistics."""
    rows = []
    for name, key in plan.datasets.items():
        ds = plan.spec.datasets[name]
        task = plan.tasks[key]
        stats = records.get(plan.stats[name], {}).get("result", {})
        rows.append(
            {
                "dataset": name,
                "label": ds.label or name,
                "dataset_key": key,
                "where": json.dumps(task.inputs["where"]),
                "rescale": task.inputs["preprocess"].get("rescale"),
                "flatfield": task.inputs["preprocess"].get("flatfield"),
                "patch_size": task.inputs["patch_size"],
                **{k: v for k, v in stats.items() if not isinstance(v, (dict, list))},
            }
        )
    return pd.DataFrame(rows)


def write(results: pd.DataFrame, datasets: pd.DataFrame, study_dir) -> None:
    """Write results.parquet, results.csv and datasets.csv atomically."""
    from temshift.io.atomic import atomic_path

    study_dir = Path(study_dir)
    with atomic_path(study_dir / "results.parquet") as tmp:
        results.to_parquet(tmp, index=False)
    with atomic_path(study_dir / "results.csv") as tmp:
        results.to_csv(tmp, index=False)
    with atomic_path(study_dir / "datasets.csv") as tmp:
        datasets.to_csv(tmp, index=False)


def load(study_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the results and dataset tables of a finished study."""
    study_dir = Path(study_dir)
    return pd.read_parquet(study_dir / "results.parquet"), pd.read_csv(study_dir / "datasets.csv")


def cell_scores(
    results: pd.DataFrame, experiment: str, metric: str = "hard_dice", variant: str | None = None
) -> pd.DataFrame:
    """Per (train, test) pair: the fold models' scores of one experiment and variant.

    Same-dataset pairs use each fold model on its own test block; other pairs every fold
    model on the whole other dataset (as the evaluation stage reports them). The rows of
    extra (shipped) models are left out unless asked for by ``variant="extra"``.
    """
    df = results[(results["experiment"] == experiment) & (results["split"] == "test")]
    if variant is not None:
        df = df[df["variant"] == variant]
    elif {"reference", EXTRA_VARIANT} & set(df["variant"]):
        df = df[~df["variant"].isin(("reference", EXTRA_VARIANT))]
    return df.groupby(["train_dataset", "test_dataset", "fold"], sort=False)[metric].mean().reset_index()


def matrix(
    results: pd.DataFrame,
    experiment: str,
    metric: str = "hard_dice",
    variant: str | None = None,
    order: list[str] | None = None,
    extra: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and standard deviation over folds, train datasets as rows, test datasets as columns.

    Datasets are ordered by `order`, or else by difficulty: in-distribution (diagonal)
    score, easiest first; datasets without a diagonal by their column mean. With `extra`,
    the experiment's extra (shipped) models follow as rows of their own (one model each:
    their standard deviation is NaN).
    """
    scores = cell_scores(results, experiment, metric, variant)
    g = scores.groupby(["train_dataset", "test_dataset"])[metric]
    mean = g.mean().unstack("test_dataset")
    std = g.std(ddof=0).unstack("test_dataset")
    if order is None:
        order = difficulty_order(mean)
    rows = [d for d in order if d in mean.index] + [d for d in mean.index if d not in order]
    cols = [d for d in order if d in mean.columns] + [d for d in mean.columns if d not in order]
    mean, std = mean.loc[rows, cols], std.loc[rows, cols]
    if extra and variant is None:
        more = cell_scores(results, experiment, metric, EXTRA_VARIANT)
        if len(more):
            rows_x = more.groupby(["train_dataset", "test_dataset"], sort=False)[metric].mean().unstack("test_dataset")
            rows_x = rows_x.reindex(columns=cols)
            mean = pd.concat([mean, rows_x])
            std = pd.concat([std, rows_x * np.nan])
    return mean, std


def extra_rows(results: pd.DataFrame, experiment: str) -> list[str]:
    """Names of the extra (shipped) models scored in `experiment`."""
    df = results[(results["experiment"] == experiment) & (results["variant"] == EXTRA_VARIANT)]
    return list(dict.fromkeys(df["train_dataset"])) if len(df) else []


def difficulty_order(mean: pd.DataFrame) -> list[str]:
    """Datasets from easiest to hardest: diagonal score, else column mean (descending)."""
    names = list(dict.fromkeys(list(mean.columns) + list(mean.index)))
    score = {}
    for n in names:
        if n in mean.index and n in mean.columns and np.isfinite(mean.loc[n, n]):
            score[n] = mean.loc[n, n]
        elif n in mean.columns:
            score[n] = mean[n].mean()
        else:
            score[n] = mean.loc[n].mean()
    return sorted(names, key=lambda n: -score[n] if np.isfinite(score[n]) else np.inf)


def timings(plan, records: dict) -> pd.DataFrame:
    """Seconds per task (from the completion records), with kind and label."""
    done = {k: TaskRecord.model_validate(records[k]) for k in plan.tasks if k in records}
    rows = [
        {
            "key": k,
            "kind": t.kind,
            "label": t.label,
            "seconds": done[k].seconds,
            "started": done[k].started,
            "finished": done[k].finished,
        }
        for k, t in plan.tasks.items()
        if k in done
    ]
    return pd.DataFrame(rows, columns=["key", "kind", "label", "seconds", "started", "finished"])
