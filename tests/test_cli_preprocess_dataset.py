"""`temshift preprocess` and `temshift dataset build|info|import` through the real entry point."""

import json

import h5py
import numpy as np
import pytest

from temshift.io import write_tiff_frame
from temshift.simulate.toy import write_toy_repository

GROUPS = [
    {"material": "Au", "dose_e_per_A2": 423, "pixel_scale_nm": 0.1, "folder": "2021 Au on C/UTC", "date": "08/26/21"},
    {"material": "Ag", "dose_e_per_A2": 80, "pixel_scale_nm": 0.1, "folder": "2022 Ag", "date": "02/02/22"},
]


@pytest.fixture(scope="module")
def catalog_csv(tmp_path_factory):
    return write_toy_repository(tmp_path_factory.mktemp("repo"), GROUPS, frames_per_group=2, size=256)


def test_preprocess_writes_npy_and_sidecar(cli, tmp_path):
    frame = np.random.default_rng(0).poisson(500, (64, 96)).astype(np.float32)
    frame[10, 10] = 60000
    src = write_tiff_frame(tmp_path / "f1.tif", frame, 0.02)
    np.save(tmp_path / "f2.npy", frame)
    code, _, err = cli("preprocess", src, tmp_path / "f2.npy", "--out", tmp_path / "out",
                       "--rescale", "normalize")  # fmt: skip
    assert code == 0, err
    out = np.load(tmp_path / "out" / "f1.npy")
    assert out.dtype == np.float32 and out.shape == (64, 96)
    assert out.min() == 0 and out.max() == 1 and out[10, 10] < 1  # spike gone
    side = json.loads((tmp_path / "out" / "f1.json").read_text())
    assert side["preprocess"]["rescale"] == "normalize" and side["pixel_scale_nm"] == pytest.approx(0.02)
    assert (tmp_path / "out" / "f2.npy").exists()


def test_preprocess_options(cli, tmp_path):
    frame = np.random.default_rng(1).poisson(500, (32, 32)).astype(np.float32)
    np.save(tmp_path / "f.npy", frame)
    code, _, _ = cli("preprocess", tmp_path / "f.npy", "--out", tmp_path,
                     "--no-flatfield", "--rescale", "none", "--xray-threshold", "0")  # fmt: skip
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), frame)  # untouched round trip


def test_preprocess_bad_frame_one_line_error(cli, tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    code, _out, err = cli("preprocess", tmp_path / "bad.tif", "--out", tmp_path / "o")
    assert code == 1 and "bad.tif" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "bad.npy").exists()


def test_dataset_build_info_import(cli, catalog_csv, tmp_path):
    out = tmp_path / "au.h5"
    code, stdout, err = cli("dataset", "build", catalog_csv, "--where", "material=Au",
                            "--where", "dose_e_per_A2=423+-20", "--name", "au", "--patch-size", "64",
                            "--out", out, "--workers", "1")  # fmt: skip
    assert code == 0, err
    assert "au" in stdout and "patches" in stdout
    with h5py.File(out) as f:
        assert f["images"].shape[1:] == (64, 64) and f["labels"].dtype == np.uint8
        spec = json.loads(f.attrs["spec"])
        assert spec["where"] == {"material": "Au", "dose_e_per_A2": {"value": 423, "tol": 20}}
    code, stdout, _ = cli("dataset", "info", out)
    assert code == 0 and "content_hash" in stdout and "423" in stdout

    with h5py.File(tmp_path / "Pub_423e_Images.h5", "w") as f:
        f["images"] = np.zeros((3, 16, 16))
    with h5py.File(tmp_path / "Pub_423e_Labels.h5", "w") as f:
        f["labels"] = np.ones((3, 16, 16))
    code, stdout, err = cli("dataset", "import", tmp_path / "Pub_423e_Images.h5",
                            "--out", tmp_path / "pub.h5")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "pub.h5").exists() and "3 x 16 x 16" in stdout


@pytest.mark.parametrize(
    "args, match",
    [
        (["--where", "colour=red"], "unknown query field"),
        (["--where", "material=Pt"], "no frame matches material=Pt"),
        (["--root", "/nonexistent"], "not found"),
    ],
)
def test_dataset_build_errors(cli, catalog_csv, tmp_path, args, match):
    code, _, err = cli("dataset", "build", catalog_csv, "--name", "x", "--out",
                       tmp_path / "x.h5", *args)  # fmt: skip
    assert code == 1 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.h5").exists()


def test_dataset_info_and_import_errors(cli, tmp_path):
    code, _, err = cli("dataset", "info", tmp_path / "none.h5")
    assert code == 1 and "none.h5: dataset file not found" in err
    code, _, err = cli("dataset", "import", tmp_path / "plain.h5")
    assert code == 1 and "not a published pair" in err


def test_usage_errors_print_usage_not_a_traceback(cli):
    code, _out, err = cli("catalog", "summary")
    assert code == 2
    assert "Missing argument" in err and "Traceback" not in err
    code, _out, err = cli("dataset", "build", "--no-such-option")
    assert code == 2 and "No such option" in err
