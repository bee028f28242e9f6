"""The synthetic repository: layout, catalog, determinism, resume, errors, failures, datasets, CLI."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from temshift.catalog import Catalog
from temshift.errors import TemshiftError
from temshift.io import read_frame, read_label
from temshift.simulate.repository import SimulationError, simulate_repository

NOISE_FOLDER = "2022_06_15 5nm Au nanoparticle on UTC noise series"
SMALL = {"where": {"folder": NOISE_FOLDER}, "frames_per_group": 1, "frame_size": 256, "mode": "projection", "seed": 3}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("repo")
    cat = simulate_repository(out, workers=1, **SMALL)
    return out, cat


def test_layout_and_catalog(repo):
    out, cat = repo
    assert len(cat) == 2  # one frame per dose (80 and 884 e/A2)
    assert sorted(cat.df["dose_e_per_A2"]) == [80.0, 884.0]
    again = Catalog.read(out / "catalog.csv")
    assert len(again) == 2
    assert list(again.to_published().columns[:10]) == list(Catalog.published().to_published().columns[:10])
    for row in again.rows():
        assert row["file"].endswith(".tif") and row["source_file"].endswith(".dm3")
        frame = read_frame(again.frame_path(row, out), expected_pixel_scale_nm=row["pixel_scale_nm"])
        assert frame.data.shape == (256, 256) and frame.data.dtype == np.float32
        assert frame.pixel_scale_nm == pytest.approx(0.02)
        label = read_label(again.label_path(row, out), shape=frame.data.shape)
        assert 0 < label.mean() < 0.9
        assert row["sim_mode"] == "projection" and float(row["sim_defocus_A"]) != 0
        assert (out / row["sim_params_file"]).is_file()


def test_deterministic_and_resumes(repo, tmp_path):
    out, _ = repo
    frames = sorted(out.rglob("*.tif"))
    mtimes = [f.stat().st_mtime_ns for f in frames]
    simulate_repository(out, workers=1, **SMALL)  # resume: nothing to do
    assert [f.stat().st_mtime_ns for f in frames] == mtimes
    first = frames[0]
    other = tmp_path / "again"
    simulate_repository(other, workers=1, **{**SMALL, "where": {"folder": NOISE_FOLDER, "dose_e_per_A2": 884}})
    twin = other / first.relative_to(out)
    if twin.exists():
        np.testing.assert_array_equal(read_frame(twin).data, read_frame(first).data)
    else:  # the 80 e/A2 frame came first
        twin = next(other.rglob("*.tif"))
        np.testing.assert_array_equal(read_frame(twin).data, read_frame(out / twin.relative_to(other)).data)


def test_dask_workers_give_the_same_frames(repo, tmp_path):
    out, _ = repo
    simulate_repository(tmp_path, workers=2, **SMALL)
    for f in out.rglob("*.tif"):
        np.testing.assert_array_equal(read_frame(tmp_path / f.relative_to(out)).data, read_frame(f).data)


def _bad_catalog(tmp_path, column, value):
    df = Catalog.published().to_published().head(3).copy()
    df[column] = df[column].astype(object)
    df.loc[1, column] = value
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "column,value,needle",
    [
        ("Material", "Os", "'Material'"),
        ("Dosage (e/A2)", "-5", "'Dosage (e/A2)'"),
        ("Pixel Scale (nm)", "0", "'Pixel Scale (nm)'"),
        ("Support", "graphene", "'Support'"),
    ],
)
def test_bad_rows_refused_up_front(tmp_path, column, value, needle):
    bad = _bad_catalog(tmp_path, column, value)
    # non-positive doses / pixel scales are refused by the catalog reader itself (CatalogError)
    with pytest.raises(TemshiftError) as err:
        simulate_repository(tmp_path / "r", catalog=bad, frame_size=256)
    msg = str(err.value)
    assert "row 3" in msg and needle in msg and "\n" not in msg
    assert not (tmp_path / "r").exists()


def test_bad_options_refused(tmp_path):
    with pytest.raises(TemshiftError):
        simulate_repository(tmp_path, mode="fast")
    with pytest.raises(TemshiftError, match="frame size"):
        simulate_repository(tmp_path, frame_size=10)
    with pytest.raises(TemshiftError, match="does not fit"):
        simulate_repository(tmp_path, where=["diameter_nm=20"], frame_size=256)


def test_failed_frame_is_reported_and_others_kept(tmp_path, monkeypatch):
    import temshift.simulate.micrograph as micrograph

    real = micrograph.simulate_frame

    def flaky(req, *a, **k):
        if req.dose_e_per_A2 < 100:
            raise RuntimeError("boom")
        return real(req, *a, **k)

    monkeypatch.setattr(micrograph, "simulate_frame", flaky)
    with pytest.raises(SimulationError, match="1 of 2 frames failed.*80 e/A2.*boom"):
        simulate_repository(tmp_path, workers=1, **SMALL)
    assert len(list(tmp_path.rglob("*.tif"))) == 1
    assert len(Catalog.read(tmp_path / "catalog.csv")) == 1
    failures = pd.read_csv(tmp_path / "simulation_failures.csv")
    assert failures.loc[0, "dose_e_per_A2"] == 80 and "boom" in failures.loc[0, "error"]
    monkeypatch.setattr(micrograph, "simulate_frame", real)
    assert len(simulate_repository(tmp_path, workers=1, **SMALL)) == 2  # retry completes
    assert not (tmp_path / "simulation_failures.csv").exists()


def test_builds_a_dataset_with_the_foundation_builder(repo, tmp_path):
    datasets = pytest.importorskip("temshift.datasets")
    out, _ = repo
    cat = Catalog.read(out / "catalog.csv")
    spec = datasets.DatasetSpec(name="sim", where={"dose_e_per_A2": 884}, patch_size=128, min_particle_pixels=50)
    path = datasets.build_dataset(cat, out, spec, tmp_path / "sim.h5", workers=1)
    ds = datasets.load_dataset(path)
    assert ds.images.shape[1:] == (128, 128) and len(ds.images) >= 1
    assert ds.labels.max() == 1


def test_cli_writes_repository_and_preview(tmp_path, monkeypatch, capsys):
    from temshift.cli import main

    args = [
        "temshift",
        "simulate",
        "--out",
        str(tmp_path / "r"),
        "--where",
        f"folder={NOISE_FOLDER}",
        "--where",
        "dose_e_per_A2=884",
        "--frame-size",
        "256",
        "--mode",
        "projection",
        "--workers",
        "1",
        "--seed",
        "1",
        "--preview",
        str(tmp_path / "p.png"),
    ]
    monkeypatch.setattr(sys, "argv", args)
    try:
        main()
    except SystemExit as done:
        assert done.code in (0, None)
    assert (tmp_path / "p.png").stat().st_size > 10_000
    assert len(Catalog.read(tmp_path / "r" / "catalog.csv")) == 13
    monkeypatch.setattr(sys, "argv", ["temshift", "simulate", "--out", str(tmp_path / "x"), "--where", "material=Pt"])
    with pytest.raises(SystemExit) as bad:
        main()
    assert bad.value.code == 1
    err = capsys.readouterr().err
    assert "error:" in err and "material" in err.lower()


def test_specimen_options_set_every_frame_and_are_never_mixed(repo, tmp_path):
    import json

    out, _ = repo
    thick = tmp_path / "thick"
    cat = simulate_repository(thick, workers=1, specimen={"support_thickness_A": "80"}, **SMALL)
    assert set(cat.df["sim_support_thickness_A"].astype(float)) == {80.0}
    for sidecar in thick.rglob("*_sim.json"):
        assert json.loads(sidecar.read_text())["specimen"] == {"support_thickness_A": 80.0}
    for sidecar in out.rglob("*_sim.json"):  # frames of the simulator's draws record no options
        params = json.loads(sidecar.read_text())
        assert "specimen" not in params and params["support_thickness_A"] != 80.0
    # the same particles, drawn the same: the labels are equal, the images are not (the film differs)
    for frame in out.rglob("*.tif"):
        assert not np.array_equal(read_frame(frame).data, read_frame(thick / frame.relative_to(out)).data)
    for label in out.rglob("*_label.png"):
        np.testing.assert_array_equal(read_label(label), read_label(thick / label.relative_to(out)))
    # resuming with the same options does nothing; other options, or none, are refused by name
    simulate_repository(thick, workers=1, specimen={"support_thickness_A": 80}, **SMALL)
    with pytest.raises(SimulationError, match="specimen"):
        simulate_repository(thick, workers=1, **SMALL)
    with pytest.raises(SimulationError, match="specimen"):
        simulate_repository(out, workers=1, specimen={"cluster_fraction": 0.0}, **SMALL)


@pytest.mark.parametrize(
    ("specimen", "needle"),
    [
        ({"film_A": 50}, "unknown specimen option 'film_A'"),
        ({"support_thickness_A": 0}, "support_thickness_A must be > 0"),
        ({"cluster_fraction": 1.5}, r"cluster_fraction must be in \[0, 1\]"),
        ({"illumination_scale": "strong"}, "illumination_scale='strong': not a number"),
        ({"support_thickness_A": "inf"}, "not a finite number"),
    ],
)
def test_bad_specimen_options_refused_before_anything_is_written(tmp_path, specimen, needle):
    with pytest.raises(SimulationError, match=needle):
        simulate_repository(tmp_path / "r", workers=1, specimen=specimen, **SMALL)
    assert not (tmp_path / "r").exists()


def test_cli_specimen_option_reaches_the_frames_and_bad_ones_exit_with_one_line(tmp_path, monkeypatch, capsys):
    import json

    from temshift.cli import main

    base = ["temshift", "simulate", "--where", f"folder={NOISE_FOLDER}", "--where", "dose_e_per_A2=884"]
    base += ["--frames-per-group", "1", "--frame-size", "256", "--mode", "projection", "--workers", "1"]
    monkeypatch.setattr(sys, "argv", [*base, "--out", str(tmp_path / "r"), "--specimen", "support_thickness_A=60"])
    try:
        main()
    except SystemExit as done:
        assert done.code in (0, None)
    (sidecar,) = (tmp_path / "r").rglob("*_sim.json")
    assert json.loads(sidecar.read_text())["support_thickness_A"] == 60.0
    capsys.readouterr()
    for bad, needle in [("film=3", "unknown specimen option 'film'"), ("support_thickness_A", "expected KEY=VALUE")]:
        monkeypatch.setattr(sys, "argv", [*base, "--out", str(tmp_path / "x"), "--specimen", bad])
        with pytest.raises(SystemExit) as exit_:
            main()
        err = capsys.readouterr().err
        assert exit_.value.code == 1 and needle in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "x").exists()
