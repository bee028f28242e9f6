"""Scientific checks: are the paper's findings reproduced by a finished study?

Each check runs on the experiments whose spec marks the finding (``finding = "dose"``
etc.); a finding whose experiments are not in the study is "not run", which is not a
failure. `temshift study check DIR` exits non-zero when any finding that ran is not
reproduced.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from temshift.studies.results import cell_scores, matrix


@dataclass
class Finding:
    """Outcome of one check: `status` is "reproduced", "not reproduced" or "not run"."""

    name: str
    claim: str
    status: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "not reproduced"


def _meta(datasets: pd.DataFrame, name: str, field: str) -> float:
    """A dataset's metadata value: measured (datasets.csv) or the filter's centre."""
    row = datasets[datasets["dataset"] == name]
    if not len(row):
        return math.nan
    row = row.iloc[0]
    value = row.get(field)
    if value is not None and not pd.isna(value):
        return float(value)
    where = json.loads(row["where"])
    v = where.get(field)
    if isinstance(v, dict):
        return float(v["value"])
    if isinstance(v, list):
        return float(np.mean(v))
    return float(v) if v is not None else math.nan


def _experiments(spec, finding: str) -> list[str]:
    return [n for n, e in spec.experiments.items() if e.finding == finding]


def check_dose(spec, results, datasets) -> list[Finding]:
    """Two findings: the diagonal dominance of Fig 3d and the FP/FN asymmetry of Fig S4."""
    claims = (
        "every row: the diagonal beats the off-diagonal cells",
        "tested at a higher dose than trained -> higher FP share than tested at a lower dose",
    )
    names = ("dose: diagonal", "dose: FP share")
    exps = [e for e in _experiments(spec, "dose") if e in set(results["experiment"])]
    if not exps:
        return [Finding(n, c, "not run", "no dose experiment in this study") for n, c in zip(names, claims)]
    rows_bad: list[str] = []
    rows_ok: list[str] = []
    share_bad: list[str] = []
    share_ok: list[str] = []
    for e in exps:
        mean, _ = matrix(results, e)
        for r in mean.index:
            if r not in mean.columns:
                continue
            off = mean.loc[r].drop(r)
            if not len(off):
                continue
            text = f"row {r}: diagonal {mean.loc[r, r]:.3f} vs best off-diagonal {off.max():.3f}"
            (rows_ok if mean.loc[r, r] > off.max() else rows_bad).append(text)
        share = (
            cell_scores(results, e, "overseg_share").groupby(["train_dataset", "test_dataset"])["overseg_share"].mean()
        )
        up, down = [], []
        for (tr, te), v in share.items():
            d_tr, d_te = _meta(datasets, tr, "dose_e_per_A2"), _meta(datasets, te, "dose_e_per_A2")
            if d_te > d_tr:
                up.append(v)
            elif d_te < d_tr:
                down.append(v)
        if not up or not down:
            share_bad.append("no pairs tested at both higher and lower dose")
            continue
        text = f"FP share tested higher {np.nanmean(up):.3f} vs lower {np.nanmean(down):.3f}"
        (share_ok if np.nanmean(up) > np.nanmean(down) else share_bad).append(text)
    return [
        Finding(names[0], claims[0], "not reproduced" if rows_bad else "reproduced", "; ".join(rows_bad + rows_ok)),
        Finding(names[1], claims[1], "not reproduced" if share_bad else "reproduced", "; ".join(share_bad + share_ok)),
    ]


def _offdiag_mean(mean: pd.DataFrame) -> float:
    vals = [mean.loc[r, c] for r in mean.index for c in mean.columns if r != c]
    return float(np.nanmean(vals)) if vals else math.nan


def check_flatfield(spec, results, datasets) -> Finding:
    claim = "flat-field correction raises the mean off-diagonal cross-session dice"
    exps = [e for e in _experiments(spec, "flatfield") if e in set(results["experiment"])]
    ff = datasets.set_index("dataset")["flatfield"].astype(bool).to_dict()
    by_flag: dict[bool, list[Any]] = {True: [], False: []}
    for e in exps:
        names = spec.experiments[e].train
        flags = {ff.get(n) for n in names}
        if len(flags) == 1:
            by_flag[flags.pop()].append(_offdiag_mean(matrix(results, e)[0]))
    if not by_flag[True] or not by_flag[False]:
        return Finding(
            "flatfield", claim, "not run", "needs session matrices both with and without flat-field correction"
        )
    with_ff, without = float(np.mean(by_flag[True])), float(np.mean(by_flag[False]))
    ok = with_ff > without
    return Finding(
        "flatfield",
        claim,
        "reproduced" if ok else "not reproduced",
        f"mean off-diagonal dice {without:.3f} without, {with_ff:.3f} with flat-field correction",
    )


def check_magnification(spec, results, datasets) -> Finding:
    claim = "off-diagonal dice falls as the pixel-scale difference grows"
    exps = [e for e in _experiments(spec, "magnification") if e in set(results["experiment"])]
    if not exps:
        return Finding("magnification", claim, "not run", "no magnification experiment in this study")
    xs, ys = [], []
    for e in exps:
        mean, _ = matrix(results, e)
        for r in mean.index:
            for c in mean.columns:
                if r != c and np.isfinite(mean.loc[r, c]):
                    xs.append(
                        abs(math.log(_meta(datasets, c, "pixel_scale_nm") / _meta(datasets, r, "pixel_scale_nm")))
                    )
                    ys.append(mean.loc[r, c])
    if len(xs) < 3:
        return Finding("magnification", claim, "not run", "fewer than 3 off-diagonal cells")
    rho = float(pd.Series(xs).rank().corr(pd.Series(ys).rank()))
    return Finding(
        "magnification",
        claim,
        "reproduced" if rho < 0 else "not reproduced",
        f"Spearman correlation of off-diagonal dice with |log pixel-scale ratio|: {rho:+.2f} over {len(xs)} cells",
    )


def check_noise(spec, results, datasets) -> Finding:
    claim = "some rho > 0 improves 884 -> 80 e/A2 transfer over rho = 0"
    exps = [e for e in _experiments(spec, "noise") if e in set(results["experiment"])]
    if not exps:
        return Finding("noise", claim, "not run", "no noise experiment in this study")
    base, best, best_name = [], -math.inf, None
    for e in exps:
        exp = spec.experiments[e]
        low = min(exp.test_sets, key=lambda n: _meta(datasets, n, "dose_e_per_A2"))
        df = results[
            (results["experiment"] == e)
            & (results["split"] == "test")
            & (results["test_dataset"] == low)
            & (results["train_dataset"].isin(exp.train))
            & (results["variant"] != "reference")
        ]
        for variant, g in df.groupby("variant"):
            rho = [g[c].dropna().max() for c in ("noise_rho", "noise_rho_max") if c in g and g[c].notna().any()]
            score = float(g["hard_dice"].mean())
            if not rho or max(rho) == 0:
                base.append(score)
            elif score > best:
                best, best_name = score, f"{e}: {variant}"
    if not base or best_name is None:
        return Finding("noise", claim, "not run", "needs a rho = 0 model and a rho > 0 model")
    b = float(np.mean(base))
    return Finding(
        "noise",
        claim,
        "reproduced" if best > b else "not reproduced",
        f"hard dice on the lowest dose: rho = 0 {b:.3f}, best rho > 0 {best:.3f} ({best_name})",
    )


def check_rescaling(spec, results, datasets) -> Finding:
    claim = "standardization's test dice std across folds is not above normalization's"
    exps = [e for e in _experiments(spec, "rescaling") if e in set(results["experiment"])]
    method = datasets.set_index("dataset")["rescale"].to_dict()
    stds: dict[str, Any] = {}
    for e in exps:
        scores = cell_scores(results, e)
        scores = scores[scores["train_dataset"] == scores["test_dataset"]]
        for name, g in scores.groupby("train_dataset"):
            stds.setdefault(method.get(name), []).append(float(g["hard_dice"].std(ddof=0)))
    if "standardize" not in stds or "normalize" not in stds:
        return Finding("rescaling", claim, "not run", "needs standardized and normalized datasets")
    s, n = float(np.mean(stds["standardize"])), float(np.mean(stds["normalize"]))
    return Finding(
        "rescaling",
        claim,
        "reproduced" if s <= n else "not reproduced",
        f"test hard dice std over folds: standardize {s:.4f}, normalize {n:.4f}",
    )


def _spread(std: pd.DataFrame, r: str, cols) -> float:
    """Fold-to-fold spread of the difference of two cells of row `r`: sqrt(sd_a^2 + sd_b^2) (0 if unknown)."""
    v = [float(std.loc[r, c]) if r in std.index and c in std.columns else math.nan for c in cols]
    return float(math.sqrt(sum(x * x for x in v if np.isfinite(x))))


def _text(datasets: pd.DataFrame, name: str, field: str) -> str | None:
    """A dataset's string metadata (e.g. material) from datasets.csv or its filter."""
    row = datasets[datasets["dataset"] == name]
    if not len(row):
        return None
    row = row.iloc[0]
    if field in row and isinstance(row[field], str):
        return row[field]
    v = json.loads(row["where"]).get(field)
    return v if isinstance(v, str) else None


