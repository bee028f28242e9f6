"""Nothing written outside the folder the user named, nothing overwritten or lost (issue 12).

fetch and simulate resolve catalog names under their root; simulate refuses to mix
parameters in one repository; train refuses a run directory of another dataset; predict and
check keep going past a bad frame and give same-named frames distinct outputs.
"""

from __future__ import annotations

import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from temshift.catalog import Catalog
from temshift.io.paths import UnsafePathError, resolve_under
from temshift.simulate.toy import toy_patches, toy_support_frame
from test_fetch import FOLDER, serve


def _cli():
    from temshift.cli import _register, app

    _register()
    return app


# ----------------------------------------------------------------------------- resolve_under


def test_resolve_under_keeps_the_published_layout(tmp_path):
    got = resolve_under(tmp_path, FOLDER, "Au 01.dm3")
    assert got == tmp_path / "2021_08_26 5nm Au nanoparticles on C" / "Ultrathin Carbon" / "Au 01.dm3"
    assert resolve_under(tmp_path, "", "a.tif") == tmp_path / "a.tif"
    assert resolve_under(tmp_path, "./x/", "a.tif") == tmp_path / "x" / "a.tif"
    published = Catalog.published()
    for row in published.rows():
        assert resolve_under(tmp_path, row["folder"], row["file"]) == published.frame_path(row, tmp_path)


@pytest.mark.parametrize(
    "parts",
    [
        ("../x", "a.tif"),
        ("/tmp/x", "a.tif"),
        ("x", "../../evil.tif"),
        ("x", "/etc/a"),
        ("..\\x", "a.tif"),
        ("C:\\x", "a.tif"),
        ("", ""),
        ("x", "a\x00b"),
    ],
)
def test_resolve_under_refuses_escapes(tmp_path, parts):
    with pytest.raises(UnsafePathError) as err:
        resolve_under(tmp_path / "root", *parts, row="catalog row 7")
    msg = str(err.value)
    assert msg.startswith("catalog row 7:") and str(tmp_path / "root") in msg and "\n" not in msg


def test_resolve_under_refuses_a_link_out(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePathError, match="link"):
        resolve_under(tmp_path / "root", "link", "a.tif")


# ----------------------------------------------------------------------------- fetch

_ROW = {
    "Date": "08/26/21",
    "Material": "Au",
    "Nanoparticle Size (nm)": "5",
    "Nanoparticle Shape": "Sphere",
    "Support": "UT Carbon",
    "Instrument": "Team05",
    "Dosage (e/A2)": "420",
    "Pixel Scale (nm)": "0.02",
}


def _one_row_catalog(folder: str, file: str) -> Catalog:
    return Catalog(pd.DataFrame([{"File name": file, "Folder": folder, **_ROW}]), source="evil.csv")


def _url_path(folder: str, file: str) -> str:
    """The path the test server sees for a row (segments as `file_url` joins them)."""
    return "/repo/" + "/".join(s for p in (folder, file) for s in p.split("/") if s)


@pytest.mark.parametrize("folder,file", [("../x", "a.dm3"), (None, "a.dm3"), (FOLDER, "../../../evil.dm3")])
def test_fetch_refuses_rows_that_escape_dest(tmp_path, folder, file):
    from temshift.catalog.fetch import fetch

    dest = tmp_path / "dest"
    folder = str(tmp_path / "abs") if folder is None else folder  # an absolute folder outside dest
    cat = _one_row_catalog(folder, file)
    with serve({_url_path(folder, file): b"x" * 1000}) as (server, base):
        with pytest.raises(UnsafePathError) as err:
            fetch(cat, dest, base_url=base)
        assert not server.requests  # refused before anything was downloaded
    msg = str(err.value)
    assert "evil.csv" in msg and repr(file) in msg and "\n" not in msg
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []


