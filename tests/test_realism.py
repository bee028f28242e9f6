"""The realism benchmark: released models on synthetic datasets beside the real scores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared_data import PUBLISHED as SHARED
from temshift.realism.plan import RealismScale, resolve
from temshift.realism.summary import cell_table, gap_summary, real_reference, reference_cells
from temshift.realism.training_sets import RealismError, read_training_sets

HEADER = "Model Name,Fold,Dataset Trained On,Np Diameter (nm),Np Material,Pixel Scale (nm),Dosage (e/A2)\n"
SETS = {  # file stem -> (training set name, dose)
    "5nmAu330kX80eUTC": ("Au_5nm_330kx_80e_Std_UTC_FFCorr_Team05_Images", 80),
    "5nmAu330kX884eUTC": ("Au_5nm_330kx_884e_Std_UTC_FFCorr_Team05_Images", 884),
}
TINY = RealismScale("tiny", 512, 1, "projection", 1, "projection", False, {}, patch_px=256, label_frame_size=512)


def _write_details(folder: Path, rows) -> None:
    (folder / "model_details.csv").write_text(HEADER + "".join(",".join(map(str, r)) + "\n" for r in rows))


@pytest.fixture(scope="module")
def models_dir(published_script, tmp_path_factory):
    """Two training sets (80 and 884 e/A2), one fold each: released weights when available, else a toy
    model saved in the released format."""
    folder = tmp_path_factory.mktemp("models")
    toy = None
    if not SHARED.is_dir():
        toy = folder / "toy.h5"
        subprocess.run(
            [sys.executable, str(published_script), str(toy), str(folder / "x.npy"), str(folder / "y.npy")],
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            cwd=folder,
        )
    rows = []
    for stem, (name, dose) in SETS.items():
        file = f"UNet_{stem}_fold0_seed962_model.h5"
        shutil.copy(toy if toy else SHARED / file, folder / file)
        rows.append([f"Unet_{stem}_fold0_seed962_model.h5", 0, name, 5, "Au", 0.02, dose])  # the table's spelling
    _write_details(folder, rows)
    if toy:
        toy.unlink()
    return folder


@pytest.fixture(scope="module")
def run(models_dir, tmp_path_factory):
    from temshift.realism.runner import run_realism

    out = tmp_path_factory.mktemp("realism")
    return run_realism(models_dir, out, scale=TINY, seed=3, workers=2, processes=False), out


def test_training_sets_from_table(models_dir):
    sets = read_training_sets(models_dir)
    assert [t.key for t in sets] == ["Au5nm_0.020nm_80e", "Au5nm_0.020nm_884e"]
    assert all(t.support == "UT Carbon" and len(t.models) == 1 for t in sets)


def test_session_from_name_selects_its_catalog_rows(tmp_path):
    from temshift.catalog import Catalog
    from temshift.realism.training_sets import TrainingSet, catalog_query

    ts = TrainingSet("Au_5nm_330kx_423e_UTC_Team05_Std_Sess0821FFCorr_Images", "Au", 5, 0.02, 423, "UT Carbon", (8, 21))
    rows = Catalog.published().query(**catalog_query(ts, Catalog.published())).df
    assert set(rows["date"]) == {"08/26/21"} and len(rows) == 8


def test_end_to_end_writes_matrix_gaps_and_statistics(run):
    res, out = run
    assert res.outcome.ok, res.outcome.failed
    for name in ("realism.json", "matrix.csv", "realism.png", "report.html"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "realism.json").read_text())
    matrix = pd.DataFrame(summary["matrix"])
    assert len(matrix) == 4 and (matrix["n_models"] == 1).all()
    assert matrix["hard_dice_mean"].between(0, 1).all()
    known = matrix[matrix["real_hard_dice"].notna()]
    # 884 -> 80, 884 -> 884 (whole dataset) and 80 -> 80 are known
    assert len(known) == 3 and summary["gaps"]["known_cells"] == 3
    cell = known[(known.train == "Au5nm_0.020nm_884e") & (known.test == "Au5nm_0.020nm_884e")].iloc[0]
    assert cell["real_hard_dice"] == pytest.approx(0.923)
    assert summary["gaps"]["mean_abs_gap"] == pytest.approx(
        float((known["hard_dice_mean"] - known["real_hard_dice"]).abs().mean())
    )
    stats = summary["image_statistics"]
    assert stats["Au5nm_0.020nm_80e"]["real_particle_contrast"] == pytest.approx(0.239)
    assert np.isfinite(stats["Au5nm_0.020nm_884e"]["particle_contrast"])
    labels = summary["label_statistics"]
    assert labels["real"]["particles"] == 8 and labels["synthetic"]["frames"] == 1
    assert labels["synthetic"]["particles_median"] >= 1
    assert pd.read_csv(out / "matrix.csv").shape[0] == 4


def test_resume_reuses_every_task(run, models_dir):
    from temshift.realism.runner import run_realism

    res, out = run
    again = run_realism(models_dir, out, scale=TINY, seed=3, workers=1, processes=False)
    assert again.outcome.cached == set(again.plan.tasks)
    assert again.summary["gaps"] == res.summary["gaps"]


def test_seed_and_simulator_change_the_simulation_keys(models_dir, tmp_path):
    from temshift.realism.plan import simulator_fingerprint

    a, b = resolve(models_dir, tmp_path, TINY, seed=1), resolve(models_dir, tmp_path, TINY, seed=2)
    assert {k for k in a.tasks if k.startswith("repo")} != {k for k in b.tasks if k.startswith("repo")}
    # a changed simulator re-simulates: its source fingerprint is part of every repo task's key
    repos = [t for t in a.tasks.values() if t.kind == "repo"]
    assert len(repos) == 3 and all(t.inputs["simulator"] == simulator_fingerprint() for t in repos)


def test_specimen_options_are_part_of_the_simulation_keys_and_bad_ones_are_named(models_dir, tmp_path):
    from temshift.simulate.repository import SimulationError

    draws = resolve(models_dir, tmp_path, TINY, seed=1)
    thick = resolve(models_dir, tmp_path, TINY, seed=1, specimen={"support_thickness_A": 100})
    repos = {t.label: t for t in draws.tasks.values() if t.kind == "repo"}
    assert all("specimen" not in t.inputs for t in repos.values())  # default runs keep their keys
    for task in (t for t in thick.tasks.values() if t.kind == "repo"):
        assert task.inputs["specimen"] == {"support_thickness_A": 100.0} and task.key != repos[task.label].key
    assert thick.specimen == {"support_thickness_A": 100.0} and draws.specimen == {}
    with pytest.raises(SimulationError, match="unknown specimen option 'film'"):
        resolve(models_dir, tmp_path, TINY, seed=1, specimen={"film": 1})


def test_a_run_with_specimen_options_simulates_them_and_says_so(models_dir, tmp_path):
    import json

    from temshift.realism.runner import run_realism

    res = run_realism(
        models_dir,
        tmp_path,
        scale=TINY,
        seed=3,
        workers=1,
        processes=False,
        evaluate=False,
        only=["884e"],
        specimen={"support_thickness_A": 100},
    )
    assert res.outcome.ok
    sidecars = list((tmp_path / "tasks" / "repo").rglob("*_sim.json"))
    assert sidecars and all(json.loads(f.read_text())["support_thickness_A"] == 100.0 for f in sidecars)
    assert json.loads((tmp_path / "realism.json").read_text())["specimen"] == {"support_thickness_A": 100.0}
    assert "support_thickness_A = 100" in (tmp_path / "report.html").read_text()


def test_mean_abs_gap_on_hand_made_cells():
    from temshift.realism.training_sets import TrainingSet

    sets = [TrainingSet("a", "Au", 5, 0.02, 80), TrainingSet("b", "Au", 5, 0.02, 884)]
    a, b = (t.key for t in sets)
    evals = pd.DataFrame(
        [
            {"train": b, "test": a, "fold": 0, "hard_dice": 0.60, "pooled_dice": 0.6, "overseg_share": 0.5},
            {"train": b, "test": a, "fold": 1, "hard_dice": 0.70, "pooled_dice": 0.7, "overseg_share": 0.5},
            {"train": b, "test": b, "fold": 0, "hard_dice": 0.90, "pooled_dice": 0.9, "overseg_share": 0.5},
            {"train": a, "test": a, "fold": 0, "hard_dice": 0.80, "pooled_dice": 0.8, "overseg_share": 0.5},
            {"train": a, "test": b, "fold": 0, "hard_dice": 0.95, "pooled_dice": 0.9, "overseg_share": 0.9},
        ]
    )
    cells = cell_table(evals, reference_cells(sets, real_reference()))
    g = gap_summary(cells)
    # 884 -> 80: 0.65 vs 0.464; 884 -> 884: 0.90 vs 0.923 (whole dataset); 80 -> 80: 0.80 vs 0.852
    assert g["known_cells"] == 3
    assert g["mean_abs_gap"] == pytest.approx((0.186 + 0.023 + 0.052) / 3)
    assert g["worst"]["train"] == b and g["worst"]["test"] == a and g["worst"]["gap"] == pytest.approx(0.186)
    assert g["easier_on_synthetic"] == 1
    row = cells[(cells.train == b) & (cells.test == a)].iloc[0]
    assert row["hard_dice_std"] == pytest.approx(np.std([0.6, 0.7], ddof=1))


def test_reference_statistics_definitions():
    from temshift.datasets.contrast import median_contrast
    from temshift.datasets.statistics import spectral_roughness

    img = np.zeros((2, 8, 8), np.float32)
    lab = np.zeros((2, 8, 8), np.uint8)
    img[:, :2, :2], lab[:, :2, :2] = -1.5, 1
    img[:, 4:, :] = 0.5  # half the background at 0.5, the rest at 0
    assert median_contrast(img, lab) == pytest.approx(np.median(img[lab == 0]) + 1.5)
    assert spectral_roughness(np.ones((16, 16))) == 0.0
    checker = np.indices((16, 16)).sum(0) % 2 * 2.0 - 1.0
    assert spectral_roughness(checker) == pytest.approx(0.5)  # all power at (0.5, 0.5) cycles/px


def test_folder_without_table_is_refused(tmp_path):
    with pytest.raises(RealismError, match="no model_details.csv"):
        read_training_sets(tmp_path)


def test_unknown_training_set_is_refused(models_dir, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for f in models_dir.glob("*.h5"):
        shutil.copy(f, folder / f.name)
    stem = next(iter(SETS))
    _write_details(folder, [[f"Unet_{stem}_fold0_seed962_model.h5", 0, "Au_5nm_1234e_Images", 5, "Au", 0.02, 1234]])
    with pytest.raises(RealismError, match="training set Au_5nm_1234e_Images: no catalog rows"):
        resolve(folder, tmp_path / "out", TINY)


def test_missing_model_file_names_the_row(models_dir, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    _write_details(folder, [["Unet_x_fold0_seed962_model.h5", 0, "Au_5nm_80e", 5, "Au", 0.02, 80]])
    with pytest.raises(RealismError, match="row 2: model file Unet_x_fold0_seed962_model.h5 not found"):
        read_training_sets(folder)


def test_cli_reports_one_line_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    p = subprocess.run(
        [sys.executable, "-m", "temshift", "realism", "--models", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 1
    assert "no model_details.csv" in p.stderr and "Traceback" not in p.stderr


def _summary(seed: int, dice: dict, contrast: float, simulator: str = "sim1") -> dict:
    """A realism.json with the given synthetic hard dice per (train, test) and 80 e/A2 contrast."""
    real = {("a", "a"): 0.852, ("b", "a"): 0.464}
    matrix = [
        {"train": tr, "test": te, "hard_dice_mean": v, "real_hard_dice": real.get((tr, te), float("nan"))}
        for (tr, te), v in dice.items()
    ]
    gaps = [abs(v - real[k]) for k, v in dice.items() if k in real]
    return {
        "seed": seed,
        "scale": "quick",
        "simulator_fingerprint": simulator,
        "matrix": matrix,
        "gaps": {"mean_abs_gap": float(np.mean(gaps))},
        "image_statistics": {
            "a": {"particle_contrast": contrast, "real_particle_contrast": 0.239},
            "b": {"particle_contrast": 0.5, "real_particle_contrast": None},
        },
    }


def test_seeds_separate_the_systematic_gap_from_one_seeds_noise():
    from temshift.realism.seeds import combine_seeds, seeds_markdown

    # 80 -> 80 swings by 0.2 around the real score; 884 -> 80 is too easy in both seeds
    one = _summary(11, {("a", "a"): 0.752, ("b", "a"): 0.564, ("a", "b"): 0.9}, 0.20)
    two = _summary(12, {("a", "a"): 0.952, ("b", "a"): 0.664, ("a", "b"): 0.8}, 0.30)
    c = combine_seeds([one, two])
    cells = {(r["train"], r["test"]): r for r in c["cells"]}
    assert set(cells) == {("a", "a"), ("b", "a")}  # cells without a real score are not gaps
    assert cells[("a", "a")]["mean"] == pytest.approx(0.852) and cells[("a", "a")]["gap_of_mean"] == pytest.approx(0)
    assert cells[("a", "a")]["sd"] == pytest.approx(np.std([0.752, 0.952], ddof=1))
    assert cells[("b", "a")]["gap_of_mean"] == pytest.approx(0.15)
    assert c["mean_abs_gap_of_seed_means"] == pytest.approx(0.075)
    assert c["per_seed_mean_abs_gap"] == pytest.approx([0.1, 0.15])
    assert c["mean_over_seeds_of_mean_abs_gap"] == pytest.approx(0.125)
    assert c["worst_gap_of_seed_means"]["train"] == "b"
    assert c["contrast"]["a"]["mean"] == pytest.approx(0.25) and set(c["contrast"]) == {"a"}
    assert c["contrast"]["a"]["ratio_of_mean"] == pytest.approx(0.25 / 0.239)
    table = seeds_markdown(c, {"a": "80 e/A2", "b": "884 e/A2"})
    assert "| 884 e/A2 | 80 e/A2 | 0.564 | 0.664 | 0.614 ± 0.071 | 0.464 | +0.150 |" in table
    with pytest.raises(ValueError, match="differ in simulator_fingerprint"):
        combine_seeds([one, _summary(13, {("a", "a"): 0.8}, 0.2, simulator="sim2")])
    thick = {**_summary(13, {("a", "a"): 0.8}, 0.2), "specimen": {"support_thickness_A": 100.0}}
    with pytest.raises(ValueError, match="differ in specimen"):
        combine_seeds([one, thick])


def test_several_seeds_run_into_their_own_folders_and_are_combined(run, models_dir, tmp_path):
    from temshift.realism.runner import run_realism_seeds

    res, out = run
    (tmp_path / "seed-3").symlink_to(out)  # an earlier run of seed 3 is reused, not repeated
    many = run_realism_seeds(models_dir, tmp_path, [3, 4, 3], scale=TINY, workers=2, processes=False)
    assert [r.plan.seed for r in many.runs] == [3, 4]
    assert many.runs[0].outcome.cached == set(many.runs[0].plan.tasks)
    assert (tmp_path / "seed-4" / "realism.json").is_file()
    saved = json.loads((tmp_path / "seeds.json").read_text())
    assert saved["seeds"] == [3, 4] and saved == json.loads(json.dumps(many.combined))
    assert saved["per_seed_mean_abs_gap"][0] == pytest.approx(res.summary["gaps"]["mean_abs_gap"])
    assert "seed 3 | seed 4" in (tmp_path / "seeds.md").read_text()


def test_statistics_only_runs_no_model_and_reuses_the_full_runs_sets(run, models_dir, tmp_path):
    """`--statistics-only`: the same simulation, dataset, statistics and label tasks as a full run
    (so its sets are shared), no evaluation, and the contrast beside the real one."""
    from temshift.realism.runner import run_realism

    res, out = run
    full = resolve(models_dir, out, TINY, seed=3)
    only = resolve(models_dir, out, TINY, seed=3, evaluate=False)
    assert {t.kind for t in only.tasks.values()} == {"repo", "dataset", "stats", "labels"}
    assert set(only.tasks) == {k for k, t in full.tasks.items() if t.kind != "evaluate"}
    again = run_realism(models_dir, out, scale=TINY, seed=3, workers=1, processes=False, evaluate=False)
    assert again.outcome.cached == set(again.plan.tasks)  # nothing simulated again
    fresh = run_realism(models_dir, tmp_path, scale=TINY, seed=3, workers=2, processes=False, evaluate=False)
    assert fresh.outcome.ok and not fresh.plan.evaluations
    summary = json.loads((tmp_path / "realism.json").read_text())
    assert summary["models_evaluated"] is False and summary["matrix"] == []
    assert summary["gaps"]["mean_abs_gap"] is None
    assert summary["image_statistics"] == res.summary["image_statistics"]
    assert summary["label_statistics"]["synthetic"] == res.summary["label_statistics"]["synthetic"]
    assert "Statistics only" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "realism.png").is_file()  # contrast and example patches, an empty matrix


def test_set_selects_training_sets_and_refuses_one_that_matches_none(models_dir, tmp_path):
    """`--set 884e` plans the 884 e/A2 set alone (its models on it); an unknown key is one line naming it."""
    from temshift.realism.training_sets import RealismError

    full = resolve(models_dir, tmp_path, TINY, seed=3)
    one = resolve(models_dir, tmp_path, TINY, seed=3, only=["884E"])
    assert [t.key for t in one.training_sets] == ["Au5nm_0.020nm_884e"]
    assert set(one.datasets) == {"Au5nm_0.020nm_884e"}
    assert {(e[0], e[3]) for e in one.evaluations} == {("Au5nm_0.020nm_884e", "Au5nm_0.020nm_884e")}
    assert one.datasets["Au5nm_0.020nm_884e"] == full.datasets["Au5nm_0.020nm_884e"]  # shared with a full run
    with pytest.raises(RealismError, match="'423e' matches no training set") as err:
        resolve(models_dir, tmp_path, TINY, seed=3, only=["884e", "423e"])
    assert "\n" not in str(err.value) and "Au5nm_0.020nm_80e" in str(err.value)
