"""Acceptance of prediction on a finished study: full-frame dice with and without pixel-scale
matching, and whether shift warnings flag the frames that models fail on.

For every fold model of every training dataset of an experiment, whole raw frames are
segmented with :func:`temshift.predict.pipeline.predict_frame` and scored against their labels
(hard dice with smoothing 1, per frame). *Diagonal* frames are the in-distribution test frames
of the fold: frames of the training dataset all of whose patches lie in the fold's test block.
*Off-diagonal* frames are all frames of the other datasets. Each frame also gets a shift
report against the training dataset.

Criteria (issue "Acceptance on synthetic data"):

- magnification: with pixel-scale matching, mean off-diagonal dice >= mean diagonal - 0.05;
- warnings: every frame of a (train, test) pair whose off-diagonal dice is > 0.1 below the
  training dataset's diagonal is flagged; no diagonal (in-distribution) frame is flagged.

The functions return tables and records; ``temshift study acceptance`` prints them::

    temshift study acceptance STUDY_DIR [--experiment NAME] [--max-frames N] [--folds 0 1] --out DIR
    temshift study acceptance --from-scores DIR      # re-assess stored statistics, no inference
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from temshift.progress import Reporter

if TYPE_CHECKING:
    from temshift.catalog import Catalog
    from temshift.predict.shift import TrainingReference


MODES = ((True, True), (True, False), (False, False))
"""(pixel-scale matching, noise restoration) combinations scored: full matching (the default
of `temshift predict`), resampling alone, and no matching."""


def _tasks(study_dir: Path) -> dict:
    """Tasks of a study run by key, from its ``plan.json`` (key, kind, deps, dir)."""
    return {t["key"]: t for t in json.loads((study_dir / "plan.json").read_text())["tasks"]}


def dataset_frames(tasks: dict, dataset_key: str) -> tuple[Catalog, Path, Path]:
    """(catalog of a dataset's raw frames, repository root, dataset file) from its study task."""
    from temshift.catalog import Catalog
    from temshift.studies.plan import where_from_json

    task = tasks[dataset_key]
    out_dir = Path(task["dir"])
    inputs = json.loads((out_dir / "done.json").read_text())["inputs"]
    if "repo" in task["deps"]:
        root = Path(tasks[task["deps"]["repo"]]["dir"]) / "repo"
        cat = Catalog.read(root / "catalog.csv")
    else:
        repo = inputs["repository"]
        root, cat = Path(repo["root"]), Catalog.read(repo["catalog"])
    cat = cat.query(**where_from_json(inputs["where"]))
    return cat, root, out_dir / "dataset.h5"


def fold_test_frames(dataset_path: Path, fold: int, n_folds: int = 5) -> set[str]:
    """Files of the frames all of whose patches are in the test block of `fold`.

    Small datasets (``ci`` scale) may have no such frame; then the frames with at least half
    of their patches in the test block are used (partly seen in training: optimistic).
    """
    from temshift.datasets import load_dataset
    from temshift.errors import DatasetError
    from temshift.training.splits import test_block

    prov = load_dataset(dataset_path).provenance
    if prov is None:
        raise DatasetError(f"{dataset_path}: no patch provenance, cannot tell the test frames of fold {fold}")
    test = np.zeros(len(prov), dtype=np.bool_)
    test[test_block(len(prov), fold, n_folds)] = True
    share = pd.Series(test, dtype=float).groupby(prov["file"].to_numpy()).mean()
    full = set(share[share >= 1.0].index)
    return full or set(share[share >= 0.5].index)


def study_frame_scores(
    study_dir: str | Path,
    experiment: str | None = None,
    *,
    max_frames: int | None = None,
    folds: Sequence[int] | None = None,
    tile: int = 1024,
    reporter: Reporter | None = None,
    modes: Sequence[tuple[bool, bool]] = MODES,
) -> pd.DataFrame:
    """Score every (fold model, frame) pair of an experiment, with and without rescaling.

    Parameters
    ----------
    study_dir : str or Path
        A finished study run (``plan.json``, ``results.csv``, ``tasks/``).
    experiment : str, optional
        Experiment name (default: the first).
    max_frames : int, optional
        At most this many frames per test dataset (off-diagonal), to bound the run time.
    folds : list of int, optional
        Fold models to use (default: all trained).
    tile : int
        Largest tile edge, pixels.
    reporter : temshift.progress.Reporter, optional
        Receives the progress (job ``"acceptance"``, one step per model, a note with its score
        count); default: logging.
    modes : sequence of (bool, bool)
        (pixel-scale matching, noise restoration) combinations to score (default: :data:`MODES`).

    Returns
    -------
    pandas.DataFrame
        Columns ``train, fold, test, frame, diagonal, rescale, noise_match, hard_dice, risk,
        flagged, reasons`` (one row per :data:`MODES` entry).
    """
    from temshift.io import read_frame, read_label
    from temshift.models.metrics import mask_dice
    from temshift.predict.pipeline import load_predictor, predict_frame
    from temshift.predict.shift import frame_statistics, jsonable
    from temshift.progress import reporter_or_log

    study_dir = Path(study_dir).expanduser().resolve()
    tasks = _tasks(study_dir)
    res = pd.read_csv(study_dir / "results.csv")
    experiment = experiment or str(res["experiment"].iloc[0])
    res = res[(res["experiment"] == experiment) & (res["split"] == "test")]
    if "base" in set(res["variant"]):
        res = res[res["variant"] == "base"]
    if folds is not None:
        res = res[res["fold"].isin(folds)]
    models = sorted({(r.train_dataset, int(r.fold), r.run, r.train_dataset_key) for r in res.itertuples()})
    keys = {r.test_dataset: r.test_dataset_key for r in res.itertuples()}
    keys.update({r.train_dataset: r.train_dataset_key for r in res.itertuples()})
    tests = sorted(keys)
    frames = {name: dataset_frames(tasks, key) for name, key in keys.items()}
    refs, rows = {}, []
    rep = reporter_or_log(reporter)
    rep.start("acceptance", len(models), unit="models")
    for train, fold, run, _ in models:
        predictor = load_predictor(Path(run) / "model.pt")
        if train not in refs:
            refs[train] = predictor.training_reference(frames[train][2])
        n_folds = predictor.metas[0].n_folds or 5
        own = fold_test_frames(frames[train][2], fold, n_folds)
        for test in tests:
            cat, root, _ = frames[test]
            recs = cat.records()
            if test == train:
                # provenance names frames by their path in the repository (folder/file)
                recs = [r for r in recs if f"{r['folder']}/{r['file']}" in own or r["file"] in own]
            elif max_frames:
                recs = recs[:max_frames]
            for r in recs:
                frame = read_frame(cat.frame_path(r, root))
                label = read_label(cat.label_path(r, root), frame.data.shape)
                scale = r.get("pixel_scale_nm") or frame.pixel_scale_nm
                for rescale, noise in modes:
                    pred = predict_frame(predictor, frame, scale, rescale=rescale, match_noise=noise, tile=tile)
                    stats = frame_statistics(
                        pred.model_input,
                        pixel_scale_nm=scale,
                        input_pixel_scale_nm=pred.input_pixel_scale_nm,
                        rescaled=pred.zoom != 1.0,
                        dose_e_per_A2=r.get("dose_e_per_A2"),
                        mask=pred.input_mask,
                        tile=predictor.patch_size,
                        native_image=pred.native_input,
                        zoom=pred.zoom,
                    )
                    rows.append(
                        {
                            "train": train,
                            "fold": fold,
                            "test": test,
                            "frame": r["file"],
                            "diagonal": test == train,
                            "rescale": rescale,
                            "noise_match": noise,
                            "hard_dice": mask_dice(pred.mask, label),
                            "pred_fraction": float(pred.mask.mean()),
                            "label_fraction": float((label != 0).mean()),
                            "stats": json.dumps(jsonable(stats)),
                        }
                    )
        rep.advance("acceptance")
        rep.note(
            "acceptance",
            f"{train} fold {fold}: {sum(1 for x in rows if x['train'] == train and x['fold'] == fold)} scores",
        )
    rep.stop("acceptance")
    return assess_scores(pd.DataFrame(rows), refs)


def write_acceptance(scores: pd.DataFrame, summary: dict, out: str | Path) -> None:
    """Write ``frame_scores.csv``, ``acceptance.json`` and ``references.json`` into `out` (created)."""
    from temshift.io.atomic import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    refs = {k: v.to_stored() for k, v in scores.attrs.get("references", {}).items()}
    atomic_write_text(out / "frame_scores.csv", scores.to_csv(index=False))
    atomic_write_text(out / "acceptance.json", json.dumps(summary, indent=2))
    atomic_write_text(out / "references.json", json.dumps(refs, indent=2))


def read_scores(folder: str | Path) -> pd.DataFrame:
    """Re-assess the scores of an earlier :func:`write_acceptance` folder (no inference)."""
    from temshift.predict.shift import TrainingReference

    folder = Path(folder)
    refs = {
        k: TrainingReference.from_stored(v) for k, v in json.loads((folder / "references.json").read_text()).items()
    }
    return assess_scores(pd.read_csv(folder / "frame_scores.csv"), refs)


def assess_scores(scores: pd.DataFrame, references: dict[str, TrainingReference]) -> pd.DataFrame:
    """Shift reports of scored frames from their stored statistics (no inference).

    Each (model, test dataset, mode) group is one batch, as when a user predicts a dataset's
    frames in one call: per-frame findings plus :func:`temshift.predict.shift.assess_batch`.

    Parameters
    ----------
    scores : pandas.DataFrame
        Rows of :func:`study_frame_scores` with their ``stats`` (JSON) column.
    references : dict
        Training reference per training dataset name.

    Returns
    -------
    pandas.DataFrame
        `scores` with ``risk, flagged, reasons, doubtful, doubts`` (re)computed; the
        references are kept in ``attrs["references"]``.
    """
    from temshift.predict.shift import ShiftReport, assess_batch, assess_shift

    scores = scores.copy()
    by_index: dict[Any, ShiftReport] = {}
    for _, g in scores.groupby(["train", "fold", "test", "rescale", "noise_match"], sort=False):
        reps = [
            assess_shift(json.loads(st), references[t], f, rescale_requested=bool(rs))
            for st, t, f, rs in zip(g["stats"], g["train"], g["frame"], g["rescale"])
        ]
        assess_batch(reps, references[g["train"].iloc[0]])
        by_index.update(zip(g.index, reps))
    reps = [by_index[i] for i in scores.index]
    scores["risk"] = [r.level for r in reps]
    scores["flagged"] = [r.flagged for r in reps]
    scores["reasons"] = [" | ".join(r.reasons) for r in reps]
    scores["doubtful"] = [bool(r.doubts) for r in reps]
    scores["doubts"] = [" | ".join(r.doubts) for r in reps]
    scores.attrs["references"] = references
    return scores


def acceptance_summary(scores: pd.DataFrame, magnification_tol: float = 0.05, warn_gap: float = 0.1) -> dict:
    """Diagonal / off-diagonal means with and without rescaling, and the warning criteria.

    Returns
    -------
    dict
        ``diag`` and ``offdiag`` mean hard dice for ``rescaled`` / ``not_rescaled``,
        ``magnification_ok``, and :func:`warning_criteria` of the default mode (``pairs``,
        ``warnings_flag_all_failing``, ``warnings_quiet_in_distribution``, ...) plus
        ``not_rescaled_warnings`` (the same without pixel-scale matching) when scored.
    """
    out: dict[str, Any] = {}
    if "noise_match" not in scores:
        scores = scores.assign(noise_match=scores["rescale"])
    for (rescale, noise), key in zip(MODES, ("rescaled", "resampled_without_noise", "not_rescaled")):
        s = scores[(scores["rescale"] == rescale) & (scores["noise_match"] == noise)]
        if s.empty:
            continue
        cell = s.groupby(["train", "test"])["hard_dice"].mean()  # over folds and frames
        diag = [v for (a, b), v in cell.items() if a == b]
        off = [v for (a, b), v in cell.items() if a != b]
        out[key] = {"diag": float(np.mean(diag)) if diag else None, "offdiag": float(np.mean(off)) if off else None}
    r = out["rescaled"]
    out["magnification_ok"] = bool(
        r["diag"] is not None and r["offdiag"] is not None and r["offdiag"] >= r["diag"] - magnification_tol
    )
    out.update(warning_criteria(scores[scores["rescale"] & scores["noise_match"]], warn_gap))
    # the same criteria when frames are not matched (e.g. `--no-rescale`): other pairs fail
    plain = scores[~scores["rescale"]]
    if len(plain):
        out["not_rescaled_warnings"] = warning_criteria(plain, warn_gap)
    return out


def warning_criteria(s: pd.DataFrame, warn_gap: float = 0.1) -> dict:
    """Warning criteria on the scores of one mode.

    Returns
    -------
    dict
        ``pairs`` (per train/test: dice, gap to the training dataset's diagonal, failing,
        share flagged), ``warnings_flag_all_failing``, ``in_distribution_flagged_share``,
        ``warnings_quiet_in_distribution``.
    """
    out: dict[str, Any] = {}
    diag_by_train = s[s["diagonal"]].groupby("train")["hard_dice"].mean()
    pairs, all_failing_flagged = [], True
    for (train, test), g in s[~s["diagonal"]].groupby(["train", "test"]):
        gap = float(diag_by_train.get(train, np.nan) - g["hard_dice"].mean())
        share = float(g["flagged"].mean())
        failing = bool(gap > warn_gap)
        pairs.append(
            {
                "train": train,
                "test": test,
                "dice": float(g["hard_dice"].mean()),
                "gap": gap,
                "failing": failing,
                "flagged_share": share,
            }
        )
        if failing and share < 1.0:
            all_failing_flagged = False
    out["pairs"] = pairs
    out["warnings_flag_all_failing"] = all_failing_flagged
    in_dist = s[s["diagonal"]]
    out["in_distribution_flagged_share"] = float(in_dist["flagged"].mean()) if len(in_dist) else None
    out["warnings_quiet_in_distribution"] = bool(len(in_dist) and not in_dist["flagged"].any())
    return out
