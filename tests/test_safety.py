"""Nothing written outside the folder the user named, nothing overwritten or lost (issue 12).

fetch and simulate resolve catalog names under their root; simulate refuses to mix
parameters in one repository; train refuses a run directory of another dataset; predict and
check keep going past a bad frame and give same-named frames distinct outputs.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from test_fetch import FOLDER, serve
from typer.testing import CliRunner

from temshift.catalog import Catalog
from temshift.errors import TemshiftError
from temshift.io.paths import UnsafePathError, resolve_under


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


@pytest.mark.parametrize("parts", [("../x", "a.tif"), ("/tmp/x", "a.tif"), ("x", "../../evil.tif"), ("x", "/etc/a"),
                                   ("..\\x", "a.tif"), ("C:\\x", "a.tif"), ("", ""), ("x", "a\x00b")])
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

_ROW = {"Date": "08/26/21", "Material": "Au", "Nanoparticle Size (nm)": "5", "Nanoparticle Shape": "Sphere",
        "Support": "UT Carbon", "Instrument": "Team05", "Dosage (e/A2)": "420", "Pixel Scale (nm)": "0.02"}


def _one_row_catalog(folder: str, file: str) -> Catalog:
    return Catalog(pd.DataFrame([{"File name": file, "Folder": folder, **_ROW}]), source="evil.csv")


def _url_path(folder: str, file: str) -> str:
    """The path the test server sees for a row (segments as `file_url` joins them)."""
    return "/repo/" + "/".join(s for p in (folder, file) for s in p.split("/") if s)


@pytest.mark.parametrize("folder,file", [("../x", "a.dm3"), (None, "a.dm3"), (FOLDER, "../../../evil.dm3")])
def test_fetch_refuses_rows_that_escape_dest(tmp_path, folder, file):
    from temshift.predict.fetch import fetch

    dest = tmp_path / "dest"
    folder = str(tmp_path / "abs") if folder is None else folder  # an absolute folder outside dest
    cat = _one_row_catalog(folder, file)
    with serve({_url_path(folder, file): b"x" * 1000}) as (server, base):
        with pytest.raises(UnsafePathError) as err:
            fetch(cat, dest, base_url=base, progress=False)
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
        monkeypatch.setattr(sys, "argv", ["temshift", "fetch", "--catalog", str(cat_csv), "--dest",
                                          str(tmp_path / "dest"), "--base-url", base])
        with pytest.raises(SystemExit) as done:
            main()
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert "error:" in err and "'../x'" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_fetch_never_overwrites_a_local_file_of_another_size(tmp_path):
    from temshift.predict.fetch import FetchError, fetch

    cat = _one_row_catalog(FOLDER, "Au_01.dm3")
    mine = tmp_path / FOLDER / "Au_01.dm3"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own notes")
    with serve({_url_path(FOLDER, "Au_01.dm3"): b"r" * 5000}) as (_, base):
        with pytest.raises(FetchError, match="not overwritten.*--overwrite"):
            fetch(cat, tmp_path, base_url=base, progress=False)
        assert mine.read_bytes() == b"my own notes"
        fetch(cat, tmp_path, base_url=base, progress=False, overwrite=True)
    assert mine.read_bytes() == b"r" * 5000


def _served_repository(n: int = 2, size: int = 256):
    """Raw TIFF frames and label PNGs of `n` rows as the published layout serves them, and their catalog."""
    import io

    import tifffile
    from _predict_synth import raw_frame
    from PIL import Image

    rows, files = [], {}
    for k in range(n):
        counts, label = raw_frame(size, radius_nm=0.6, n_particles=6, seed=k)
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
            res = CliRunner().invoke(app, ["fetch", "--catalog", str(cat_csv), "--where", f"file={name}",
                                           "--dest", str(dest), "--base-url", base, "--labels"])
            assert res.exit_code == 0, res.output
    fetched = Catalog.read(dest / "catalog.csv")
    assert sorted(fetched.df["file"]) == ["Au_00.tif", "Au_01.tif"]
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # no temporary left
    res = CliRunner().invoke(app, ["dataset", "build", str(dest / "catalog.csv"), "--name", "fetched",
                                   "--out", str(tmp_path / "ds.h5"), "--patch-size", "128", "--xray-threshold", "0",
                                   "--min-particle-pixels", "0", "--workers", "1"])
    assert res.exit_code == 0, res.output
    ds = load_dataset(tmp_path / "ds.h5")
    assert ds.images.shape[1:] == (128, 128) and len(ds.images) == 8
    assert set(ds.provenance["file"]) == {f"{FOLDER}/Au_00.tif", f"{FOLDER}/Au_01.tif"}


# ----------------------------------------------------------------------------- simulate

NOISE_FOLDER = "2022_06_15 5nm Au nanoparticle on UTC noise series"
ONE_FRAME = dict(where={"folder": NOISE_FOLDER, "dose_e_per_A2": 884}, frames_per_group=1, frame_size=256,
                 mode="projection", seed=3, workers=1, progress=False)


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


@pytest.mark.parametrize("change,needle", [({"seed": 4}, "seed=3.*seed=4"),
                                           ({"mode": "multislice"}, "mode='projection'.*mode='multislice'"),
                                           ({"frame_size": 320}, "frame_size_px=256.*frame_size_px=320"),
                                           ({"density": 2.0}, "density=1.0.*density=2.0")])
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
