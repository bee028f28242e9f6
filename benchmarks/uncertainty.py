"""Benchmark: does the per-particle confidence separate right from wrong particles?

On synthetic frames (abTEM simulator, projection mode, 1024 px, 5 nm Au at 0.02 nm/px):

1. simulate a training repository (423 e/A2, seed 0) and a held-out evaluation repository
   (423 and 80 e/A2, another seed: no evaluation frame was seen in training);
2. build the 423 e/A2 dataset and train one fold model with the ``quick`` study scale;
3. predict every evaluation frame with test-time augmentation (8 dihedral variants) and,
   for comparison, without it;
4. match every predicted particle to the true particles of the exact label (IoU >= 0.5 =
   right, else wrong) and compute the ROC AUC of each per-particle score (Mann-Whitney U:
   the chance that a random right particle scores above a random wrong one; ties count
   half) per dose and pooled.

Usage::

    python benchmarks/uncertainty.py [--work DIR] [--frames-train 8] [--frames-eval 6] [--no-write]

Steps resume from DIR (default ``/tmp/temshift-bench-uncertainty``). Writes the
"## Uncertainty" section at the end of benchmarks/RESULTS.md (only that section).
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
WHERE = {"material": "Au", "diameter_nm": 5, "pixel_scale_nm": 0.02}
DOSES = {423: {"dose_e_per_A2": (423, 5), "date": "10/06/21"}, 80: {"dose_e_per_A2": (80, 5), "date": "06/15/22"}}
TRAIN_DOSE = 423
SCORES = ["confidence", "mean_probability", "agreement", "one_minus_std", "plain_mean_probability"]


def roc_auc(scores, positive) -> float:
    """ROC AUC of `scores` for the `positive` class via the Mann-Whitney U statistic."""
    import numpy as np
    from scipy.stats import mannwhitneyu

    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(mannwhitneyu(pos, neg, alternative="two-sided").statistic / (len(pos) * len(neg)))


def simulate(work: Path, frames_train: int, frames_eval: int) -> tuple:
    from temshift.catalog import Catalog
    from temshift.simulate import simulate_repository

    def repo(name, doses, n, seed):
        out = work / name
        if not (out / "catalog.csv").exists():
            cats = [Catalog.published().query(**WHERE, **DOSES[d]) for d in doses]
            import pandas as pd

            rows = Catalog(pd.concat([c.df for c in cats], ignore_index=True), source="bench rows", normalized=True)
            simulate_repository(out, catalog=rows, frames_per_group=n, frame_size=1024, mode="projection", seed=seed,
                                workers=1, progress=False)
        return Catalog.read(out / "catalog.csv"), out

    return repo("train_repo", [TRAIN_DOSE], frames_train, 0), repo("eval_repo", list(DOSES), frames_eval, 1)


def train(work: Path, catalog, root: Path) -> Path:
    from temshift.datasets import DatasetSpec, build_dataset
    from temshift.studies.scales import get_scale
    from temshift.training import TrainSettings, train_fold

    scale = get_scale("quick")
    ds = work / "dataset.h5"
    if not ds.exists():
        spec = DatasetSpec(name=f"Au5_{TRAIN_DOSE}e", where={**WHERE, **DOSES[TRAIN_DOSE]}, patch_size=scale.patch_size)
        build_dataset(catalog, root, spec, ds, workers=1, progress=False)
    settings = TrainSettings(**scale.training, threads=1, progress=False)
    res = train_fold(ds, 0, settings, work / "run")
    return Path(res.run_dir) / "model.pt"


def evaluate(model: Path, catalog, root: Path, out_dir: Path) -> "pandas.DataFrame":  # noqa: F821
    import numpy as np
    import pandas as pd

    from temshift.io import read_frame, read_label
    from temshift.predict import particles as parts
    from temshift.predict.pipeline import load_predictor, predict_frame

    predictor = load_predictor(model)
    rows, per_frame = [], []
    for _, row in catalog.df.iterrows():
        path, label_path = catalog.frame_path(row, root), catalog.label_path(row, root)
        frame = read_frame(path)
        truth = parts.label_particles(read_label(label_path, frame.data.shape))
        t0 = time.perf_counter()
        pred = predict_frame(predictor, frame, float(row["pixel_scale_nm"]), tta=True, tile=1024)
        t_tta = time.perf_counter() - t0
        plain = predict_frame(predictor, frame, float(row["pixel_scale_nm"]), tile=1024)
        table = parts.particle_table(pred.mask, float(row["pixel_scale_nm"]), probabilities=pred.probabilities,
                                     std=pred.std, members=pred.members)
        labels = parts.label_particles(pred.mask)
        iou = parts.best_iou(labels, truth)
        plain_conf = parts.particle_confidence(labels, plain.probabilities)
        t = table.assign(frame=path.name, dose_e_per_A2=float(row["dose_e_per_A2"]), best_iou=iou, right=iou >= 0.5,
                         one_minus_std=1.0 - 2.0 * table["mean_std"],
                         plain_mean_probability=plain_conf["mean_probability"].to_numpy())
        rows.append(t)
        truth_ious = parts.best_iou(truth, labels)
        per_frame.append({"frame": path.name, "dose_e_per_A2": float(row["dose_e_per_A2"]),
                          "true_particles": int(truth.max()), "predicted": int(labels.max()),
                          "right": int(t["right"].sum()), "true_found": int((truth_ious >= 0.5).sum()),
                          "tta_s": t_tta, "mean_std": float(pred.std.mean()),
                          "tta_vs_plain_mask_px": int((pred.mask != plain.mask).sum())})
        print(f"{path.name}: {labels.max()} predicted, {int(t['right'].sum())} right, {truth.max()} true "
              f"({t_tta:.1f} s with TTA)", flush=True)
    table = pd.concat(rows, ignore_index=True)
    table.to_csv(out_dir / "particles_matched.csv", index=False)
    pd.DataFrame(per_frame).to_csv(out_dir / "frames.csv", index=False)
    return table, pd.DataFrame(per_frame)


def summarize(table, frames) -> dict:
    import numpy as np

    out = {}
    groups = [(f"{int(d)} e/A2", table[table["dose_e_per_A2"] == d]) for d in sorted(table["dose_e_per_A2"].unique(),
                                                                                    reverse=True)]
    for name, sub in [*groups, ("pooled", table)]:
        out[name] = {"particles": int(len(sub)), "right": int(sub["right"].sum()), "wrong": int((~sub["right"]).sum()),
                     "auc": {s: roc_auc(sub[s], sub["right"]) for s in SCORES},
                     "mean_confidence_right": float(np.mean(sub.loc[sub["right"], "confidence"])),
                     "mean_confidence_wrong": float(np.mean(sub.loc[~sub["right"], "confidence"]))
                     if (~sub["right"]).any() else float("nan")}
    out["frames"] = frames.groupby("dose_e_per_A2").agg(
        frames=("frame", "count"), true=("true_particles", "sum"), predicted=("predicted", "sum"),
        right=("right", "sum"), true_found=("true_found", "sum"), tta_s=("tta_s", "median"),
        mean_std=("mean_std", "mean")).reset_index().to_dict(orient="records")
    return out


def section(summary: dict, cmd: str, wall_s: float, args) -> str:
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Uncertainty (`benchmarks/uncertainty.py`)",
        "",
        f"{date}; command: `{cmd}`; 2 shared cores, 1 torch thread; {wall_s / 60:.1f} min wall including "
        f"simulation and training. One fold model trained at {TRAIN_DOSE} e/A2 (scale `quick`: 8 epochs, 256 px "
        f"patches from {args.frames_train} simulated 1024 px frames, projection mode, 5 nm Au, 0.02 nm/px) predicts "
        f"{args.frames_eval} held-out frames per dose (another simulation seed) with `--tta`. A predicted particle "
        "is right when it matches a true particle of the exact label with IoU >= 0.5. ROC AUC = Mann-Whitney U "
        "/ (n_right n_wrong): the chance that a random right particle scores above a random wrong one.",
        "",
        "| frames | particles | right | wrong | AUC confidence | AUC mean probability | AUC agreement | "
        "AUC 1 - 2 SD | AUC mean probability without TTA |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        if name == "frames":
            continue
        a = s["auc"]
        lines.append(f"| {name} | {s['particles']} | {s['right']} | {s['wrong']} | **{a['confidence']:.3f}** | "
                     f"{a['mean_probability']:.3f} | {a['agreement']:.3f} | {a['one_minus_std']:.3f} | "
                     f"{a['plain_mean_probability']:.3f} |")
    lines += ["", "| dose (e/A2) | frames | true particles | predicted | right | true particles found | "
              "s per frame with TTA | mean SD |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["frames"]:
        lines.append(f"| {r['dose_e_per_A2']:g} | {r['frames']} | {r['true']} | {r['predicted']} | {r['right']} | "
                     f"{r['true_found']} | {r['tta_s']:.1f} | {r['mean_std']:.4f} |")
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Replace only the '## Uncertainty' section of RESULTS.md (appended at the end when absent)."""
    content = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## Uncertainty.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(content):
        content = pattern.sub(lambda _: text + "\n", content, count=1)
    else:
        content = content.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(content.rstrip("\n") + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/temshift-bench-uncertainty"))
    ap.add_argument("--frames-train", type=int, default=8)
    ap.add_argument("--frames-eval", type=int, default=6)
    ap.add_argument("--no-write", action="store_true", help="Print the section, do not edit RESULTS.md.")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    (train_cat, train_root), (eval_cat, eval_root) = simulate(args.work, args.frames_train, args.frames_eval)
    print(f"simulated: {len(train_cat)} training, {len(eval_cat)} evaluation frames", flush=True)
    model = train(args.work, train_cat, train_root)
    print(f"model: {model}", flush=True)
    table, frames = evaluate(model, eval_cat, eval_root, args.work)
    summary = summarize(table, frames)
    (args.work / "summary.json").write_text(json.dumps(summary, indent=1))
    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    text = section(summary, cmd, time.perf_counter() - t0, args)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
