"""Pixel scale from lattice fringes (issue 11, point 4): the estimator and its use by `predict`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from temshift.errors import PreprocessError, TemshiftError
from temshift.preprocess.scale_estimate import MATERIALS, MIN_CONFIDENCE, estimate_pixel_scale, reflections


def _simulated(material: str, pixel_scale_nm: float, seed: int = 1):
    from temshift.simulate import FrameRequest, simulate_frame

    req = FrameRequest(
        material=material,
        diameter_nm=5.0,
        dose_e_per_A2=1000.0,
        pixel_scale_nm=pixel_scale_nm,
        frame_size_px=512,
        mode="projection",
        seed=seed,
        frame_key=f"scale-test/{material}/{pixel_scale_nm}",
    )
    return simulate_frame(req).counts


def test_reflections_come_from_ase_lattices():
    from ase.build import bulk

    a_nm = bulk("Au", "fcc", cubic=True).cell.lengths()[0] / 10
    au = reflections("Au")
    assert au[0].label == "Au {111}" and au[0].d_nm == pytest.approx(a_nm / math.sqrt(3), abs=1e-4)
    assert au[1].label == "Au {200}" and au[1].d_nm == pytest.approx(a_nm / 2, abs=1e-4)
    assert au[0].weight == 1.0 > au[1].weight
    wz = {r.label: r.d_nm for r in reflections("CdSe") if r.structure == "wurtzite"}
    assert wz["CdSe {100}"] == pytest.approx(0.42999 * math.sqrt(3) / 2, abs=1e-4)
    assert wz["CdSe {002}"] == pytest.approx(0.70109 / 2, abs=1e-4)
    assert reflections("pt")[0].d_nm < au[0].d_nm  # Pt is finer than Au
    assert set(MATERIALS) >= {"Au", "Ag", "Pt", "Pd", "CdSe"}


@pytest.mark.parametrize(("material", "pixel_scale_nm"), [("Au", 0.03), ("Au", 0.06), ("CdSe", 0.04)])
def test_estimator_recovers_the_scale_of_a_simulated_frame(material, pixel_scale_nm):
    est = estimate_pixel_scale(_simulated(material, pixel_scale_nm), material)
    assert est is not None
    assert est.pixel_scale_nm == pytest.approx(pixel_scale_nm, rel=0.03)
    assert 0 < est.confidence <= 1 and not est.material_assumed
    if material == "Au":  # fcc's few, well-separated reflections; CdSe's dense ones leave alternatives
        assert est.confidence >= MIN_CONFIDENCE
    assert est.reflection.startswith(material + " {")
    assert f"estimated {est.pixel_scale_nm:.3g} nm/px from lattice fringes ({est.reflection}" in est.describe()


def test_unknown_material_is_assumed_gold_and_said():
    est = estimate_pixel_scale(_simulated("Au", 0.03))
    assert est is not None and est.material_assumed and "material assumed" in est.describe()
    assert est.pixel_scale_nm == pytest.approx(0.03, rel=0.03)


def test_no_fringes_gives_none():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    noise = rng.normal(100.0, 10.0, (512, 512))
    assert estimate_pixel_scale(noise) is None
    # amorphous-looking texture with shot noise, no lattice
    texture = 1000 * (1 + 0.15 * gaussian_filter(rng.normal(size=(768, 768)), 2.0))
    assert estimate_pixel_scale(rng.poisson(texture).astype(float)) is None
    assert estimate_pixel_scale(np.full((256, 256), 7.0)) is None


@pytest.mark.parametrize(
    ("image", "needle"),
    [
        (np.full((128, 128), np.nan), "NaN"),
        (np.zeros((4, 128, 128)), "2-D"),
        (np.zeros((32, 32)), "smaller than"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_bad_input_is_a_clear_error(image, needle):
    with pytest.raises(TemshiftError, match=needle):
        estimate_pixel_scale(image)


def test_unknown_material_name_is_a_clear_error():
    with pytest.raises(PreprocessError, match="'Unobtainium': no known lattice"):
        estimate_pixel_scale(np.zeros((128, 128)), "Unobtainium")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import torch

    from temshift.models import CheckpointMeta, UNet, save_checkpoint
    from test_predict_pipeline import SPEC

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    spec = {**SPEC, "pixel_scale_nm": 0.04}
    return save_checkpoint(path, UNet(), CheckpointMeta.model_validate({"dataset_spec": spec}))


def test_predict_on_a_scale_less_frame_uses_and_records_the_estimate(tmp_path, cli, model):
    frame = tmp_path / "au.npy"
    np.save(frame, _simulated("Au", 0.03))  # .npy: no pixel size recorded, not in the catalog
    code, _out, err = cli("predict", model, frame, "--out", tmp_path / "out", "--no-particles")
    assert code == 0, err
    assert "frame pixel scale unknown: estimated 0.03" in err and "nm/px from lattice fringes (Au {" in err
    (rec,) = json.loads((tmp_path / "out" / "prediction.json").read_text())["frames"]
    scale = rec["metadata"]["pixel_scale_nm"]
    assert scale["source"] == "estimated" and scale["value"] == pytest.approx(0.03, rel=0.03)
    assert rec["metadata"]["pixel_scale_estimate"]["used"] is True
    (report,) = json.loads((tmp_path / "out" / "risk.json").read_text())
    assert any("(estimated from lattice fringes) resampled to trained 0.04" in f["message"] for f in report["findings"])


def test_predict_without_fringes_keeps_the_assumed_scale_message(tmp_path, model):
    from temshift.predict import predict_frames

    rng = np.random.default_rng(0)
    np.save(tmp_path / "flat.npy", rng.poisson(500.0, (384, 384)).astype(np.float32))
    np.save(tmp_path / "au.npy", _simulated("Au", 0.03))
    flat, off = predict_frames(model, [tmp_path / "flat.npy", tmp_path / "au.npy"], estimate_scale=False)
    assert off.metadata.pixel_scale_nm is None  # estimation switched off
    (flat,) = predict_frames(model, [tmp_path / "flat.npy"])
    assert flat.metadata.pixel_scale_nm is None and flat.metadata.pixel_scale_source is None
    assert any("no lattice fringes" in n for n in flat.metadata.notes)
    assert "assumed the model's 0.04 nm/px" in flat.report.reasons[0]


def test_material_flag_is_checked(tmp_path, cli, model):
    np.save(tmp_path / "f.npy", np.zeros((128, 128), np.float32))
    code, _out, err = cli("predict", model, tmp_path / "f.npy", "--out", tmp_path / "o", "--material", "Kryptonite")
    assert code == 1 and "Kryptonite" in err and "Traceback" not in err


def test_check_takes_the_same_scale_options_as_predict(tmp_path, cli, model):
    """`temshift check` reports the same estimated scale as predict, and refuses a bad material."""
    frame = tmp_path / "au.npy"
    np.save(frame, _simulated("Au", 0.03))
    code, _out, err = cli("check", model, frame, "--material", "Au")
    assert code == 0, err
    assert "frame pixel scale unknown: estimated 0.03" in err
    code, out, err = cli("check", model, frame, "--no-estimate-scale")
    assert code == 0, err
    assert "estimated" not in err + out and "assumed the model's 0.04" in out
    code, _out, err = cli("check", model, frame, "--material", "Kryptonite")
    assert code == 1 and "Kryptonite" in err and "Traceback" not in err