def test_cli_fetch_escape_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    from temshift.cli import main

    cat_csv = tmp_path / "cat.csv"
    _one_row_catalog("../x", "a.dm3").to_published_csv(cat_csv)
    with serve({"/repo/../x/a.dm3": b"x" * 10}) as (_, base):
        monkeypatch.setattr(
            sys,
            "argv",
            ["temshift", "fetch", "--catalog", str(cat_csv), "--dest", str(tmp_path / "dest"), "--base-url", base],
        )
        with pytest.raises(SystemExit) as done:
            main()
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert "error:" in err and "'../x'" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_fetch_never_overwrites_a_local_file_of_another_size(tmp_path):
    from temshift.catalog.fetch import FetchError, fetch

    cat = _one_row_catalog(FOLDER, "Au_01.dm3")
    mine = tmp_path / FOLDER / "Au_01.dm3"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own notes")
    with serve({_url_path(FOLDER, "Au_01.dm3"): b"r" * 5000}) as (_, base):
        with pytest.raises(FetchError, match="not overwritten.*--overwrite"):
            fetch(cat, tmp_path, base_url=base)
        assert mine.read_bytes() == b"my own notes"
        fetch(cat, tmp_path, base_url=base, overwrite=True)
    assert mine.read_bytes() == b"r" * 5000


def _served_repository(n: int = 2, size: int = 256):
    """Raw TIFF frames and label PNGs of `n` rows as the published layout serves them, and their catalog."""
    import io

    import tifffile
    from PIL import Image

    rows, files = [], {}
    for k in range(n):
        counts, label = toy_support_frame(size, radius_nm=0.6, n_particles=6, seed=k)
        buf = io.BytesIO()
        tifffile.imwrite(buf, counts)
        name = f"Au_{k:02d}.tif"
        files[_url_path(FOLDER, name)] = buf.getvalue()
        buf = io.BytesIO()
        Image.fromarray(label * 255).save(buf, format="PNG")
        files[_url_path(FOLDER, f"Labels/Au_{k:02d}_label.png")] = buf.getvalue()
        rows.append({"File name": name, "Folder": FOLDER, **_ROW})
    return Catalog(pd.DataFrame(rows), source="served"), files


def test_fetch_writes_catalog_csv_and_dataset_build_follows(tmp_path):
    from temshift.datasets import load_dataset

    app = _cli()
    cat, files = _served_repository()
    cat_csv = tmp_path / "all.csv"
    cat.to_published_csv(cat_csv)
    dest = tmp_path / "data"
    with serve(files) as (_, base):
        for name in ("Au_00.tif", "Au_01.tif"):  # two fetches into one dest: the table lists both
            res = CliRunner().invoke(
                app,
                [
                    "fetch",
                    "--catalog",
                    str(cat_csv),
                    "--where",
                    f"file={name}",
                    "--dest",
                    str(dest),
                    "--base-url",
                    base,
                    "--labels",
                ],
            )
            assert res.exit_code == 0, res.output
    fetched = Catalog.read(dest / "catalog.csv")
    assert sorted(fetched.df["file"]) == ["Au_00.tif", "Au_01.tif"]
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # no temporary left
    res = CliRunner().invoke(
        app,
        [
            "dataset",
            "build",
            str(dest / "catalog.csv"),
            "--name",
            "fetched",
            "--out",
            str(tmp_path / "ds.h5"),
            "--patch-size",
            "128",
            "--xray-threshold",
            "0",
            "--min-particle-pixels",
            "0",
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    ds = load_dataset(tmp_path / "ds.h5")
    assert ds.images.shape[1:] == (128, 128) and len(ds.images) == 8
    assert set(ds.provenance["file"]) == {f"{FOLDER}/Au_00.tif", f"{FOLDER}/Au_01.tif"}


# ----------------------------------------------------------------------------- simulate

NOISE_FOLDER = "2022_06_15 5nm Au nanoparticle on UTC noise series"
ONE_FRAME = {
    "where": {"folder": NOISE_FOLDER, "dose_e_per_A2": 884},
    "frames_per_group": 1,
    "frame_size": 256,
    "mode": "projection",
    "seed": 3,
    "workers": 1,
}


def _published_rows(tmp_path, n=1, **changes):
    df = Catalog.published().to_published()
    df = df[(df["Folder"] == NOISE_FOLDER) & (df["Dosage (e/A2)"].astype(float) == 884)].head(n).copy()
    for col, value in changes.items():
        df[col] = value
    path = tmp_path / "rows.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("folder", ["../outside", "/abs/outside", "sub/../../outside"])
def test_simulate_refuses_folders_that_escape_out(tmp_path, folder):
    from temshift.simulate.repository import simulate_repository

    if folder.startswith("/abs"):
        folder = str(tmp_path / "abs")
    rows = _published_rows(tmp_path, Folder=folder)
    with pytest.raises(UnsafePathError) as err:
        simulate_repository(tmp_path / "repo", catalog=rows, **{**ONE_FRAME, "where": None})
    msg = str(err.value)
    assert "rows.csv: row 2" in msg and repr(folder) in msg and "\n" not in msg
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["rows.csv"]  # nothing written anywhere


@pytest.fixture(scope="module")
def one_frame_repo(tmp_path_factory):
    from temshift.simulate.repository import simulate_repository

    out = tmp_path_factory.mktemp("repo1")
    simulate_repository(out, **ONE_FRAME)
    return out


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"seed": 4}, "seed=3.*seed=4"),
        ({"mode": "multislice"}, "mode='projection'.*mode='multislice'"),
        ({"frame_size": 320}, "frame_size_px=256.*frame_size_px=320"),
        ({"density": 2.0}, "density=1.0.*density=2.0"),
    ],
)
def test_simulate_refuses_to_mix_parameters_in_one_repository(one_frame_repo, change, needle):
    from temshift.simulate.repository import SimulationError, simulate_repository

    frames = sorted(one_frame_repo.rglob("*.tif"))
    before = [(f, f.stat().st_mtime_ns, f.read_bytes()) for f in frames]
    with pytest.raises(SimulationError, match=needle) as err:
        simulate_repository(one_frame_repo, **{**ONE_FRAME, **change})
    assert "1 of the 1 frames" in str(err.value) and "another --out" in str(err.value)
    assert [(f, f.stat().st_mtime_ns, f.read_bytes()) for f in sorted(one_frame_repo.rglob("*.tif"))] == before
    again = simulate_repository(one_frame_repo, **ONE_FRAME)  # the same parameters still resume
    assert len(again) == 1 and [f.stat().st_mtime_ns for f in frames] == [b[1] for b in before]


