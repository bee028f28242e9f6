"""Shift warnings flag dose / pixel-scale / fringe shifts and not in-distribution frames."""

from __future__ import annotations

import json

import pytest
from _predict_synth import raw_frame, write_training_dataset

from temshift.predict.pipeline import model_input
from temshift.predict.shift import (ShiftReport, assess_shift, frame_statistics, model_training_statistics,
                                    training_statistics, train_reference)
from temshift.preprocess import PreprocessSettings

SETTINGS = PreprocessSettings(xray_threshold=None)


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    frames = [raw_frame(512, seed=s) for s in range(6)]
    path = write_training_dataset(tmp_path_factory.mktemp("ds") / "synth.h5", [f for f, _ in frames],
                                  [lab for _, lab in frames])
    return path, training_statistics(path)


def report(train_stats, *, dose=423.0, scale=0.02, spacing=0.235, seed=10, rescale=True, tell_dose=True) -> ShiftReport:
    raw, _ = raw_frame(512, dose_e_per_A2=dose, pixel_scale_nm=scale, spacing_nm=spacing, seed=seed)
    image, zoom, native = model_input(raw, SETTINGS, scale, 0.02, rescale, return_native=True)
    stats = frame_statistics(image, pixel_scale_nm=scale, input_pixel_scale_nm=scale / zoom, rescaled=zoom != 1.0,
                             dose_e_per_A2=dose if tell_dose else None, tile=256, native_image=native, zoom=zoom)
    return assess_shift(stats, train_stats, f"frame{seed}", rescale_requested=rescale)


def test_training_statistics_content(train):
    path, ts = train
    assert ts["pixel_scale_nm"] == 0.02 and ts["dose_e_per_A2"] == 423.0
    assert ts["n_frames"] == 6 and ts["tile"] == 256
    assert ts["fringe_peaks"][0]["period_px"] == pytest.approx(0.235 / 0.02, rel=0.03)
    assert ts["snr"]["min"] <= ts["snr"]["median"] <= ts["snr"]["max"]
    assert ts["contrast"]["median"] > 0
    json.dumps(ts)  # JSON-ready, so checkpoints can carry it
    # carried in the meta: used as is; otherwise computed from the dataset path in the meta
    assert model_training_statistics({"training_statistics": ts}) is ts
    assert model_training_statistics({"dataset": {"path": str(path)}})["n_frames"] == 6
    assert model_training_statistics({"dataset": {"path": "/nonexistent.h5"}}) is None


def test_in_distribution_frames_not_flagged(train):
    for seed in (10, 11, 12):
        r = report(train[1], seed=seed)
        assert not r.flagged, r.reasons


def test_low_dose_flagged_with_direction(train):
    r = report(train[1], dose=80)
    assert r.level == "high"
    assert any("dose 80 e/A2 vs trained 423: expect under-segmentation" in m for m in r.reasons)
    blind = report(train[1], dose=80, tell_dose=False)  # dose unknown: the image SNR still tells
    assert blind.flagged and any("SNR" in m and "under-segmentation" in m for m in blind.reasons)


def test_high_dose_flagged(train):
    r = report(train[1], dose=1700)
    assert r.level == "high" and any("over-segmentation" in m for m in r.reasons)


def test_pixel_scale_shift_flagged_unless_resampled(train):
    r = report(train[1], scale=0.033, rescale=False)
    assert r.level == "high"
    keys = {f.key for f in r.findings if f.level == "high"}
    assert {"pixel_scale", "fringe"} <= keys
    fixed = report(train[1], scale=0.033, rescale=True)
    levels = {f.key: f.level for f in fixed.findings}
    assert levels["pixel_scale"] == "low" and levels["fringe"] == "low"


def test_wrong_pixel_scale_metadata_caught_by_fringes(train):
    # the frame is really at 0.033 nm/px but claims 0.02: no resampling, fringes too fine
    raw, _ = raw_frame(512, pixel_scale_nm=0.033, seed=3)
    image, zoom = model_input(raw, SETTINGS, 0.02, 0.02)
    stats = frame_statistics(image, pixel_scale_nm=0.02, input_pixel_scale_nm=0.02, rescaled=False, tile=256)
    r = assess_shift(stats, train[1])
    assert any(f.key == "fringe" and f.level == "high" for f in r.findings)


def test_other_material_fringes_flagged(train):
    r = report(train[1], spacing=0.35)
    assert r.flagged and any("fringe spacing" in m and "differs by" in m for m in r.reasons)