def check_size(spec, results, datasets) -> list[Finding]:
    """Fig 4b: the 2.2 nm set is the hardest for every model; the 5 and 10 nm sets are nearly interchangeable.

    The paper: "All models perform equally well on the 5nm and 10nm datasets, but there is
    some variation in performance on the 2.2nm dataset depending on training dataset. All
    models perform worse on the 2.2nm dataset, likely due to the low nanoparticle contrast
    and difficulty of interpreting the images."

    The paper gives no numbers for these cells, so both claims are read against the spread
    it reports with every cell (mean and standard deviation over the 5 fold models):

    * worst on 2.2 nm: in every row (training set) the smallest-diameter column scores below
      every other column;
    * "equally well" (nearly interchangeable): in every row the 5 and 10 nm columns differ by
      no more than the fold-to-fold spread of that difference, ``sqrt(sd_5^2 + sd_10^2)``
      (the two means are not distinguishable by the models' own scatter).

    Raw hard dice, not the difficulty-normalized matrix (Fig S2).
    """
    claims = (
        "every model scores worst on the 2.2 nm set",
        "the 5 and 10 nm sets are nearly interchangeable: in every row |dice(5) - dice(10)| <= "
        "sqrt(sd_5^2 + sd_10^2) over folds",
    )
    names = ("size: 2.2 nm hardest", "size: 5 ~ 10 nm")
    exps = [e for e in _experiments(spec, "size") if e in set(results["experiment"])]
    if not exps:
        return [Finding(n, c, "not run", "no size experiment in this study") for n, c in zip(names, claims)]
    worst_bad: list[str] = []
    worst_ok: list[str] = []
    same_bad: list[str] = []
    same_ok: list[str] = []
    for e in exps:
        mean, std = matrix(results, e)
        diam = {c: _meta(datasets, c, "diameter_nm") for c in mean.columns}
        by_size = sorted((d, c) for c, d in diam.items() if np.isfinite(d))
        if len(by_size) < 3:
            worst_bad.append(f"{e}: needs test sets of three diameters")
            same_bad.append(f"{e}: needs test sets of three diameters")
            continue
        small, mid, large = by_size[0][1], by_size[-2][1], by_size[-1][1]
        for r in mean.index:
            others = mean.loc[r].drop(small)
            text = f"row {r}: {diam[small]:g} nm {mean.loc[r, small]:.3f} vs others' min {others.min():.3f}"
            (worst_ok if mean.loc[r, small] < others.min() else worst_bad).append(text)
            diff, tol = abs(mean.loc[r, mid] - mean.loc[r, large]), _spread(std, r, (mid, large))
            text = f"row {r}: |{diam[mid]:g} nm - {diam[large]:g} nm| = {diff:.3f} vs fold spread {tol:.3f}"
            (same_ok if diff <= tol else same_bad).append(text)
    return [
        Finding(names[0], claims[0], "not reproduced" if worst_bad else "reproduced", "; ".join(worst_bad + worst_ok)),
        Finding(names[1], claims[1], "not reproduced" if same_bad else "reproduced", "; ".join(same_bad + same_ok)),
    ]


