"""Scientific checks and matrix readings on hand-made result tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from temshift.studies.check import run_checks
from temshift.studies.report import read_matrix
from temshift.studies.results import difficulty_order, matrix
from temshift.studies.spec import load_spec


def _rows(experiment, cells, variant="base", **extra):
    """cells: {(train, test): [dice per fold]} -> result rows."""
    out = []
    for (tr, te), values in cells.items():
        for fold, v in enumerate(values):
            out.append({"experiment": experiment, "variant": variant, "train_dataset": tr, "test_dataset": te,
                        "fold": fold, "split": "test", "same_dataset": tr == te, "hard_dice": v,
                        "overseg_share": extra.get("share", {}).get((tr, te), 0.5),
                        "noise_rho": extra.get("noise_rho"), "noise_rho_max": None})
    return out


def _datasets(spec, **cols):
    rows = []
    for name, ds in spec.datasets.items():
        q = ds.query()
        row = {"dataset": name, "where": json.dumps({k: {"value": v[0], "tol": v[1]} if isinstance(v, tuple) else v
                                                     for k, v in q.items()}),
               "rescale": ds.preprocess.rescale or "standardize",
               "flatfield": ds.preprocess.flatfield if ds.preprocess.flatfield is not None else True}
        for c, f in cols.items():
            row[c] = f(name)
        rows.append(row)
    return pd.DataFrame(rows)


def test_all_five_findings_reproduced_and_not():
    spec = load_spec("all")
    rows = []
    dose = ["Au5_80e", "Au5_423e", "Au5_884e"]
    dval = {"Au5_80e": 80, "Au5_423e": 423, "Au5_884e": 884}
    cells, share = {}, {}
    for tr in dose:
        for te in dose:
            cells[(tr, te)] = [0.9, 0.88] if tr == te else [0.5, 0.52]
            share[(tr, te)] = 0.8 if dval[te] > dval[tr] else 0.2
    rows += _rows("dose", cells, share=share)
    for exp, off in (("sessions_noFF", 0.3), ("sessions_FF", 0.8)):
        names = spec.experiments[exp].train
        rows += _rows(exp, {(a, b): [0.9 if a == b else off] * 2 for a in names for b in names})
    mag = spec.experiments["magnification"].train
    px = {"Au5_0p020nm": 0.02, "Au5_0p026nm": 0.026, "Au5_0p033nm": 0.033, "Au5_0p042nm": 0.042}
    rows += _rows("magnification", {(a, b): [0.9 - abs(np.log(px[a] / px[b]))] * 2 for a in mag for b in mag})
    for rho, v in ((None, 0.3), (0.5, 0.6), (1.0, 0.5)):
        name = "noise_rho=0" if rho is None else f"noise_rho={rho:g}"
        rows += _rows("noise_rho", {("Au5_884e", "Au5_80e"): [v, v]}, variant=name, noise_rho=rho)
    resc = spec.experiments["rescaling"].train
    rows += _rows("rescaling", {("Au5_s082621_norm",) * 2: [0.5, 0.9], ("Au5_s082621_std",) * 2: [0.85, 0.86],
                                ("Au5_s082621_hist",) * 2: [0.8, 0.85]})
    del resc
    results = pd.DataFrame(rows)
    datasets = _datasets(spec, dose_e_per_A2=lambda n: dval.get(n, 423.0), pixel_scale_nm=lambda n: px.get(n, 0.02))
    found = {f.name: f for f in run_checks(spec, results, datasets)}
    assert {n: f.status for n, f in found.items()} == {n: "reproduced" for n in found}, found
    # break each finding
    bad = results.copy()
    bad.loc[(bad.experiment == "dose") & (bad.train_dataset == "Au5_80e") & (bad.test_dataset == "Au5_423e"), "hard_dice"] = 0.95
    bad.loc[bad.experiment == "dose", "overseg_share"] = 1.0 - bad.loc[bad.experiment == "dose", "overseg_share"]
    bad.loc[bad.experiment == "sessions_FF", "hard_dice"] = 0.1
    m = bad.experiment == "magnification"
    bad.loc[m, "hard_dice"] = 1.0 - bad.loc[m, "hard_dice"]
    bad.loc[(bad.experiment == "noise_rho") & (bad.variant != "noise_rho=0"), "hard_dice"] = 0.1
    bad.loc[bad.experiment == "rescaling", "hard_dice"] = np.where(
        bad.loc[bad.experiment == "rescaling", "train_dataset"] == "Au5_s082621_std", [0.1, 0.9] * 3, 0.5)
    found = {f.name: f for f in run_checks(spec, bad, datasets)}
    assert all(f.status == "not reproduced" for f in found.values()), found


def test_findings_not_in_study_are_not_run():
    spec = load_spec("size")
    names = spec.experiments["size"].train
    results = pd.DataFrame(_rows("size", {(a, b): [0.8, 0.7] for a in names for b in names}))
    found = run_checks(spec, results, _datasets(spec))
    assert {f.status for f in found} == {"not run"}


def test_matrix_order_and_reading():
    results = pd.DataFrame(_rows("x", {("a", "a"): [0.6, 0.6], ("a", "b"): [0.2, 0.4], ("b", "a"): [0.5, 0.5],
                                       ("b", "b"): [0.9, 0.9]}))
    mean, std = matrix(results, "x")
    assert list(mean.index) == ["b", "a"] and list(mean.columns) == ["b", "a"]  # easiest first
    assert std.loc["a", "b"] == pytest.approx(0.1) and mean.loc["a", "b"] == pytest.approx(0.3)
    assert difficulty_order(mean) == ["b", "a"]
    text = read_matrix(mean, {"a": "A", "b": "B"})
    assert "diagonal beats every off-diagonal cell in 2 of 2 rows" in text
    assert "B → A beats the reverse by 0.200" in text
