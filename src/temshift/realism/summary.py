"""The benchmark's numbers: matrix of released models on synthetic sets, gaps to the real scores.

Every synthetic dataset is "another dataset" for a released model (the models were trained
on real frames), so each fold model is tested on the whole synthetic set and a cell is the
mean and standard deviation over the fold models (docs/protocol.md, "Training and testing").
"""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pandas as pd

MATRIX_METRICS = ("hard_dice", "pooled_dice", "overseg_share")


def real_reference() -> dict:
    """The packaged real-data reference (`temshift/data/real_reference.json`)."""
    return json.loads(resources.files("temshift").joinpath("data/real_reference.json").read_text())


def _find(sets, cond):
    hits = [ts for ts in sets if ts.matches(cond)]
    return hits[0].key if len(hits) == 1 else None


def reference_cells(sets, reference: dict | None = None) -> dict:
    """(train key, test key) -> real score entry for the cells the reference knows.

    A cell known both on the whole dataset and on the own test blocks uses the whole
    dataset, the way the synthetic cell is measured.
    """
    reference = reference or real_reference()
    cells: dict = {}
    for entry in reference["scores"]:
        tr, te = _find(sets, entry["train"]), _find(sets, entry["test"])
        if tr is None or te is None:
            continue
        old = cells.get((tr, te))
        if old is None or (old.get("split") != "whole" and entry.get("split") == "whole"):
            cells[(tr, te)] = entry
    return cells


def real_contrast(sets, reference: dict | None = None) -> dict:
    """Training-set key -> real particle contrast, where known."""
    reference = reference or real_reference()
    out = {}
    for entry in reference["particle_contrast"]["datasets"]:
        key = _find(sets, entry["dataset"])
        if key is not None:
            out[key] = float(entry["value"])
    return out


def evaluation_table(plan, records: dict) -> pd.DataFrame:
    """One row per (released model, synthetic dataset) that finished."""
    rows = []
    for train, fold, path, test, key in plan.evaluations:
        rec = records.get(key)
        if rec is None:
            continue
        rows.append({"train": train, "fold": fold, "model": path, "test": test, **rec["result"]})
    return pd.DataFrame(rows)


def cell_table(evals: pd.DataFrame, known: dict) -> pd.DataFrame:
    """Mean and std over folds per (train, test), the real score and the gap where known."""
    cols = ["train", "test", "n_models"] + [f"{m}_{s}" for m in MATRIX_METRICS for s in ("mean", "std")]
    if not len(evals):
        return pd.DataFrame(columns=[*cols, "real_hard_dice", "real_models", "gap"])
    g = evals.groupby(["train", "test"], sort=False)
    out = g[list(MATRIX_METRICS)].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["n_models"] = g.size()
    out = out.reset_index()
    real = [known.get((r.train, r.test)) for r in out.itertuples()]
    out["real_hard_dice"] = [e["hard_dice"] if e else math.nan for e in real]
    out["real_models"] = [f"{e['models']}, {e.get('note', e.get('split'))}" if e else "" for e in real]
    out["gap"] = out["hard_dice_mean"] - out["real_hard_dice"]
    return out[[*cols, "real_hard_dice", "real_models", "gap"]]


def gap_summary(cells: pd.DataFrame) -> dict:
    """Mean |synthetic - real| over the known cells and the worst one."""
    known = cells[np.isfinite(cells["gap"].astype(float))] if len(cells) else cells
    if not len(known):
        return {"known_cells": 0, "mean_abs_gap": None, "worst": None, "easier_on_synthetic": 0}
    worst = known.loc[known["gap"].abs().idxmax()]
    return {
        "known_cells": int(len(known)),
        "mean_abs_gap": float(known["gap"].abs().mean()),
        "worst": {
            "train": worst["train"],
            "test": worst["test"],
            "synthetic": float(worst["hard_dice_mean"]),
            "real": float(worst["real_hard_dice"]),
            "gap": float(worst["gap"]),
        },
        "easier_on_synthetic": int((known["gap"] > 0).sum()),
    }


def summarize(plan, records: dict, reference: dict | None = None) -> dict:
    """Everything `realism.json` holds (plain JSON types)."""
    reference = reference or real_reference()
    sets = plan.training_sets
    known = reference_cells(sets, reference)
    evals = evaluation_table(plan, records)
    cells = cell_table(evals, known)
    contrast = real_contrast(sets, reference)
    stats = {}
    for ts in sets:
        rec = records.get(plan.stats[ts.key])
        s = dict(rec["result"]) if rec else {}
        s["real_particle_contrast"] = contrast.get(ts.key)
        if s.get("particle_contrast") is not None and s["real_particle_contrast"]:
            s["contrast_ratio"] = s["particle_contrast"] / s["real_particle_contrast"]
        stats[ts.key] = s
    lab = records.get(plan.labels)
    return {
        "scale": plan.scale.name,
        "seed": plan.seed,
        "simulator_fingerprint": plan.simulator,
        "specimen": plan.specimen,
        "models_evaluated": plan.evaluated,
        "protocol": "released models (trained on real frames) on synthetic datasets: every synthetic set is "
        "'another dataset', so each fold model is tested on the whole set; cells = mean and std "
        "over the fold models; hard dice per patch (softmax, round, dice of class 1, smoothing 1); "
        f"dihedral test expansion: {plan.scale.dihedral}",
        "simulation": {
            "frame_size": plan.scale.frame_size,
            "frames_per_group": plan.scale.frames_per_group,
            "mode": plan.scale.mode,
            "patch_px": plan.scale.patch_px,
            "preprocess": "flat field + standardize",
        },
        "reference_source": reference["source"],
        "training_sets": [
            {
                "key": ts.key,
                "name": ts.name,
                "label": ts.label,
                **ts.conditions(),
                "support": ts.support,
                "models": len(ts.models),
                "catalog_query": {
                    k: list(v) if isinstance(v, tuple) else v for k, v in plan.queries.get(ts.key, {}).items()
                },
            }
            for ts in sets
        ],
        "matrix": json.loads(cells.to_json(orient="records")),
        "gaps": gap_summary(cells),
        "image_statistics": stats,
        "label_statistics": {
            "synthetic": lab["result"] if lab else None,
            "synthetic_frames": {
                "frame_size": plan.scale.label_frame_size,
                "mode": plan.scale.label_mode,
                "frames": plan.scale.label_frames,
            },
            "real": reference["label"],
        },
    }


def matrix_frame(summary: dict, metric: str = "hard_dice") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(mean, real) matrices with training sets as rows and test sets as columns."""
    keys = [t["key"] for t in summary["training_sets"]]
    df = pd.DataFrame(summary["matrix"])
    mean = pd.DataFrame(np.nan, index=keys, columns=keys)
    real = pd.DataFrame(np.nan, index=keys, columns=keys)
    for r in df.itertuples():
        mean.loc[r.train, r.test] = getattr(r, f"{metric}_mean")
        if metric == "hard_dice":
            real.loc[r.train, r.test] = r.real_hard_dice
    return mean, real
