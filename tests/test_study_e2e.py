"""End to end with the real stages at ci scale: simulate -> dataset -> train -> evaluate -> report."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner


@pytest.mark.slow
def test_ci_dose_study_end_to_end_and_cached_rerun(ci_dose_study):
    from temshift.studies.runner import run_study

    out, run = ci_dose_study
    assert run.outcome.ok, run.outcome.failed
    res = pd.read_parquet(out / "results.parquet")
    assert len(res) == 3 * 3 * 2
    assert res["hard_dice"].between(0, 1).all() and res["overseg_share"].notna().any()
    assert set(res["same_dataset"]) == {True, False}
    ds = pd.read_csv(out / "datasets.csv")
    assert sorted(ds["dose_e_per_A2"]) == [80.0, 423.0, 884.0]
    assert ds[["histogram_median", "roughness", "particle_contrast"]].notna().all().all()
    for name in ("matrix_dose.png", "fpfn_dose.png", "datasets.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    assert "data:image/png;base64" in (out / "report.html").read_text()

    again = run_study("dose", out, scale="ci", workers=2)
    assert again.outcome.cached == set(run.plan.tasks)
    pd.testing.assert_frame_equal(res, pd.read_parquet(out / "results.parquet"))

    # `study check` runs and exits 0 (reproduced) or 1 (not reproduced): ci numbers carry no science
    proc = subprocess.run(
        [sys.executable, "-m", "temshift", "study", "check", str(out)], capture_output=True, text=True
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "dose" in proc.stdout


def test_cli_show_and_presets():
    from temshift.cli import _register, app

    _register()
    runner = CliRunner()
    result = runner.invoke(app, ["study", "show", "noise", "--scale", "ci", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "noise_rho" in result.output and "estimated time" in result.output
    result = runner.invoke(app, ["study", "presets"])
    assert "magnification" in result.output


@pytest.mark.slow
def test_an_extra_model_is_scored_on_its_patches_through_the_prediction_path(ci_dose_study, tmp_path, monkeypatch):
    """A fold model of the study, shipped as "generalist", scored as an extra row: whole frames through
    predict_frame, the dataset's patches cut from the probabilities at their recorded positions. With
    predict_frame replaced by an oracle that returns each frame's own label, every extra row must score
    exactly 1; shifting the oracle's mask by 40 px must lower it (the patch positions are used)."""
    import hashlib
    import shutil

    import numpy as np

    import temshift.predict.pipeline as pipeline
    from temshift.catalog import Catalog
    from temshift.io import read_frame, read_label
    from temshift.studies.runner import run_study
    from temshift.studies.spec import load_spec, with_extra_models

    out, run = ci_dose_study
    study = tmp_path / "dose"
    shutil.copytree(out, study)
    res = pd.read_parquet(out / "results.parquet")
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("TEMSHIFT_PRETRAINED_DIR", str(weights))
    spec = with_extra_models(load_spec("dose"), ["generalist"])

    def fold_model(fold):
        key = res[(res["train_dataset"] == "Au5_423e") & (res["fold"] == fold)]["train_key"].iloc[0]
        shutil.copy(run.plan.tasks[key].out_dir / "run" / "model.pt", weights / "generalist.pt")

    def extra_rows():
        got = pd.read_parquet(study / "results.parquet")
        return got[got["variant"] == "extra"].set_index("test_dataset")

    # the real prediction path (a model trained at 0.02 nm/px, as these frames: not resampled)
    fold_model(0)
    again = run_study(spec, study, scale="ci", workers=2, processes=False)
    assert again.outcome.ok, again.outcome.failed
    assert len(again.outcome.records) - len(again.outcome.cached) == 3  # only the three extra evaluations ran
    extra = extra_rows()
    assert len(extra) == 3 and (extra["input_zoom"] == 1.0).all() and extra["hard_dice"].between(0, 1).all()
    for test in ("Au5_80e", "Au5_884e"):  # every patch of a dataset the model was not trained on
        same = res[(res["train_dataset"] == "Au5_423e") & (res["fold"] == 0) & (res["test_dataset"] == test)]
        assert extra.loc[test, "n_patches"] == same["n_patches"].iloc[0]
    assert "Extra models." in (study / "report.html").read_text()

    # an oracle prediction: each frame's own label (found by the frame's content), optionally shifted
    labels = {}
    for t in run.plan.tasks.values():
        if t.kind == "repo":
            root = t.out_dir / "repo"
            cat = Catalog.read(root / "catalog.csv")
            for _, row in cat.df.iterrows():
                raw = read_frame(cat.frame_path(row, root)).data
                labels[hashlib.sha256(raw.tobytes()).hexdigest()] = read_label(cat.label_path(row, root))
    shift = [0]

    def oracle(predictor, frame, pixel_scale_nm=None, **kw):
        mask = np.roll(labels[hashlib.sha256(np.asarray(frame).tobytes()).hexdigest()], shift[0], axis=1)
        p = mask.astype(np.float32)
        return pipeline.Segmentation(p, mask, 1.0, pixel_scale_nm, p, mask)

    monkeypatch.setattr(pipeline, "predict_frame", oracle)
    for fold, dx in ((1, 0), (0, 40)):  # other weights bytes: new keys, evaluated again
        shift[0] = dx
        fold_model(fold)
        if dx:
            shutil.rmtree(study / "tasks" / "evaluate")  # the fold-0 extra rows must be recomputed
            shutil.copytree(out / "tasks" / "evaluate", study / "tasks" / "evaluate")
        assert run_study(spec, study, scale="ci", workers=2, processes=False, figures=False).outcome.ok
        dice = extra_rows()["hard_dice"]
        if dx == 0:
            assert (dice == 1.0).all(), dice
        else:
            assert (dice < 1.0).all(), dice


