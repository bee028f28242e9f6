"""Same- and cross-dataset evaluation of fold runs."""

import numpy as np
import pandas as pd
import pytest
import torch

from temshift.errors import CheckpointError
from temshift.evaluation import evaluate_model, evaluate_runs, summarize
from temshift.simulate.toy import toy_patches
from temshift.training import TrainSettings, train_fold

torch.set_num_threads(1)


@pytest.fixture
def runs(write_dataset, tmp_path):
    a = write_dataset(
        tmp_path / "A.h5",
        *toy_patches(20, 32, seed=10),
        spec={"name": "A", "dose_e_per_A2": 884, "pixel_scale_nm": 0.02},
    )
    b = write_dataset(
        tmp_path / "B.h5",
        *toy_patches(12, 32, seed=11, noise=1.0),
        spec={"name": "B", "dose_e_per_A2": 80, "pixel_scale_nm": 0.02},
    )
    settings = TrainSettings(epochs=1, batch_size=16, learning_rate=3e-3, progress=False, threads=1)
    dirs = [train_fold(a, f, settings, tmp_path / "runs" / f"fold{f}").run_dir for f in (0, 3)]
    return a, b, dirs


def test_same_dataset_uses_test_block_and_other_dataset_is_whole(runs):
    a, b, dirs = runs
    df = evaluate_runs([dirs[0].parent], [a, b], threads=1)
    assert len(df) == 4
    same = df[df.same_dataset]
    assert set(same.test_dataset) == {"A"} and set(same.fold) == {0, 3}
    assert (same.n_patches == 4 * 8).all()  # 20 patches -> test block of 4, times 8 dihedral variants
    cross = df[~df.same_dataset]
    assert set(cross.test_dataset) == {"B"} and (cross.n_patches == 12 * 8).all()
    np.testing.assert_allclose(cross.ood_gap.to_numpy(), cross.ce.to_numpy() - same.ce.to_numpy())
    assert same.ood_gap.isna().all() and np.isfinite(df.id_gap).all()
    summary = summarize(df)
    assert set(summary.n_models) == {2} and "hard_dice_mean" in summary and "hard_dice_std" in summary
    row = summary[summary.test_dataset == "B"].iloc[0]
    assert row.hard_dice_mean == pytest.approx(cross.hard_dice.mean())
    assert row.hard_dice_std == pytest.approx(cross.hard_dice.std())


def test_results_are_cached_and_gaps_use_cached_own_test(runs, monkeypatch):
    import temshift.evaluation.evaluate as ev

    a, b, dirs = runs
    first = evaluate_runs(dirs, [a, b], threads=1)
    monkeypatch.setattr(ev, "evaluate_model", lambda *a, **k: pytest.fail("should come from the cache"))
    again = evaluate_runs(dirs, b, threads=1)
    pd.testing.assert_series_equal(again.ce, first[~first.same_dataset].ce.reset_index(drop=True))
    assert np.isfinite(again.ood_gap).all()


def test_evaluate_model_dihedral_counts_and_no_dihedral(runs):
    from temshift.models import load_model

    _a, _b, dirs = runs
    model, _ = load_model(dirs[0] / "model.pt")
    images, labels = toy_patches(3, 32, seed=12)
    assert evaluate_model(model, images, labels)["n_patches"] == 24
    assert evaluate_model(model, images, labels, dihedral=False)["n_patches"] == 3


def test_cli_evaluate_writes_tidy_csv(runs, tmp_path):
    from typer.testing import CliRunner

    from temshift.cli import _register, app

    _a, b, dirs = runs
    _register()
    out = tmp_path / "metrics.csv"
    result = CliRunner().invoke(app, ["evaluate", *map(str, dirs), "--on", str(b), "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert len(df) == 2 and {"hard_dice", "pooled_dice", "overseg_share", "fp_rate"} <= set(df.columns)
    assert "mean" in result.output


def test_bad_run_dir(tmp_path, runs):
    with pytest.raises(CheckpointError, match="not a run directory"):
        evaluate_runs([tmp_path / "nothing"], runs[1])
