"""Bad input through the real entry point: one clear line, a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import temshift
from temshift.errors import CatalogError, TemshiftError
from temshift.simulate.toy import toy_patches

SRC = Path(temshift.__file__).resolve().parents[1]


def assert_clean_error(code, err, *needles, exit_code=1):
    """A one-line error (or a click usage error) naming what is wrong; no traceback.

    Batch commands (predict, check) keep going past a bad frame and report it as one
    ``failed:`` line (then a summary, exit 1): that line counts as the error.
    """
    assert code == exit_code, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith(("error:", "Error:", "failed:"))]
    assert len(lines) == 1, err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory):
    import torch

    from temshift.models import UNet, save_checkpoint
    from temshift.models.records import CheckpointMeta

    torch.manual_seed(0)
    spec = {
        "name": "synth",
        "preprocess": {"xray_threshold": None, "rescale": "standardize"},
        "patch_size": 256,
        "pixel_scale_nm": 0.02,
        "dose_e_per_A2": 423.0,
    }
    return save_checkpoint(
        tmp_path_factory.mktemp("model") / "model.pt", UNet(), CheckpointMeta.model_validate({"dataset_spec": spec})
    )


@pytest.fixture
def frame_npy(tmp_path):
    path = tmp_path / "frame.npy"
    np.save(path, np.random.default_rng(0).poisson(400, (64, 64)).astype(np.float32))
    return path


# --- frames smaller than the flat-field grid ------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (2, 300), (8, 8)])
@pytest.mark.parametrize("command", ["preprocess", "predict", "check"])
def test_frames_smaller_than_the_flatfield_grid(cli, tmp_path, model_pt, shape, command):
    path = tmp_path / "tiny.npy"
    np.save(path, np.random.default_rng(1).poisson(400, shape).astype(np.float32))
    args = {
        "preprocess": ["preprocess", path, "--out", tmp_path / "o"],
        "predict": ["predict", model_pt, path, "--out", tmp_path / "o", "--pixel-scale", "0.02"],
        "check": ["check", model_pt, path, "--pixel-scale", "0.02"],
    }[command]
    code, _, err = cli(*args)
    assert_clean_error(code, err, path, f"{shape[0]}x{shape[1]}", "12x12")


def test_smallest_fittable_frame_works(monkeypatch, capsys, tmp_path):
    from temshift.preprocess import PreprocessSettings, preprocess_frame

    img = np.random.default_rng(2).poisson(400, (12, 12)).astype(np.float32)
    assert np.isfinite(preprocess_frame(img, PreprocessSettings(xray_threshold=None))).all()


# --- an --out that is a file (or a folder where a file is needed) ---------------------------


def _out_cases(tmp_path, model_pt, frame_npy):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    a_dir = tmp_path / "a_dir"
    a_dir.mkdir()
    ds = tmp_path / "ds.h5"  # never opened: the output is checked first
    published = tmp_path / "w_model.h5"
    return {
        "predict": (["predict", model_pt, frame_npy, "--out", a_file], a_file),
        "preprocess": (["preprocess", frame_npy, "--out", a_file], a_file),
        "simulate": (["simulate", "--out", a_file, "--frames-per-group", "1"], a_file),
        "dataset build": (["dataset", "build", tmp_path / "cat.csv", "--name", "n", "--out", a_dir], a_dir),
        "dataset build below a file": (
            ["dataset", "build", tmp_path / "cat.csv", "--name", "n", "--out", a_file / "d.h5"],
            a_file,
        ),
        "train": (["train", ds, "--out", a_file], a_file),
        "evaluate": (["evaluate", tmp_path / "run", "--on", ds, "--out", a_dir], a_dir),
        "model import": (["model", "import", published, "--out", a_dir], a_dir),
        "check --json": (["check", model_pt, frame_npy, "--json", a_dir], a_dir),
        "study run": (["study", "run", "dose", "--scale", "ci", "--out", a_file], a_file),
    }


@pytest.mark.parametrize(
    "case",
    [
        "predict",
        "preprocess",
        "simulate",
        "dataset build",
        "dataset build below a file",
        "train",
        "evaluate",
        "model import",
        "check --json",
        "study run",
    ],
)
def test_out_of_the_wrong_kind(cli, tmp_path, model_pt, frame_npy, case):
    args, culprit = _out_cases(tmp_path, model_pt, frame_npy)[case]
    code, _, err = cli(*args)
    assert_clean_error(code, err, culprit)
    assert "is a file" in err or "is a folder" in err


# --- numeric options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--pixel-scale", "-1"], "--pixel-scale"),
        (["--pixel-scale", "0"], "--pixel-scale"),
        (["--pixel-scale", "0.0001"], "µm"),
        (["--pixel-scale", "50"], "Å"),
        (["--pixel-scale", "nan"], "--pixel-scale"),
        (["--batch-size", "0"], "--batch-size"),
        (["--dose", "-5"], "--dose"),
        (["--dose", "0"], "--dose"),
        (["--tile", "0"], "--tile"),
        (["--threads", "0"], "--threads"),
        (["--frame", "-1"], "--frame"),
    ],
)
def test_predict_numeric_options_are_range_checked(cli, tmp_path, model_pt, frame_npy, flags, needle):
    code, _, err = cli("predict", model_pt, frame_npy, "--out", tmp_path / "o", *flags)
    assert_clean_error(code, err, needle, exit_code=2)
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_pixel_scale_that_would_resample_to_an_absurd_size(cli, tmp_path, model_pt):
    path = tmp_path / "big.npy"  # 5 nm/px for a 0.02 nm/px model: 250x, 128000^2 pixels
    np.save(path, np.random.default_rng(0).poisson(400, (512, 512)).astype(np.float32))
    code, _, err = cli("predict", model_pt, path, "--out", tmp_path / "o", "--pixel-scale", "5")
    assert_clean_error(code, err, path, "250x", "Å")


def test_check_pixel_scale_range_is_also_checked(cli, model_pt, frame_npy):
    code, _, err = cli("check", model_pt, frame_npy, "--pixel-scale", "0.0001")
    assert_clean_error(code, err, "--pixel-scale", "outside 0.001-10 nm/px", exit_code=2)


def test_pixel_scale_recorded_in_a_file_outside_the_range(cli, tmp_path, model_pt):
    from rsciio.tiff import file_writer

    path = tmp_path / "survey.tif"  # a low-magnification survey image, 0.1687 µm per pixel
    axes = [
        {"name": n, "size": 64, "scale": 0.1687, "offset": 0.0, "units": "µm", "navigate": False}
        for n in ("height", "width")
    ]
    file_writer(
        str(path), {"data": np.full((64, 64), 400, np.float32), "axes": axes, "metadata": {}, "original_metadata": {}}
    )
    code, _, err = cli("check", model_pt, path)
    assert_clean_error(code, err, path, "168.7 nm/px", "recorded in the file", "--pixel-scale")
    assert "Å" not in err  # a calibration read from a file is in a known unit: no unit guess
    code, _, err = cli("check", model_pt, path, "--pixel-scale", "0.02")
    assert code == 0, err  # the flag overrides the metadata


def test_check_pixel_scale_nm():
    from temshift.units import PixelScaleError, check_pixel_scale_nm

    assert check_pixel_scale_nm(0.02, "x") == 0.02
    for bad, hint in (
        (-1, "positive"),
        (0, "positive"),
        (float("inf"), "positive"),
        ("a", "not a number"),
        (20, "Å"),
        (1e-5, "µm"),
    ):
        with pytest.raises(PixelScaleError, match=hint):
            check_pixel_scale_nm(bad, "src")


# --- catalogs, devices, datasets, labels ---------------------------------------------------


def _catalog_csv(tmp_path, **override):
    import pandas as pd

    row = {
        "File name": "a.tif",
        "Date": "08/26/21",
        "Material": "Au",
        "Nanoparticle Size (nm)": "5",
        "Nanoparticle Shape": "sphere",
        "Support": "C",
        "Instrument": "TEAM",
        "Dosage (e/A2)": "423",
        "Pixel Scale (nm)": "0.02",
        "Folder": "f",
    }
    rows = [row, {**row, "File name": "b.tif", **override}]
    path = tmp_path / "catalog.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "column, value, hint",
    [
        ("Pixel Scale (nm)", "0", "not a positive number"),
        ("Pixel Scale (nm)", "-0.02", "not a positive number"),
        ("Dosage (e/A2)", "0", "not a positive number"),
        ("Dosage (e/A2)", "-80", "not a positive number"),
        ("Pixel Scale (nm)", "200", "outside 0.001-10 nm/px"),
    ],
)
def test_catalog_rows_with_non_positive_scale_or_dose_are_refused(tmp_path, column, value, hint):
    from temshift.catalog import Catalog

    path = _catalog_csv(tmp_path, **{column: value})
    with pytest.raises(CatalogError, match=hint) as exc:
        Catalog.read(path)
    msg = str(exc.value)
    assert "row 3" in msg and "b.tif" in msg and column in msg and str(path) in msg


def test_train_on_a_device_that_is_not_there(cli, write_dataset, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ds = write_dataset(tmp_path / "d.h5", *toy_patches(8, 32))
    for device, needle in (("cuda", "no CUDA GPU"), ("gpu9", "unknown device")):
        code, _, err = cli("train", ds, "--out", tmp_path / "run", "--epochs", "1", "--device", device)
        assert_clean_error(code, err, "--device", needle)


def test_dataset_info_on_a_4d_dataset(cli, tmp_path):
    import h5py

    path = tmp_path / "d4.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 3, 8, 8), np.float32))
        f.create_dataset("labels", data=np.zeros((2, 3, 8, 8), np.uint8))
    code, _, err = cli("dataset", "info", path)
    assert_clean_error(code, err, path, "(2, 3, 8, 8)")


def test_label_warnings_say_how_the_label_was_read(tmp_path):
    from PIL import Image

    from temshift.io import read_label
    from temshift.io.labels import LabelReadWarning

    grey = np.zeros((6, 6), np.uint8)
    grey[1:3, 1:3] = 3
    grey[4, 4] = 128
    Image.fromarray(grey).save(tmp_path / "odd.png")
    with pytest.warns(LabelReadWarning, match=r"values \{0, 3, 128\}.*every nonzero pixel"):
        assert read_label(tmp_path / "odd.png").sum() == 5
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[2, 2] = (0, 255, 0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.warns(LabelReadWarning, match="colour label.*any of R, G, B"):
        assert read_label(tmp_path / "rgb.png").sum() == 1
    import warnings

    for ok in (np.array([[0, 255]], np.uint8), np.array([[0, 1]], np.uint8)):
        Image.fromarray(ok).save(tmp_path / "ok.png")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            read_label(tmp_path / "ok.png")


# --- read-only folders and unreadable files (run as an unprivileged user) -------------------


@pytest.fixture
def shared_tmp():
    """A folder other users can read (pytest's tmp_path is private to its owner)."""
    import shutil

    path = Path(tempfile.mkdtemp(prefix="temshift-ro-"))
    path.chmod(0o755)
    yield path
    for p in [path, *path.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(path)


def run_unprivileged(args, cwd: Path, read_only: list[Path] = (), unreadable: list[Path] = ()):
    """Run the CLI in a subprocess for which `read_only` cannot be written and `unreadable` not read.

    As root (where permission bits do not bind) the command runs as user `nobody` (setpriv), for
    whom the root-owned folders are read-only anyway; otherwise the bits bind the current user.
    """
    import shutil

    for p in read_only:
        for q in [p, *p.rglob("*")]:
            q.chmod(0o555 if q.is_dir() else 0o444)
    for p in unreadable:
        p.chmod(0o000)
    home = Path(tempfile.mkdtemp(prefix="temshift-home-"))
    home.chmod(0o777)
    env = {**os.environ, "PYTHONPATH": str(SRC), "HOME": str(home), "MPLCONFIGDIR": str(home), "OMP_NUM_THREADS": "1"}
    prefix = []
    if os.geteuid() == 0:
        from shutil import which

        if which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop privileges")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        # a clone in a private folder (e.g. under /root) leaves `nobody` no way to run this python
        probe = subprocess.run(
            [*prefix, sys.executable, "-c", "import temshift"],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if probe.returncode != 0:
            shutil.rmtree(home, ignore_errors=True)
            pytest.skip(f"user nobody cannot run {sys.executable} with temshift: {probe.stderr.strip()[-200:]}")

    try:
        res = subprocess.run(
            [*prefix, sys.executable, "-m", "temshift", *map(str, args)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return res.returncode, res.stdout, res.stderr


@pytest.mark.parametrize("target", ["existing", "new"])
def test_read_only_output_folder(shared_tmp, target):
    frame = shared_tmp / "f.npy"
    np.save(frame, np.random.default_rng(0).poisson(400, (64, 64)).astype(np.float32))
    ro = shared_tmp / "ro"
    ro.mkdir()
    out = ro if target == "existing" else ro / "new"
    code, _, err = run_unprivileged(["preprocess", frame, "--out", out], shared_tmp, read_only=[ro])
    assert_clean_error(code, err, "--out", out)
    assert "not writable" in err or "cannot create" in err


def test_unreadable_catalog(shared_tmp):
    path = _catalog_csv(shared_tmp)
    if os.geteuid() == 0:
        path.chmod(0o600)  # root's file: `nobody` cannot read it
    code, _, err = run_unprivileged(["catalog", "query", path], shared_tmp, unreadable=[path])
    assert_clean_error(code, err, path, "cannot read")


def test_evaluate_on_a_read_only_run_folder(write_dataset, shared_tmp):
    import torch

    from temshift.training import TrainSettings, train_fold

    torch.set_num_threads(1)
    ds = write_dataset(
        shared_tmp / "A.h5",
        *toy_patches(10, 32, seed=3),
        spec={"name": "A", "dose_e_per_A2": 423, "pixel_scale_nm": 0.02},
    )
    settings = TrainSettings(epochs=1, batch_size=8, progress=False, threads=1)
    run_dir = train_fold(ds, 0, settings, shared_tmp / "run").run_dir
    for p in [shared_tmp, *shared_tmp.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    out = shared_tmp / "out"
    out.mkdir()
    out.chmod(0o777)
    code, _stdout, err = run_unprivileged(
        ["evaluate", run_dir, "--on", ds, "--threads", "1", "--no-dihedral", "--out", out / "m.csv"],
        shared_tmp,
        read_only=[run_dir],
    )
    assert code == 0, err
    assert "Traceback" not in err and (out / "m.csv").is_file()
    assert not (run_dir / "evaluations.json").exists()


def test_evaluate_cache_write_failure_is_not_an_error(tmp_path, monkeypatch):
    """The library side of the above, where permissions cannot be simulated (root)."""
    import temshift.evaluation.evaluate as ev
    import temshift.io.atomic as atomic

    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(atomic, "atomic_write_text", refuse)
    ev._write_cache(tmp_path, {"k": 1})  # no exception
    assert not (tmp_path / ev.CACHE_FILE).exists()


# --- temshift commands with obviously bad input --------------------------------------------


@pytest.mark.parametrize(
    "args, needle",
    [
        (["catalog", "query", "missing.csv"], "missing.csv"),
        (["dataset", "info", "missing.h5"], "missing.h5"),
        (["predict", "missing.pt", "f.npy", "--out", "o"], "missing.pt"),
        (["study", "show", "nosuchpreset"], "nosuchpreset"),
        (["study", "check", "nostudy"], "nostudy"),
        (["evaluate", "norun", "--on", "x.h5"], "norun"),
        (["model", "import", "nofile_model.h5", "--out", "m.pt"], "nofile_model.h5"),
        (["fetch", "--dest", "d", "--where", "nosuchfield=1"], "nosuchfield"),
        (["simulate", "--out", "s", "--where", "material=Unobtainium"], "Unobtainium"),
        (["preprocess", ".", "--out", "o"], "is a folder, not a frame file"),
    ],
)
def test_commands_with_bad_input(cli, monkeypatch, tmp_path, args, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(*args)
    assert_clean_error(code, err, needle)


def test_temshift_errors_are_subclassed():
    from temshift.errors import OutputPathError, PreprocessError
    from temshift.units import PixelScaleError

    assert issubclass(OutputPathError, TemshiftError) and issubclass(PixelScaleError, TemshiftError)
    assert issubclass(PreprocessError, ValueError)  # callers catching the old ValueError keep working


@pytest.mark.parametrize("command", ["check", "predict"])
def test_stacks_in_predict_and_check_need_frame_or_sum(cli, tmp_path, model_pt, command):
    path = tmp_path / "series.npy"
    np.save(path, np.random.default_rng(0).poisson(400, (2, 64, 64)).astype(np.float32))
    base = [command, model_pt, path, "--pixel-scale", "0.02"] + (
        ["--out", tmp_path / "o"] if command == "predict" else []
    )
    code, _, err = cli(*base)
    assert_clean_error(code, err, path, "stack of 2 frames", "--frame K", "--sum")
    for flags in (["--frame", "1"], ["--sum"]):
        code, _, err = cli(*base, *flags)
        assert code == 0, err
    code, _, err = cli(*base, "--frame", "1", "--sum")
    assert_clean_error(code, err, "--frame K or --sum")
