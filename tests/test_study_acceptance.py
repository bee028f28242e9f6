"""Acceptance summary of full-frame scores (criteria of the prediction issue)."""

from __future__ import annotations

import pandas as pd
import pytest

from temshift.studies.acceptance import acceptance_summary


def _scores(off_rescaled, off_plain, flagged_off=True, flagged_diag=False):
    rows = []
    for train in ("A", "B"):
        for test in ("A", "B"):
            diag = train == test
            for rescale in (True, False):
                dice = 0.9 if diag else (off_rescaled if rescale else off_plain)
                for k in range(2):
                    rows.append(
                        {
                            "train": train,
                            "fold": 0,
                            "test": test,
                            "frame": f"{test}{k}",
                            "diagonal": diag,
                            "rescale": rescale,
                            "hard_dice": dice,
                            "flagged": flagged_diag if diag else flagged_off,
                        }
                    )
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


def _reference():
    """The training reference of set A: fringes of period 11.8 px in each of 9 frames."""
    from temshift.datasets.records import TrainingStatistics
    from temshift.predict.shift import TrainingReference

    stats = {
        "version": 2,
        "tile": 256,
        "n_patches": 36,
        "dataset": "a.h5",
        "n_frames": 9,
        "fringe_peaks": [{"period_px": 11.8, "prominence": 3.0}],
        "fringe_period_px": {"median": 11.8, "spread": 0.0, "min": 11.8, "max": 11.8, "n": 9},
    }
    return TrainingReference(statistics=TrainingStatistics.model_validate(stats))


def test_scores_are_assessed_per_batch_of_one_model_and_test_set():
    import json

    from temshift.predict.shift import TrainingReference
    from temshift.studies.acceptance import assess_scores

    ref = _reference()
    assert TrainingReference.from_stored(json.loads(json.dumps(ref.to_stored()))) == ref  # references.json
    rows = []
    for test, period in (("A", 11.8), ("B", None)):  # set B shows no fringes in any frame
        for k in range(4):
            stats = {"fringe_period_px": period if k else None, "rescaled": False}  # one fringe-less frame in A
            rows.append(
                {
                    "train": "A",
                    "fold": 0,
                    "test": test,
                    "frame": f"{test}{k}",
                    "diagonal": test == "A",
                    "rescale": True,
                    "noise_match": True,
                    "hard_dice": 0.9,
                    "stats": json.dumps(stats),
                }
            )
    scored = assess_scores(pd.DataFrame(rows), {"A": ref})
    assert not scored[scored["test"] == "A"]["flagged"].any()
    assert scored[scored["test"] == "B"]["flagged"].all()
    assert scored[scored["test"] == "B"]["reasons"].str.contains("4 of 4 frames").all()


def test_acceptance_command_reassesses_stored_scores(cli, tmp_path):
    """`temshift study acceptance --from-scores` prints the summary and writes it with --out (library records)."""
    import json

    from temshift.studies.acceptance import write_acceptance

    ref = _reference()
    rows = [
        {
            "train": "A",
            "fold": 0,
            "test": test,
            "frame": f"{test}{k}",
            "diagonal": test == "A",
            "rescale": True,
            "noise_match": True,
            "hard_dice": 0.9 if test == "A" else 0.5,
            "stats": json.dumps({"fringe_period_px": 11.8 if test == "A" else None, "rescaled": False}),
        }
        for test in ("A", "B")
        for k in range(3)
    ]
    scores = pd.DataFrame(rows)
    scores.attrs["references"] = {"A": ref}
    write_acceptance(scores, {}, tmp_path / "acc")
    code, out, err = cli("study", "acceptance", "--from-scores", tmp_path / "acc", "--out", tmp_path / "again")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rescaled"]["diag"] == pytest.approx(0.9) and summary["rescaled"]["offdiag"] == pytest.approx(0.5)
    assert summary["warnings_flag_all_failing"] and summary["warnings_quiet_in_distribution"]
    assert json.loads((tmp_path / "again" / "acceptance.json").read_text()) == summary
    code, _, err = cli("study", "acceptance")
    assert code == 1 and "--from-scores" in err