HAND_LABELLED = """
name = "hand"
folds = [0]
[repository]
frame_size = 384
labeling = { enabled = true, boundary_offset_nm = 0.3, boundary_jitter_nm = 0.1 }
specimen = { support_thickness_A = 60 }
[datasets.d80]
where = { material = "Au", diameter_nm = 5, pixel_scale_nm = 0.02, dose_e_per_A2 = "80±5", date = "06/15/22" }
[experiments.e]
train = ["d80"]
"""


@pytest.mark.slow
def test_a_ci_study_with_hand_labels_trains_and_scores_on_them(tmp_path):
    """One dataset, one fold at ci scale: the frames' sidecars say which labels were drawn, the label
    files are those labels (an outward offset: more particle area than the exact footprints), and the
    spec copy and the report say the study used modelled hand labels (and its 6 nm film)."""
    import json

    from temshift.catalog import Catalog
    from temshift.io import read_label
    from temshift.studies.runner import run_study
    from temshift.studies.spec import parse_spec

    out = tmp_path / "hand"
    run = run_study(parse_spec(HAND_LABELLED), out, scale="ci", workers=1, processes=False)
    assert run.outcome.ok, run.outcome.failed
    (repo,) = [t for t in run.plan.tasks.values() if t.kind == "repo"]
    root = repo.out_dir / "repo"
    cat = Catalog.read(root / "catalog.csv")
    assert len(cat) == 2
    for _, row in cat.df.iterrows():
        params = json.loads((root / row["sim_params_file"]).read_text())
        lab = params["labeling"]
        assert lab["enabled"] and lab["boundary_offset_nm"] == 0.3 and lab["boundary_jitter_nm"] == 0.1
        assert lab["n_labelled"] > 0
        area = float(read_label(cat.label_path(row, root)).mean())
        assert area == pytest.approx(params["label_area_fraction"], abs=1e-5)
        assert area > lab["exact_area_fraction"]
        assert params["support_thickness_A"] == 60.0 and params["specimen"] == {"support_thickness_A": 60.0}
    assert json.loads((out / "spec.json").read_text())["repository"]["labeling"]["enabled"] is True
    assert "modelled hand labels for training and test" in (out / "report.html").read_text()
    assert "<b>Specimen.</b> support_thickness_A = 60" in (out / "report.html").read_text()
    assert pd.read_parquet(out / "results.parquet")["hard_dice"].between(0, 1).all()