def test_simulate_refuses_a_row_whose_conditions_changed(one_frame_repo, tmp_path):
    from temshift.simulate.repository import SimulationError, simulate_repository

    rows = _published_rows(tmp_path, **{"Dosage (e/A2)": 423})
    with pytest.raises(SimulationError, match="dose_e_per_A2=884.0.*dose_e_per_A2=423.0"):
        simulate_repository(one_frame_repo, catalog=rows, **{**ONE_FRAME, "where": None})


# ----------------------------------------------------------------------------- train

FAST = {"epochs": 2, "batch_size": 16, "learning_rate": 3e-3, "threads": 1}


def _dataset(path, seed, name="ds"):
    """A temshift dataset file (with its content hash) of 20 generated 32 px patches."""
    import json

    from temshift.datasets.store import content_hash, write_dataset_file

    images, labels = toy_patches(20, 32, seed=seed)
    prov = pd.DataFrame({"file": ["f.tif"] * len(images), "row": 0, "col": 0})
    spec = {"name": name, "pixel_scale_nm": 0.02, "dose_e_per_A2": 423}
    return write_dataset_file(
        path, images, labels, prov, {"spec": json.dumps(spec), "content_hash": content_hash(images, labels)}
    )


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("data")
    return _dataset(root / "ds884.h5", seed=1), _dataset(root / "ds80.h5", seed=2)  # same spec, other patches


