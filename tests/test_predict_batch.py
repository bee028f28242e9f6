"""The library form of `temshift predict`: `predict_frames` + `write_predictions` (issue 13, point 2).

Same masks and files as the command line, metadata sources flag > file > catalog recorded
in `prediction.json` with the model files' SHA-256, and a bad frame that does not stop the batch.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from temshift.catalog import Catalog
from temshift.io import read_label, write_tiff_frame
from temshift.models import CheckpointMeta, UNet, save_checkpoint
from temshift.simulate.toy import toy_support_frame
from test_predict_pipeline import SPEC

DATASET = {"name": "synth", "spec_hash": "5f3a9c0d1e2b4a67", "content_hash": "0123456789abcdef"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    return save_checkpoint(path, UNet(), CheckpointMeta.model_validate({"dataset_spec": SPEC, "dataset": DATASET}))


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Frames whose metadata come from the file, the catalog, nowhere, and a corrupt one; a catalog."""
    root = tmp_path_factory.mktemp("frames")
    a, _ = toy_support_frame(192, n_particles=3, seed=1)
    b, _ = toy_support_frame(192, n_particles=2, seed=2)
    c, _ = toy_support_frame(192, n_particles=4, seed=3)
    write_tiff_frame(root / "file.tif", a, 0.02)  # pixel size recorded in the file
    np.save(root / "cat.npy", b)  # no pixel size: the catalog's
    np.save(root / "none.npy", c)  # listed nowhere
    (root / "broken.tif").write_bytes(b"II*\x00 not a TIFF")
    df = Catalog.published().df.head(2).copy()
    df["file"] = ["file.tif", "cat.npy"]
    df["pixel_scale_nm"] = ["0.021", "0.02"]  # file.tif: the recorded 0.02 wins over the catalog (and is noted)
    df["dose_e_per_A2"] = ["300", "423"]
    cat = Catalog(df, normalized=True).to_published_csv(root / "catalog.csv")
    frames = [root / n for n in ("file.tif", "broken.tif", "cat.npy", "none.npy")]
    return frames, cat


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_predict_frames_gives_the_cli_masks_and_files(tmp_path, cli, model, batch):
    from temshift.predict import FramePrediction, predict_frames, write_predictions

    frames, cat = batch
    preds = predict_frames(model, frames, catalog=cat)
    assert all(isinstance(p, FramePrediction) for p in preds)
    assert [p.name for p in preds] == ["file.tif", "broken.tif", "cat.npy", "none.npy"]
    write_predictions(preds, tmp_path / "lib", inputs={"models": [str(model)]})
    code, _, err = cli("predict", model, *frames, "--catalog", cat, "--out", tmp_path / "cli")
    assert code == 1 and "1 of 4 frame(s) failed" in err  # the bad frame, as the library reports it
    for p in preds:
        if not p.ok:
            continue
        cli_mask = read_label(tmp_path / "cli" / f"{p.stem}_mask.png")
        np.testing.assert_array_equal(p.mask != 0, cli_mask != 0)
        for suffix in ("_mask.png", "_mask.tif", "_overlay.png", "_particles.csv"):
            assert (tmp_path / "lib" / f"{p.stem}{suffix}").read_bytes() == (
                tmp_path / "cli" / f"{p.stem}{suffix}"
            ).read_bytes(), p.stem + suffix
    # the command draws the histogram in a child process (`HistogramProcess`), the library in line: the same file
    for name in (
        "risk.json",
        "risk.csv",
        "particles.csv",
        "particle_summary.csv",
        "size_histogram.csv",
        "size_histogram.png",
    ):
        assert (tmp_path / "lib" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    cli_record = json.loads((tmp_path / "cli" / "prediction.json").read_text())
    lib_record = json.loads((tmp_path / "lib" / "prediction.json").read_text())
    assert cli_record["frames"] == lib_record["frames"] and cli_record["models"] == lib_record["models"]


def test_prediction_json_records_models_settings_and_metadata_sources(tmp_path, model, batch):
    from temshift import __version__
    from temshift.predict import PredictSettings, predict_frames, write_predictions

    frames, cat = batch
    settings = PredictSettings(tta=False, watershed=True)
    preds = predict_frames(model, frames, settings, catalog=cat)
    write_predictions(preds, tmp_path, settings)
    rec = json.loads((tmp_path / "prediction.json").read_text())
    assert rec["temshift_version"] == __version__
    from temshift.models.runtime import native_bf16

    assert rec["runtime"]["precision"] == ("bfloat16" if native_bf16() else "float32")
    assert rec["runtime"]["device"] == "cpu" and rec["runtime"]["torch_threads"] >= 1
    assert rec["settings"]["watershed"] is True and rec["settings"]["tile"] == 2048
    assert rec["settings"]["rescale"] is True and rec["settings"]["pixel_scale_nm"] is None
    (entry,) = rec["models"]
    (file_entry,) = entry["files"]
    assert file_entry["sha256"] == _sha256(model)
    assert file_entry["training_dataset"]["content_hash"] == DATASET["content_hash"]
    assert file_entry["training_dataset"]["spec_hash"] == DATASET["spec_hash"]
    by = {f["frame"]: f for f in rec["frames"]}
    meta = {n: by[n]["metadata"] for n in ("file.tif", "cat.npy", "none.npy")}
    assert meta["file.tif"]["pixel_scale_nm"] == {"value": 0.02, "source": "file"}
    assert meta["file.tif"]["dose_e_per_A2"] == {"value": 300.0, "source": "catalog"}
    assert any("differs from expected" in n for n in meta["file.tif"]["notes"])
    assert meta["cat.npy"]["pixel_scale_nm"] == {"value": 0.02, "source": "catalog"}
    assert meta["cat.npy"]["dose_e_per_A2"] == {"value": 423.0, "source": "catalog"}
    # no flag, file or catalog scale; the toy particles' one fringe spacing could be any reflection: not used
    assert meta["none.npy"]["pixel_scale_nm"] == {"value": None, "source": None}
    assert meta["none.npy"]["pixel_scale_estimate"]["used"] is False
    assert any("lattice-fringe estimate" in n and "not used" in n for n in meta["none.npy"]["notes"])
    assert meta["none.npy"]["dose_e_per_A2"] == {"value": None, "source": None}
    assert by["cat.npy"]["status"] == "predicted" and "cat_mask.png" in by["cat.npy"]["outputs"]
    assert by["broken.tif"]["status"] == "failed" and "broken.tif" in by["broken.tif"]["error"]
    assert by["broken.tif"]["metadata"] is None and by["broken.tif"]["outputs"] == []

    # flags win over the file and the catalog
    flagged = predict_frames(model, frames[:1], catalog=cat, pixel_scale_nm=0.0205, dose_e_per_A2=500.0)
    write_predictions(flagged, tmp_path / "flags")
    m = json.loads((tmp_path / "flags" / "prediction.json").read_text())["frames"][0]["metadata"]
    assert m["pixel_scale_nm"] == {"value": 0.0205, "source": "flag"} and m["file_pixel_scale_nm"] == 0.02
    assert m["dose_e_per_A2"] == {"value": 500.0, "source": "flag"}
    assert flagged[0].report.stats["pixel_scale_nm"] == 0.0205


def test_a_bad_frame_in_a_batch_is_recorded_and_the_rest_written(tmp_path, model, batch):
    from temshift.predict import predict_frames, write_predictions

    frames, cat = batch
    seen = []
    preds = predict_frames(
        model, frames, catalog=cat, on_frame=lambda p: seen.append((p.name, p.mask is not None)), keep_arrays=False
    )
    assert seen == [("file.tif", True), ("broken.tif", False), ("cat.npy", True), ("none.npy", True)]
    bad = preds[1]
    assert not bad.ok and bad.error.startswith(str(frames[1])) and bad.report is None
    assert all(p.ok and p.report is not None and p.segmentation is None for p in preds if p is not bad)
    with pytest.raises(ValueError, match="released"):  # arrays dropped: frame files cannot be written afterwards
        from temshift.predict import write_frame_outputs

        write_frame_outputs(preds[0], tmp_path)
    good = predict_frames(model, frames, catalog=cat)
    write_predictions(good, tmp_path / "out")
    assert list(pd.read_csv(tmp_path / "out" / "risk.csv")["frame"]) == ["file.tif", "cat.npy", "none.npy"]
    assert not (tmp_path / "out" / "broken_mask.png").exists()
    assert (tmp_path / "out" / "none_mask.png").is_file() and (tmp_path / "out" / "particles.csv").is_file()


def test_strict_refuses_without_losing_the_report(tmp_path, model, batch):
    from temshift.predict import predict_frames, write_predictions

    frames, cat = batch
    # a frame at 3x the trained pixel scale without resampling is a high pixel-scale shift
    preds = predict_frames(model, frames[2:3], catalog=cat, pixel_scale_nm=0.06, rescale=False, strict=True)
    (p,) = preds
    assert p.report.level == "high" and p.refused and p.particles is None
    write_predictions(preds, tmp_path)
    assert not (tmp_path / "cat_mask.png").exists() and (tmp_path / "risk.csv").is_file()
    assert json.loads((tmp_path / "prediction.json").read_text())["frames"][0]["status"] == "refused"


def test_settings_are_checked_up_front():
    from temshift.errors import TemshiftError
    from temshift.predict import PredictSettings

    for bad in ({"pixel_scale_nm": 5000.0}, {"dose_e_per_A2": -1.0}, {"tile": 100}, {"batch_size": 0}):
        with pytest.raises(TemshiftError):
            PredictSettings(**bad)


def test_package_exports_load_lazily():
    import subprocess
    import sys

    code = (
        "import sys, temshift.predict as p; assert 'torch' not in sys.modules and 'pandas' not in sys.modules; "
        "assert {'predict_frames', 'write_predictions', 'FramePrediction', 'FrameMetadata', 'load_predictor', "
        "'predict_frame', 'assess_shift'} <= set(p.__all__); [getattr(p, n) for n in p.__all__]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
