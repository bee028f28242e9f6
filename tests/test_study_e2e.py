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
