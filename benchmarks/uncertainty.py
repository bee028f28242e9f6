"""Benchmark: does the per-particle confidence separate right from wrong particles?

On synthetic frames (abTEM simulator, projection mode, 1024 px, Au at 0.02 nm/px; 5 nm particles
or, with ``--diameter 2.2``, 2.2 nm ones, several times more per frame):

1. simulate a training repository (423 e/A2, seed 0) and a held-out evaluation repository
   (423 and 80 e/A2, another seed: no evaluation frame was seen in training);
2. build the 423 e/A2 dataset and train fold models with the ``quick`` study scale;
3. predict every evaluation frame with one model, with test-time augmentation (8 dihedral
   variants) and with an ensemble of fold models;
4. match every predicted particle to the true particles of the exact label (IoU >= 0.5 =
   right, else wrong) and compute the ROC AUC of each per-particle score (Mann-Whitney U:
   the chance that a random right particle scores above a random wrong one; ties count
   half) per dose and pooled.

Usage::

    python benchmarks/uncertainty.py [--work DIR] [--frames-train 8] [--frames-eval 8] [--density 2]
                                     [--folds 3] [--no-write]

Steps resume from DIR (default ``/tmp/temshift-bench-uncertainty``). Writes the
"## Uncertainty, <size> nm particles" section at the end of benchmarks/RESULTS.md (only that section).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

RESULTS = Path(__file__).with_name("RESULTS.md")
WHERE = {"material": "Au", "pixel_scale_nm": 0.02}
DOSES = {423: {"dose_e_per_A2": (423, 5), "date": "10/06/21"}, 80: {"dose_e_per_A2": (80, 5), "date": "06/15/22"}}
TRAIN_DOSE = 423
SCORES = ["confidence", "mean_probability", "agreement", "one_minus_std", "area_px"]


def roc_auc(scores, positive) -> float:
    """ROC AUC of `scores` for the `positive` class via the Mann-Whitney U statistic."""
    import numpy as np
    from scipy.stats import mannwhitneyu

    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(mannwhitneyu(pos, neg, alternative="two-sided").statistic / (len(pos) * len(neg)))


def simulate(work: Path, frames_train: int, frames_eval: int, density: float, where: dict) -> tuple:
    import pandas as pd

    from temshift.catalog import Catalog
    from temshift.simulate import simulate_repository

    def group(dose):
        """Catalog rows of the group; a dose the catalog lacks for this size: the 423 e/A2 rows at that dose."""
        from temshift.errors import CatalogError

        try:
            df = Catalog.published().query(**where, **DOSES[dose]).df
        except CatalogError:
            df = Catalog.published().query(**where, **DOSES[TRAIN_DOSE]).df.copy()
            df["dose_e_per_A2"] = float(dose)
            df["folder"] = df["folder"] + f" at {dose} e per A2"
            df["session"] = df["date"] + " | " + df["folder"]
        return df

    def repo(name, doses, n, seed):
        out = work / name
        if not (out / "catalog.csv").exists():
            rows = Catalog(
                pd.concat([group(d) for d in doses], ignore_index=True), source="bench rows", normalized=True
            )
            simulate_repository(
                out,
                catalog=rows,
                frames_per_group=n,
                frame_size=1024,
                mode="projection",
                seed=seed,
                workers=1,
                density=density,
            )
        return Catalog.read(out / "catalog.csv"), out

    return repo("train_repo", [TRAIN_DOSE], frames_train, 0), repo("eval_repo", list(DOSES), frames_eval, 1)


def train(work: Path, catalog, root: Path, folds: int, where: dict) -> list[Path]:
    from temshift.datasets import DatasetSpec, build_dataset
    from temshift.studies.scales import get_scale
    from temshift.training import TrainSettings, train_fold

    scale = get_scale("quick")
    ds = work / "dataset.h5"
    if not ds.exists():
        spec = DatasetSpec(name=f"Au_{TRAIN_DOSE}e", where={**where, **DOSES[TRAIN_DOSE]}, patch_size=scale.patch_size)
        build_dataset(catalog, root, spec, ds, workers=1)
    settings = TrainSettings(**scale.training, threads=1, progress=False)
    return [Path(train_fold(ds, k, settings, work / f"run{k}").run_dir) / "model.pt" for k in range(folds)]


def _matched(pred, truth, scale_nm: float, config: str, name: str, dose: float):
    """Particle table of one prediction with the per-particle scores and right/wrong."""
    from temshift.predict import particles as parts

    spread = {} if pred.std is None else {"std": pred.std, "members": pred.members}
    table = parts.particle_table(pred.mask, scale_nm, probabilities=pred.probabilities, **spread)
    labels = parts.label_particles(pred.mask)
    iou = parts.best_iou(labels, truth)
    found = int((parts.best_iou(truth, labels) >= 0.5).sum())
    return table.assign(
        config=config,
        frame=name,
        dose_e_per_A2=dose,
        best_iou=iou,
        right=iou >= 0.5,
        one_minus_std=1.0 - 2.0 * table["mean_std"],
    ), found


def evaluate(models: list[Path], catalog, root: Path, out_dir: Path):
    import pandas as pd

    from temshift.io import read_frame, read_label
    from temshift.predict import particles as parts
    from temshift.predict.pipeline import load_predictor, predict_frame

    single = load_predictor(models[0])
    ensemble = load_predictor(models) if len(models) > 1 else None
    rows, per_frame = [], []
    for _, row in catalog.df.iterrows():
        path, label_path = catalog.frame_path(row, root), catalog.label_path(row, root)
        frame = read_frame(path)
        scale, dose = float(row["pixel_scale_nm"]), float(row["dose_e_per_A2"])
        truth = parts.label_particles(read_label(label_path, frame.data.shape))
        runs = [("1 model", single, False), ("1 model + TTA", single, True)]
        if ensemble is not None:
            runs.append((f"{len(models)}-fold ensemble", ensemble, False))
        for config, predictor, tta in runs:
            t0 = time.perf_counter()
            pred = predict_frame(predictor, frame, scale, tta=tta, tile=1024)
            seconds = time.perf_counter() - t0
            t, found = _matched(pred, truth, scale, config, path.name, dose)
            rows.append(t)
            per_frame.append(
                {
                    "config": config,
                    "frame": path.name,
                    "dose_e_per_A2": dose,
                    "true_particles": int(truth.max()),
                    "predicted": len(t),
                    "right": int(t["right"].sum()),
                    "true_found": found,
                    "seconds": seconds,
                    "mean_std": float(pred.std.mean()) if pred.std is not None else float("nan"),
                }
            )
            print(
                f"{path.name} [{config}]: {len(t)} predicted, {int(t['right'].sum())} right, {truth.max()} true "
                f"({seconds:.1f} s)",
                flush=True,
            )
    table = pd.concat(rows, ignore_index=True)
    table.to_csv(out_dir / "particles_matched.csv", index=False)
    frames = pd.DataFrame(per_frame)
    frames.to_csv(out_dir / "frames.csv", index=False)
    return table, frames


MIN_DIAMETER_NM = 1.0
"""Second evaluation subset: particles of at least this equivalent diameter (no speckle fragments)."""


def summarize(table, frames) -> dict:
    out = {"auc": [], "frames": []}
    for config, ct in table.groupby("config", sort=False):
        doses = sorted(ct["dose_e_per_A2"].unique(), reverse=True)
        for dname, dt_ in [*[(f"{d:g}", ct[ct["dose_e_per_A2"] == d]) for d in doses], ("both", ct)]:
            for subset, sub in [
                ("all", dt_),
                (f">= {MIN_DIAMETER_NM:g} nm", dt_[dt_["equivalent_diameter_nm"] >= MIN_DIAMETER_NM]),
            ]:
                out["auc"].append(
                    {
                        "config": config,
                        "dose": dname,
                        "subset": subset,
                        "particles": int(len(sub)),
                        "right": int(sub["right"].sum()),
                        "wrong": int((~sub["right"]).sum()),
                        **{s: roc_auc(sub[s], sub["right"]) for s in SCORES},
                    }
                )
    out["frames"] = (
        frames.groupby(["config", "dose_e_per_A2"], sort=False)
        .agg(
            frames=("frame", "count"),
            true=("true_particles", "sum"),
            predicted=("predicted", "sum"),
            right=("right", "sum"),
            true_found=("true_found", "sum"),
            seconds=("seconds", "median"),
            mean_std=("mean_std", "mean"),
        )
        .reset_index()
        .to_dict(orient="records")
    )
    return out


def section(summary: dict, cmd: str, wall_s: float, args) -> str:
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    fmt = lambda v: "-" if v != v else f"{v:.3f}"  # noqa: E731 (NaN: not defined for this configuration)
    lines = [
        f"## Uncertainty, {args.diameter:g} nm particles (`benchmarks/uncertainty.py`)",
        "",
        f"{date}; command: `{cmd}`; 2 shared cores (busy: other jobs ran alongside), 1 torch thread; "
        f"{wall_s / 60:.1f} min wall including simulation and training. {args.folds} fold models trained at "
        f"{TRAIN_DOSE} e/A2 (scale `quick`: 8 epochs, 256 px patches from {args.frames_train} simulated 1024 px "
        f"frames, projection mode, {args.diameter:g} nm Au, 0.02 nm/px, particle density x{args.density:g}) predict "
        f"{args.frames_eval} held-out frames per dose (another simulation seed): the fold-0 model alone, with "
        f"`--tta` (8 dihedral variants), and the {args.folds} folds as an ensemble. A predicted particle is right "
        "when it matches a true particle of the exact label with IoU >= 0.5, else wrong. ROC AUC = Mann-Whitney U / "
        "(n_right n_wrong), the chance that a random right particle scores above a random wrong one (ties half); "
        "`area` (particle area alone) is a baseline. A dose the catalog lacks for this size is simulated from the "
        f"{TRAIN_DOSE} e/A2 rows at that dose. '>= 1 nm' leaves out speckle fragments (most wrong particles), "
        "which area alone already tells.",
        "",
        "| prediction | dose (e/A2) | particles | right | wrong | AUC confidence | mean probability | agreement | "
        "1 - 2 SD | area |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["auc"]:
        lines.append(
            f"| {r['config']} | {r['dose']} | {r['subset']}: {r['particles']} | {r['right']} | {r['wrong']} | "
            f"**{fmt(r['confidence'])}** | {fmt(r['mean_probability'])} | {fmt(r['agreement'])} | "
            f"{fmt(r['one_minus_std'])} | {fmt(r['area_px'])} |"
        )
    lines += [
        "",
        "| prediction | dose (e/A2) | frames | true particles | predicted | right | true particles found | "
        "s per frame | mean SD |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["frames"]:
        lines.append(
            f"| {r['config']} | {r['dose_e_per_A2']:g} | {r['frames']} | {r['true']} | {r['predicted']} | "
            f"{r['right']} | {r['true_found']} | {r['seconds']:.1f} | {fmt(r['mean_std'])} |"
        )
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Replace only this particle size's '## Uncertainty' section of RESULTS.md (appended at the end when absent)."""
    content = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    title = re.escape(text.splitlines()[0])
    pattern = re.compile(rf"^{title}.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(content):
        content = pattern.sub(lambda _: text + "\n", content, count=1)
    else:
        content = content.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(content.rstrip("\n") + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/temshift-bench-uncertainty"))
    ap.add_argument("--frames-train", type=int, default=8)
    ap.add_argument("--frames-eval", type=int, default=8)
    ap.add_argument(
        "--density", type=float, default=2.0, help="Particle area fraction x this (more, touching particles)."
    )
    ap.add_argument("--diameter", type=float, default=5.0, help="Particle size, nm (5 or 2.2: catalog groups).")
    ap.add_argument("--folds", type=int, default=3, help="Fold models trained (fold 0 alone and all as an ensemble).")
    ap.add_argument("--no-write", action="store_true", help="Print the section, do not edit RESULTS.md.")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    where = {**WHERE, "diameter_nm": args.diameter}
    args.work.mkdir(parents=True, exist_ok=True)
    (train_cat, train_root), (eval_cat, eval_root) = simulate(
        args.work, args.frames_train, args.frames_eval, args.density, where
    )
    print(f"simulated: {len(train_cat)} training, {len(eval_cat)} evaluation frames", flush=True)
    models = train(args.work, train_cat, train_root, args.folds, where)
    print(f"models: {', '.join(map(str, models))}", flush=True)
    table, frames = evaluate(models, eval_cat, eval_root, args.work)
    summary = summarize(table, frames)
    (args.work / "summary.json").write_text(json.dumps(summary, indent=1))
    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    text = section(summary, cmd, time.perf_counter() - t0, args)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
