"""Small things a new user met: --version, README commands, single-model tables, figure axis order."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

import temshift
from temshift.cli import _register, app

ROOT = Path(__file__).resolve().parents[1]


def test_version_option():
    _register()
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"temshift {temshift.__version__}"


def _command_paths() -> set[tuple[str, ...]]:
    import typer.main

    _register()
    root = typer.main.get_command(app)
    paths = set()

    def walk(cmd, prefix):
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.add((*prefix, name))
            walk(sub, (*prefix, name))

    walk(root, ())
    return paths


def test_readme_names_only_existing_commands():
    paths = _command_paths()
    text = (ROOT / "README.md").read_text()
    used = set()
    for m in re.finditer(r"temshift ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", text):
        words = m.group(1).split()
        if (words[0],) not in paths:
            continue  # prose such as "temshift builds"
        if len(words) == 2 and any(p[0] == words[0] and len(p) == 2 for p in paths):
            # a group: the second word must be one of its commands
            assert tuple(words) in paths, f"README names `temshift {' '.join(words)}`, which does not exist"
            used.add(tuple(words))
    assert ("dataset", "info") in used, "README should show how to inspect a dataset (`temshift dataset info`)"


def test_single_model_summary_prints_no_nan():
    from temshift.evaluation import summarize
    from temshift.evaluation.evaluate import mean_std_text

    df = pd.DataFrame(
        [
            {
                "train_dataset": "a",
                "test_dataset": "a",
                "same_dataset": True,
                "fold": 0,
                "hard_dice": 0.81,
                "ce": 0.2,
                "overseg_share": 0.4,
            }
        ]
    )
    row = summarize(df).iloc[0]
    text = mean_std_text(row["hard_dice_mean"], row["hard_dice_std"])
    assert text == "0.810" and "nan" not in text
    assert mean_std_text(0.8, 0.05) == "0.800 ± 0.050"


def test_dose_matrix_axis_is_sorted_numerically(monkeypatch):
    from temshift.studies import figures
    from temshift.studies.spec import load_spec

    spec = load_spec("dose")
    plan = types.SimpleNamespace(spec=spec)
    names = ["Au5_80e", "Au5_423e", "Au5_884e"]
    # difficulty order would put the 423 e/A2 set last
    diag = {"Au5_80e": 0.9, "Au5_884e": 0.85, "Au5_423e": 0.7}
    rows = [
        {
            "experiment": "dose",
            "split": "test",
            "variant": "base",
            "train_dataset": a,
            "test_dataset": b,
            "fold": f,
            "hard_dice": diag[a] if a == b else 0.5,
            "overseg_share": 0.5,
        }
        for a in names
        for b in names
        for f in (0, 1)
    ]
    seen = {}
    monkeypatch.setattr(figures, "draw_matrix", lambda mean, *a, **k: seen.setdefault("rows", list(mean.index)))
    monkeypatch.setattr(figures, "draw_fpfn", lambda *a, **k: None)
    figures.draw_all(plan, pd.DataFrame(rows), pd.DataFrame(), Path("/nonexistent"))
    assert seen["rows"] == names
    assert figures.parameter_order(plan, ["Au5_884e", "Au5_80e"]) == ["Au5_80e", "Au5_884e"]
