"""Acceptance summary of full-frame scores (criteria of the prediction issue)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from temshift.predict.acceptance import acceptance_summary


def _scores(off_rescaled, off_plain, flagged_off=True, flagged_diag=False):
    rows = []
    for train in ("A", "B"):
        for test in ("A", "B"):
            diag = train == test
            for rescale in (True, False):
                dice = 0.9 if diag else (off_rescaled if rescale else off_plain)
                for k in range(2):
                    rows.append({"train": train, "fold": 0, "test": test, "frame": f"{test}{k}", "diagonal": diag,
                                 "rescale": rescale, "hard_dice": dice,
                                 "flagged": flagged_diag if diag else flagged_off})
    return pd.DataFrame(rows)


def test_summary_criteria():
    good = acceptance_summary(_scores(0.88, 0.4, flagged_off=False))
    assert good["rescaled"] == {"diag": 0.9, "offdiag": 0.88}
    assert good["not_rescaled"]["offdiag"] == pytest.approx(0.4)
    assert good["magnification_ok"]
    assert good["warnings_flag_all_failing"]  # nothing fails by > 0.1 after rescaling
    assert good["warnings_quiet_in_distribution"]
    bad = acceptance_summary(_scores(0.5, 0.4, flagged_off=False, flagged_diag=True))
    assert not bad["magnification_ok"]
    assert not bad["warnings_flag_all_failing"] and not bad["warnings_quiet_in_distribution"]
    assert all(p["failing"] for p in bad["pairs"])


def test_scores_are_assessed_per_batch_of_one_model_and_test_set():
    import json

    from temshift.predict.acceptance import assess_scores

    ref = {"fringe_peaks": [{"period_px": 11.8, "prominence": 3.0}], "fringe_period_px": {"median": 11.8, "n": 9},
           "n_frames": 9}
    rows = []
    for test, period in (("A", 11.8), ("B", None)):  # set B shows no fringes in any frame
        for k in range(4):
            stats = {"fringe_period_px": period if k else None, "rescaled": False}  # one fringe-less frame in A
            rows.append({"train": "A", "fold": 0, "test": test, "frame": f"{test}{k}", "diagonal": test == "A",
                         "rescale": True, "noise_match": True, "hard_dice": 0.9, "stats": json.dumps(stats)})
    scored = assess_scores(pd.DataFrame(rows), {"A": ref})
    assert not scored[scored["test"] == "A"]["flagged"].any()
    assert scored[scored["test"] == "B"]["flagged"].all()
    assert scored[scored["test"] == "B"]["reasons"].str.contains("4 of 4 frames").all()