def test_train_refuses_a_finished_run_on_another_dataset(two_datasets, tmp_path, monkeypatch, capsys):
    from temshift.cli import main
    from temshift.errors import CheckpointError
    from temshift.training import TrainSettings, train_fold

    ds884, ds80 = two_datasets
    settings = TrainSettings(**FAST)
    done = train_fold(ds884, 0, settings, tmp_path / "run884")
    assert train_fold(ds884, 0, settings, tmp_path / "run884") == done  # same data and settings: returned
    model_bytes = (tmp_path / "run884" / "model.pt").read_bytes()
    with pytest.raises(CheckpointError) as err:
        train_fold(ds80, 0, settings, tmp_path / "run884")
    msg = str(err.value)
    assert "run884" in msg and "ds884.h5" in msg and "ds80.h5" in msg and "content hash" in msg and "\n" not in msg
    assert (tmp_path / "run884" / "model.pt").read_bytes() == model_bytes
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "temshift",
            "train",
            str(ds80),
            "--out",
            str(tmp_path / "run884"),
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--lr",
            "3e-3",
            "--threads",
            "1",
        ],
    )
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "error:" in err and "ds884.h5" in err and "Traceback" not in err


def test_train_refuses_to_resume_another_datasets_state(two_datasets, tmp_path, monkeypatch):
    import temshift.training.trainer as trainer
    from temshift.errors import CheckpointError
    from temshift.training import TrainSettings, train_fold

    ds884, ds80 = two_datasets
    settings = TrainSettings(**FAST)
    real, calls = trainer.validate, {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "validate", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train_fold(ds884, 0, settings, tmp_path / "run")
    monkeypatch.setattr(trainer, "validate", real)
    with pytest.raises(CheckpointError) as err:
        train_fold(ds80, 0, settings, tmp_path / "run")
    msg = str(err.value)
    assert "content_hash" in msg and "not resuming" in msg and str(tmp_path / "run") in msg


def test_train_ctrl_c_says_the_run_resumes_and_it_does(two_datasets, tmp_path, monkeypatch, capsys):
    import temshift.training.trainer as trainer
    from temshift.cli import main

    ds884, _ = two_datasets
    real, calls = trainer.validate, {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    argv = [
        "temshift",
        "train",
        str(ds884),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        "--threads",
        "1",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(trainer, "validate", interrupting)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 130
    captured = capsys.readouterr()
    assert "1 of 2 epochs saved" in captured.err and "run the same command again to resume" in captured.err
    assert "Traceback" not in captured.err
    monkeypatch.setattr(trainer, "validate", real)
    try:
        main()
    except SystemExit as done:
        assert done.code in (0, None)
    assert (tmp_path / "run" / "result.json").is_file() and not (tmp_path / "run" / "state.pt").exists()
    from temshift.training.fold import epochs_done

    assert epochs_done(tmp_path / "run") == 2


def test_train_says_the_default_is_250_epochs_with_a_time_hint(two_datasets, tmp_path, monkeypatch):
    import temshift.training as training

    ds884, _ = two_datasets
    app = _cli()
    help_text = CliRunner().invoke(app, ["train", "--help"]).output
    assert "250" in help_text and "--epochs" in help_text

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_fold", stop)
    res = CliRunner().invoke(app, ["train", str(ds884), "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert "250 epochs (the default: the paper's protocol)" in res.output
    assert "roughly" in res.output and "on one CPU core" in res.output and "--epochs N" in res.output


def test_training_time_estimate_scales_with_epochs_and_patch_area():
    from temshift.training import TrainSettings
    from temshift.training.runtime import estimate_cpu_seconds

    base = estimate_cpu_seconds(1000, 256, TrainSettings())
    assert estimate_cpu_seconds(1000, 256, TrainSettings(epochs=25)) == pytest.approx(base / 10)
    assert estimate_cpu_seconds(1000, 512, TrainSettings()) == pytest.approx(4 * base)
    # 700 training patches x 8 variants at 16.7/s, 100 x 8 validation at 86/s, 250 epochs: about a day
    assert base == pytest.approx(250 * (700 * 8 / 16.7 + 100 * 8 / 86.0))


# ----------------------------------------------------------------------------- predict and check


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from test_predict_pipeline import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "model.pt")


def _frames(tmp_path, names, bad=()):

    from temshift.io import write_tiff_frame

    paths = []
    for k, name in enumerate(names):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name in bad:
            path.write_bytes(b"II*\x00 this is not a TIFF")
        else:
            counts, _ = toy_support_frame(192, radius_nm=1.0, n_particles=2 + k, seed=10 + k)
            write_tiff_frame(path, counts, 0.02)
        paths.append(path)
    return paths


def test_predict_gives_same_named_frames_distinct_outputs(tmp_path, tiny_model):
    from temshift.io import read_label

    paths = _frames(tmp_path, ["a/frame.tif", "b/frame.tif", "c/other.tif"])
    out = tmp_path / "out"
    res = CliRunner().invoke(_cli(), ["predict", str(tiny_model), *map(str, paths), "--out", str(out), "--dose", "423"])
    assert res.exit_code == 0, res.output
    for stem in ("a_frame", "b_frame", "other"):  # a stem that does not collide keeps today's name
        for suffix in ("_mask.png", "_mask.tif", "_overlay.png", "_particles.csv"):
            assert (out / f"{stem}{suffix}").is_file(), stem + suffix
    assert not (out / "frame_mask.png").exists()
    risk = pd.read_csv(out / "risk.csv")
    assert list(risk["frame"]) == ["a/frame.tif", "b/frame.tif", "other.tif"]
    table = pd.read_csv(out / "particles.csv")
    assert set(table["frame"]) <= {"a/frame.tif", "b/frame.tif", "other.tif"}
    assert read_label(out / "a_frame_mask.png").shape == (192, 192)
    assert (out / "a_frame_overlay.png").read_bytes() != (out / "b_frame_overlay.png").read_bytes()  # two frames


def test_predict_keeps_going_past_a_bad_frame(tmp_path, tiny_model):
    paths = _frames(tmp_path, ["one.tif", "broken.tif", "two.tif"], bad={"broken.tif"})
    out = tmp_path / "out"
    res = CliRunner().invoke(_cli(), ["predict", str(tiny_model), *map(str, paths), "--out", str(out), "--dose", "423"])
    assert res.exit_code == 1, res.output
    assert "1 of 3 frame(s) failed" in res.output and "broken.tif" in res.output
    assert "Traceback" not in res.output and isinstance(res.exception, (SystemExit, type(None)))
    for stem in ("one", "two"):
        assert (out / f"{stem}_mask.png").is_file()
    assert not (out / "broken_mask.png").exists()
    assert list(pd.read_csv(out / "risk.csv")["frame"]) == ["one.tif", "two.tif"]
    assert (out / "particles.csv").is_file()


def test_check_keeps_going_past_a_bad_frame(tmp_path, tiny_model):
    import json

    paths = _frames(tmp_path, ["one.tif", "broken.tif", "x/two.tif", "y/two.tif"], bad={"broken.tif"})
    res = CliRunner().invoke(
        _cli(), ["check", str(tiny_model), *map(str, paths), "--dose", "423", "--json", str(tmp_path / "risk.json")]
    )
    assert res.exit_code == 1, res.output
    assert "1 of 4 frame(s) failed" in res.output and "broken.tif" in res.output
    frames = [r["frame"] for r in json.loads((tmp_path / "risk.json").read_text())]
    assert frames == ["one.tif", "x/two.tif", "y/two.tif"]


def test_unique_frame_names():
    from temshift.predict.naming import unique_frame_names

    def names(*paths):
        return [tuple(n) for n in unique_frame_names(paths)]

    assert names("/d/a.tif", "/d/b.tif") == [("a.tif", "a"), ("b.tif", "b")]
    assert names("/d/a/frame.tif", "/d/b/frame.tif") == [("a/frame.tif", "a_frame"), ("b/frame.tif", "b_frame")]
    assert names("/x/a/f.tif", "/y/a/f.tif") == [("x/a/f.tif", "x_a_f"), ("y/a/f.tif", "y_a_f")]
    assert names("/d/f.tif", "/d/f.npy") == [("f.tif", "f_tif"), ("f.npy", "f_npy")]
    assert names("/d/f.tif", "/d/f.tif") == [("f.tif", "f"), ("f.tif (2)", "f_2")]
    mixed = unique_frame_names(["/d/a_frame.tif", "/d/a/frame.tif", "/d/b/frame.tif", "/d/A/Frame.tif"])
    assert len({n.stem.casefold() for n in mixed}) == 4 and len({n.frame for n in mixed}) == 4
