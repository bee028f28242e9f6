"""The paper's findings, reproduced at `quick` scale on the synthetic repository.

Slow: each preset is simulated, trained (5 folds) and evaluated from scratch, then judged by
`temshift study check`: about 15 minutes on 2 cores with native bfloat16 (AMX), 45-60 minutes on
a CPU without it (float32 training), which alone would exceed the suite's time budget. So they
run on request: ``make science`` (or ``TEMSHIFT_SCIENCE=1 pytest tests/test_science.py``). Findings that need longer
runs (flatfield, magnification, noise) are documented with their measured results in
docs/studies.md. A finding that synthetic data does not reproduce is an expected failure,
strict, so that the day it reproduces the documentation is updated with it.
"""

from __future__ import annotations

import os

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("TEMSHIFT_SCIENCE"), reason="the quick studies take 15-60 min: `make science` runs them"
    ),
]


def _findings(tmp_path_factory, preset: str) -> dict:
    from temshift.studies.check import check_study
    from temshift.studies.runner import run_study

    out = tmp_path_factory.mktemp(preset)
    run = run_study(preset, out, scale="quick", workers=2, figures=False)
    assert run.outcome.ok, run.outcome.failed
    return {f.name: f for f in check_study(out)}


@pytest.fixture(scope="module")
def dose(tmp_path_factory):
    return _findings(tmp_path_factory, "dose")


@pytest.fixture(scope="module")
def rescaling(tmp_path_factory):
    return _findings(tmp_path_factory, "rescaling")


def test_dose_models_tested_at_higher_dose_over_segment(dose):
    assert dose["dose: FP share"].status == "reproduced", dose["dose: FP share"].detail


@pytest.mark.xfail(
    strict=True,
    reason="not reproduced on synthetic data: the 80 e/A2 model scores the cleaner higher-dose "
    "frames better than its own (the 30 A film), and which of the two sessions draws the easier "
    "set decides the 423 and 884 rows; see docs/studies.md",
)
def test_dose_diagonal_beats_every_off_diagonal_cell(dose):
    assert dose["dose: diagonal"].status == "reproduced", dose["dose: diagonal"].detail


def test_standardization_is_the_most_consistent_rescaling(rescaling):
    assert rescaling["rescaling"].status == "reproduced", rescaling["rescaling"].detail