def test_reference_from_spec_only():
    ref = train_reference({"dataset_spec": {"pixel_scale_nm": 0.02, "dose_e_per_A2": 884}}, None)
    stats = {"pixel_scale_nm": 0.02, "dose_e_per_A2": 80.0, "rescaled": False}
    r = assess_shift(stats, ref, "x")
    assert r.level == "high" and r.reasons == ["dose 80 e/A2 vs trained 884: expect under-segmentation"]
    d = r.to_dict()
    assert d["flagged"] and d["findings"][0]["key"] == "pixel_scale"
    unknown = assess_shift({"pixel_scale_nm": None, "rescaled": False}, ref, "y", rescale_requested=True)
    assert unknown.level == "medium" and "pass --pixel-scale" in unknown.reasons[0]


def test_contrast_flagged_only_below_the_training_frames():
    ref = {"contrast": {"median": 0.6, "spread": 0.1, "min": 0.3, "max": 0.9, "n": 8}}
    seen = assess_shift({"contrast": 0.35, "rescaled": False}, ref, "seen")  # faint but like a training frame
    assert seen.level == "low" and not seen.flagged
    slightly = assess_shift({"contrast": 0.25, "rescaled": False}, ref, "slightly")  # 0.83 of the faintest
    assert slightly.level == "low"
    faint = assess_shift({"contrast": 0.2, "rescaled": False}, ref, "faint")  # 0.67 of the faintest
    assert faint.level == "medium" and "fainter particles" in " ".join(faint.reasons)
    assert assess_shift({"contrast": 0.12, "rescaled": False}, ref, "fainter").level == "high"


def test_snr_measured_from_the_nearest_training_frame():
    ref = {"snr": {"median": 2.0, "spread": 0.3, "min": 1.6, "max": 2.6, "n": 12}}
    assert assess_shift({"snr": 1.5}, ref).level == "low"  # (1.5 / 1.6)^2 = 0.88: like a training frame
    low = assess_shift({"snr": 0.6}, ref)  # dose-equivalent x0.14 of the noisiest training frame
    assert low.level == "high" and "under-segmentation" in " ".join(low.reasons)
    assert assess_shift({"snr": 3.4}, ref).level == "medium"  # x1.7 of the cleanest training frame
    high = assess_shift({"snr": 4.0}, ref)  # x2.4
    assert high.level == "high" and "over-segmentation" in " ".join(high.reasons)


def test_contrast_needs_as_many_particle_pixels_as_a_training_patch():
    import numpy as np

    from temshift.datasets.statistics import tile_statistics

    rng = np.random.default_rng(0)
    tile = rng.normal(size=(256, 256)).astype(np.float32)
    yy, xx = np.mgrid[:256, :256]
    disk = (yy - 128) ** 2 + (xx - 128) ** 2 < 20**2
    tile[disk] -= 2.0
    assert tile_statistics(tile, disk)["contrast"] > 1.0
    specks = np.zeros_like(disk)
    specks[10, 10:15] = True  # 5 stray pixels, far below the 100-pixel patch filter at 256 px
    assert np.isnan(tile_statistics(tile, specks)["contrast"])


def test_missing_fringes_flagged_only_when_every_training_frame_had_them():
    peaks = [{"period_px": 11.8, "prominence": 3.0}]
    all_had = {"fringe_peaks": peaks, "fringe_period_px": {"median": 11.8, "n": 10}, "n_frames": 10}
    some_lacked = {**all_had, "fringe_period_px": {"median": 11.8, "n": 7}}
    frame = {"fringe_period_px": None, "input_pixel_scale_nm": 0.02}
    assert assess_shift(frame, all_had).level == "medium"
    lacking = assess_shift(frame, some_lacked)
    assert lacking.level == "low" and "3 of 10 training frames" in lacking.findings[-1].message


def test_snr_not_compared_across_pixel_scales_but_dose_is():
    ref = {"snr": {"median": 2.0, "spread": 0.3, "min": 1.6, "max": 2.6, "n": 12}, "dose_e_per_A2": 884.0}
    rep = assess_shift({"snr": 6.0, "rescaled": True, "dose_e_per_A2": 884.0}, ref)
    assert rep.level == "low" and "not compared" in rep.findings[-1].message
    low = assess_shift({"snr": 6.0, "rescaled": True, "dose_e_per_A2": 80.0}, ref)
    assert low.level == "high" and any("dose 80" in r for r in low.reasons)
