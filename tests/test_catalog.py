"""Catalog: reading the published table, normalized fields, queries, errors."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from shared_data import SHARED_DATA
from temshift.catalog import Catalog, parse_where
from temshift.errors import CatalogError

SHARED = SHARED_DATA / "published_catalog.csv"


@pytest.fixture(scope="module")
def published():
    return Catalog.published()


def test_published_copy_matches_shared_table(published):
    assert len(published) == 407
    if SHARED.exists():
        shared = pd.read_csv(SHARED)
        assert list(published.to_published().columns) == list(shared.columns)
        assert (published.to_published()["File name"].to_numpy() == shared["File name"].to_numpy()).all()


def test_normalized_fields(published):
    df = published.df
    for f in (
        "file",
        "folder",
        "date",
        "session",
        "material",
        "diameter_nm",
        "shape",
        "support",
        "instrument",
        "dose_e_per_A2",
        "pixel_scale_nm",
    ):
        assert f in df.columns
    assert df["dose_e_per_A2"].dtype == float
    # 11 folders, 9 session dates as released
    assert df["folder"].nunique() == 11
    assert df["date"].nunique() == 9
    assert set(df["material"]) == {"Au", "Ag", "CdSe"}


def test_query_exact_and_tolerance(published):
    ag = published.query(material="Ag", dose_e_per_A2=(423, 20))
    assert len(ag) == 28  # 423, 420, 418 and 447 is out (|447-423| > 20)
    assert set(ag.df["dose_e_per_A2"]) == {418.0, 420.0, 423.0}
    exact = published.query(material="Ag", diameter_nm=5, dose_e_per_A2=(423, 20), pixel_scale_nm=0.02)
    assert len(exact) == 14
    # published spelling is accepted too
    same = published.query(**{"Material": "Ag", "Dosage (e/A2)": (423, 20)})
    assert len(same) == len(ag)


def test_numeric_default_tolerance(published):
    assert len(published.query(pixel_scale_nm=0.02 + 5e-6)) == len(published.query(pixel_scale_nm=0.02))
    with pytest.raises(CatalogError, match="pixel_scale_nm=0.02002"):
        published.query(pixel_scale_nm=0.02002)


def test_parse_where_forms():
    assert parse_where(["material=Ag", "dose_e_per_A2=423±20", "pixel_scale_nm=0.02", "diameter_nm = 5 +- 0.5"]) == {
        "material": "Ag",
        "dose_e_per_A2": (423, 20),
        "pixel_scale_nm": 0.02,
        "diameter_nm": (5, 0.5),
    }
    for bad in ["material", "=Ag", "dose=abc±3", "dose=3±-1"]:
        with pytest.raises(CatalogError):
            parse_where([bad])


def test_query_names_the_emptying_condition(published):
    with pytest.raises(CatalogError, match=r"material=CdSe among the \d+ frames left"):
        published.query(diameter_nm=10, material="CdSe")
    with pytest.raises(CatalogError, match="unknown query field 'colour'"):
        published.query(colour="red")


def test_paths_in_published_layout(published, tmp_path):
    row = published.df.iloc[0]
    assert published.frame_path(row, tmp_path) == tmp_path / row["folder"] / row["file"]
    label = published.label_path(row, tmp_path)
    assert label.parent.name == "Labels" and label.name == Path(row["file"]).stem + "_label.png"
    # a folder with a '/' is a nested folder
    assert "/" in row["folder"] and label.parent.parent.parent.parent == tmp_path


def _write(tmp_path, df):
    p = tmp_path / "cat.csv"
    df.to_csv(p, index=False)
    return p


def test_errors_on_bad_tables(published, tmp_path):
    good = published.to_published().head(5)
    with pytest.raises(CatalogError, match="missing column.*Pixel Scale"):
        Catalog.read(_write(tmp_path, good.drop(columns=["Pixel Scale (nm)"])))
    bad = good.astype(str)
    bad.loc[2, "Dosage (e/A2)"] = "lots"
    with pytest.raises(CatalogError, match=r"row 4, column 'Dosage \(e/A2\)': non-numeric value 'lots'"):
        Catalog.read(_write(tmp_path, bad))
    dup = pd.concat([good, good.iloc[[1]]])
    with pytest.raises(CatalogError, match="duplicate file name"):
        Catalog.read(_write(tmp_path, dup))
    with pytest.raises(CatalogError, match="not found"):
        Catalog.read(tmp_path / "nope.csv")


def test_extra_columns_kept_and_round_trip(published, tmp_path):
    df = published.to_published().head(4).copy()
    df["defocus_A"] = [1.0, 2.0, 3.0, 4.0]
    cat = Catalog.read(_write(tmp_path, df))
    assert "defocus_A" in cat.df.columns
    out = cat.to_published_csv(tmp_path / "out.csv")
    again = Catalog.read(out)
    pd.testing.assert_frame_equal(again.df.drop(columns="session"), cat.df.drop(columns="session"), check_dtype=False)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "temshift", *args], capture_output=True, text=True)


def test_cli_query_json_and_errors():
    r = _cli(
        "catalog",
        "query",
        "published",
        "--where",
        "material=Ag",
        "--where",
        "diameter_nm=5",
        "--where",
        "dose_e_per_A2=423±20",
        "--where",
        "pixel_scale_nm=0.02",
        "--format",
        "json",
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 14 and all(row["material"] == "Ag" for row in rows)
    assert {"dose_e_per_A2", "pixel_scale_nm", "diameter_nm"} <= set(rows[0])
    r = _cli("catalog", "query", "published", "--where", "dose_e_per_A2=884+-1", "--format", "csv")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 1 + 13
    r = _cli("catalog", "query", "published", "--where", "material=Pt")
    assert r.returncode == 1 and "material=Pt" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _cli("catalog", "query", "published", "--where", "colour=red")
    assert r.returncode == 1 and "colour" in r.stderr


def test_cli_does_not_import_torch():
    code = (
        "import sys; from temshift.cli import main; sys.argv=['temshift','catalog','query','published',"
        "'-w','material=CdSe','-f','csv']\ntry:\n main()\nexcept SystemExit: pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\nassert 'abtem' not in sys.modules"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