def check_material(spec, results, datasets) -> list[Finding]:
    """Fig 4d: Au- and Ag-trained models do well on Au; the CdSe-trained model does decently on Au.

    The paper: "Again, we see an imbalance in network performance depending on the dataset,
    with both Au- and Ag-trained networks performing well on the Au dataset, and a strong
    dependence on training data for the CdSe and Ag datasets (Figure 3d). For the CdSe and Ag
    datasets, training on similar data does not even provide very high performance. Most
    interestingly, the CdSe-trained model performs decently well on the Au dataset, despite
    the CdSe nanoparticle regions having both different contrast and frequency information
    from the Au nanoparticle regions."

    The paper gives no numbers for these cells; read against the in-distribution scores and
    the fold-to-fold spread (mean and standard deviation over the 5 models, as it reports):

    * "performing well on the Au dataset": the Ag-trained models score on Au at least as
      well as the Au-trained models do on Au (in distribution), less the fold spread of the
      difference ``sqrt(sd_Ag->Au^2 + sd_Au->Au^2)``;
    * "decently well on the Au dataset": the CdSe-trained models lose nothing on Au beyond
      the fold spread compared with their own CdSe set, which the paper calls not very high
      (``dice(CdSe->Au) >= dice(CdSe->CdSe) - sqrt(sd^2 + sd^2)``).
    """
    claims = (
        "Au- and Ag-trained models do well on Au: dice(Ag->Au) >= dice(Au->Au) - fold spread",
        "the CdSe-trained model does decently on Au: dice(CdSe->Au) >= dice(CdSe->CdSe) - fold spread",
    )
    names = ("material: Au and Ag on Au", "material: CdSe on Au")
    exps = [e for e in _experiments(spec, "material") if e in set(results["experiment"])]
    if not exps:
        return [Finding(n, c, "not run", "no material experiment in this study") for n, c in zip(names, claims)]
    well_bad: list[str] = []
    well_ok: list[str] = []
    cdse_bad: list[str] = []
    cdse_ok: list[str] = []
    for e in exps:
        mean, std = matrix(results, e)
        mat = {n: (_text(datasets, n, "material") or "").lower() for n in set(mean.index) | set(mean.columns)}
        pick = {m: [n for n, v in mat.items() if v == m] for m in ("au", "ag", "cdse")}
        if any(len(v) != 1 for v in pick.values()):
            msg = f"{e}: needs exactly one Au, one Ag and one CdSe dataset"
            well_bad.append(msg)
            cdse_bad.append(msg)
            continue
        au, ag, cdse = pick["au"][0], pick["ag"][0], pick["cdse"][0]
        if not {au, ag, cdse} <= set(mean.index) or au not in mean.columns or cdse not in mean.columns:
            msg = f"{e}: needs the Au, Ag and CdSe models tested on Au and CdSe"
            well_bad.append(msg)
            cdse_bad.append(msg)
            continue
        ref, got, tol = mean.loc[au, au], mean.loc[ag, au], _spread(std, ag, (au,))
        tol = math.sqrt(tol**2 + _spread(std, au, (au,)) ** 2)
        text = f"Ag->Au {got:.3f}, Au->Au {ref:.3f} (fold spread {tol:.3f})"
        (well_ok if got >= ref - tol else well_bad).append(text)
        ref, got, tol = mean.loc[cdse, cdse], mean.loc[cdse, au], _spread(std, cdse, (cdse, au))
        text = f"CdSe->Au {got:.3f}, CdSe->CdSe {ref:.3f} (fold spread {tol:.3f})"
        (cdse_ok if got >= ref - tol else cdse_bad).append(text)
    return [
        Finding(names[0], claims[0], "not reproduced" if well_bad else "reproduced", "; ".join(well_bad + well_ok)),
        Finding(names[1], claims[1], "not reproduced" if cdse_bad else "reproduced", "; ".join(cdse_bad + cdse_ok)),
    ]


CHECKS = (check_dose, check_flatfield, check_magnification, check_noise, check_rescaling, check_size, check_material)


def run_checks(spec, results: pd.DataFrame, datasets: pd.DataFrame) -> list[Finding]:
    """All checks on a study's tables (the dose, size and material checks give two findings each)."""
    out = []
    for check in CHECKS:
        found = check(spec, results, datasets)
        out.extend(found if isinstance(found, list) else [found])
    return out


def check_study(study_dir) -> list[Finding]:
    """Run the checks on a finished study directory."""
    from temshift.errors import SpecError
    from temshift.studies.results import load
    from temshift.studies.spec import StudySpec

    d = Path(study_dir)
    if not (d / "results.parquet").is_file() or not (d / "spec.json").is_file():
        raise SpecError(f"{d}: not a finished study directory (no results.parquet / spec.json)")
    spec = StudySpec.model_validate_json((d / "spec.json").read_text())
    results, datasets = load(d)
    return run_checks(spec, results, datasets)
