"""Shift warnings flag dose / pixel-scale / fringe shifts and not in-distribution frames."""

from __future__ import annotations

import json

import pytest

from temshift.datasets.records import TrainingStatistics
from temshift.datasets.statistics import STATS_VERSION
from temshift.models.records import CheckpointMeta
from temshift.predict.shift import (
    ShiftReport,
    TrainingReference,
    assess_batch,
    assess_shift,
    batch_groups,
    frame_statistics,
    model_training_statistics,
    train_reference,
    training_statistics,
)
from temshift.preprocess import PreprocessSettings
from temshift.preprocess.model_input import model_input
from temshift.simulate.toy import toy_support_frame

SETTINGS = PreprocessSettings(xray_threshold=None)


@pytest.fixture(scope="module")
def train(write_training_dataset, tmp_path_factory):
    frames = [toy_support_frame(512, seed=s) for s in range(6)]
    path = write_training_dataset(
        tmp_path_factory.mktemp("ds") / "synth.h5", [f for f, _ in frames], [lab for _, lab in frames]
    )
    return path, training_statistics(path)


def reference(pixel_scale_nm=None, dose_e_per_A2=None, **stats) -> TrainingReference:
    """A training reference; with statistics when any is given (the others: neutral defaults)."""
    if not stats:
        return TrainingReference(pixel_scale_nm, dose_e_per_A2)
    base = {"version": STATS_VERSION, "tile": 256, "n_frames": 10, "n_patches": 40, "dataset": "synth.h5"}
    return TrainingReference(pixel_scale_nm, dose_e_per_A2, TrainingStatistics.model_validate({**base, **stats}))


def of_stats(ts: TrainingStatistics) -> TrainingReference:
    return train_reference(CheckpointMeta(), ts)


def report(train_stats, *, dose=423.0, scale=0.02, spacing=0.235, seed=10, rescale=True, tell_dose=True) -> ShiftReport:
    raw, _ = toy_support_frame(512, dose_e_per_A2=dose, pixel_scale_nm=scale, spacing_nm=spacing, seed=seed)
    image, zoom, native = model_input(raw, SETTINGS, scale, 0.02, rescale, return_native=True)
    stats = frame_statistics(
        image,
        pixel_scale_nm=scale,
        input_pixel_scale_nm=scale / zoom,
        rescaled=zoom != 1.0,
        dose_e_per_A2=dose if tell_dose else None,
        tile=256,
        native_image=native,
        zoom=zoom,
    )
    return assess_shift(stats, of_stats(train_stats), f"frame{seed}", rescale_requested=rescale)


def test_training_statistics_content(train):
    path, ts = train
    assert ts.pixel_scale_nm == 0.02 and ts.dose_e_per_A2 == 423.0
    assert ts.n_frames == 6 and ts.tile_px == 256
    assert ts.fringe_peaks[0].period_px == pytest.approx(0.235 / 0.02, rel=0.03)
    assert ts.snr.min <= ts.snr.median <= ts.snr.max
    assert ts.contrast.median > 0
    stored = ts.to_stored()
    assert stored["tile"] == 256 and TrainingStatistics.model_validate(json.loads(json.dumps(stored))) == ts
    # carried in the meta: used as is; otherwise computed from the dataset path in the meta
    assert model_training_statistics(CheckpointMeta(training_statistics=ts)) is ts
    assert model_training_statistics(CheckpointMeta.model_validate({"dataset": {"path": str(path)}})).n_frames == 6
    assert model_training_statistics(CheckpointMeta.model_validate({"dataset": {"path": "/nonexistent.h5"}})) is None
    # statistics of other definitions are measured again, not used
    old = CheckpointMeta.model_validate(
        {"training_statistics": {**stored, "version": STATS_VERSION - 1}, "dataset": {"path": str(path)}}
    )
    assert old.training_statistics is None and model_training_statistics(old) == ts


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
    raw, _ = toy_support_frame(512, pixel_scale_nm=0.033, seed=3)
    image, _zoom = model_input(raw, SETTINGS, 0.02, 0.02)
    stats = frame_statistics(image, pixel_scale_nm=0.02, input_pixel_scale_nm=0.02, rescaled=False, tile=256)
    r = assess_shift(stats, of_stats(train[1]))
    assert any(f.key == "fringe" and f.level == "high" for f in r.findings)


def test_other_material_fringes_flagged(train):
    r = report(train[1], spacing=0.35)
    assert r.flagged and any("fringe spacing" in m and "differs by" in m for m in r.reasons)


def test_reference_from_spec_only():
    ref = train_reference(
        CheckpointMeta.model_validate({"dataset_spec": {"pixel_scale_nm": 0.02, "dose_e_per_A2": 884}}), None
    )
    assert ref == TrainingReference(0.02, 884.0)
    stats = {"pixel_scale_nm": 0.02, "dose_e_per_A2": 80.0, "rescaled": False}
    r = assess_shift(stats, ref, "x")
    assert r.level == "high" and r.reasons == ["dose 80 e/A2 vs trained 884: expect under-segmentation"]
    d = r.to_dict()
    assert d["flagged"] and d["findings"][0]["key"] == "pixel_scale"
    unknown = assess_shift({"pixel_scale_nm": None, "rescaled": False}, ref, "y", rescale_requested=True)
    assert unknown.level == "medium" and "pass --pixel-scale" in unknown.reasons[0]
    # what was assumed in place of the missing scale is said
    assert "assumed the model's 0.02 nm/px (frame not resampled)" in unknown.reasons[0]


def test_faint_mask_contrast_is_a_mask_doubt_not_a_shift():
    # contrast under the *predicted* mask says the mask is doubtful (it is as low on
    # in-distribution frames the model fails on), so it never flags a frame on its own
    ref = reference(contrast={"median": 0.6, "spread": 0.1, "min": 0.3, "max": 0.9, "n": 8})
    seen = assess_shift({"contrast": 0.35, "rescaled": False}, ref, "seen")  # faint but like a training frame
    assert not seen.flagged and not seen.doubts
    slightly = assess_shift({"contrast": 0.25, "rescaled": False}, ref, "slightly")  # 0.83 of the faintest
    assert not slightly.doubts
    faint = assess_shift({"contrast": 0.2, "rescaled": False}, ref, "faint")  # 0.67 of the faintest
    assert not faint.flagged and faint.level == "low" and faint.reasons == []
    assert "doubtful mask" in faint.doubts[0] and faint.to_dict()["doubts"] == faint.doubts
    fainter = assess_shift({"contrast": 0.12, "rescaled": False}, ref, "fainter")
    assert [f.level for f in fainter.findings if f.key == "contrast"] == ["high"] and not fainter.flagged


def test_snr_measured_from_the_nearest_training_frame():
    ref = reference(snr={"median": 2.0, "spread": 0.3, "min": 1.6, "max": 2.6, "n": 12})
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


def test_one_frame_without_fringes_is_noted_not_flagged():
    peaks = [{"period_px": 11.8, "prominence": 3.0}]
    period = {"median": 11.8, "spread": 0.0, "min": 11.8, "max": 11.8}
    all_had = reference(fringe_peaks=peaks, fringe_period_px={**period, "n": 10}, n_frames=10)
    some_lacked = reference(fringe_peaks=peaks, fringe_period_px={**period, "n": 7}, n_frames=10)
    frame = {"fringe_period_px": None, "input_pixel_scale_nm": 0.02}
    alone = assess_shift(frame, all_had)
    assert not alone.flagged and "no lattice fringes detected in this frame" in alone.findings[-1].message
    lacking = assess_shift(frame, some_lacked)
    assert lacking.level == "low" and "3 of 10 training frames" in lacking.findings[-1].message


def _batch(frames: list[dict], ref: TrainingReference):
    reports = [assess_shift({"rescaled": False, **f}, ref, f"f{i}") for i, f in enumerate(frames)]
    return reports, assess_batch(reports, ref)


def test_batch_without_fringes_flags_every_frame():
    ref = reference(
        fringe_peaks=[{"period_px": 11.8, "prominence": 3.0}],
        n_frames=10,
        fringe_period_px={"median": 11.8, "spread": 0.0, "min": 11.8, "max": 11.8, "n": 10},
    )
    none = {"fringe_period_px": None}
    seen = {"fringe_period_px": 11.7}
    # 1 of 3 fringe-less frames happens in distribution (rate ~1/12 from 10 of 10 training frames)
    reports, found = _batch([none, seen, seen], ref)
    assert [f.level for f in found] == ["low"] and not any(r.flagged for r in reports)
    reports, found = _batch([none] * 4, ref)
    assert [f.level for f in found] == ["medium"] and found[0].kind == "batch"
    assert all(r.flagged and "4 of 4 frames of this batch show no lattice fringes" in r.reasons[0] for r in reports)
    # fewer than BATCH_MIN_FRAMES frames: no batch findings
    reports, found = _batch([none, none], ref)
    assert found == [] and not any(r.flagged for r in reports)


def test_batch_contrast_below_every_training_frame_flags_the_batch():
    ref = reference(contrast={"median": 0.6, "spread": 0.1, "min": 0.3, "max": 0.9, "n": 8})
    reports, _found = _batch([{"contrast": c} for c in (0.1, 0.5, 0.62)], ref)  # one failed frame
    assert not any(r.flagged for r in reports) and reports[0].doubts
    reports, _found = _batch([{"contrast": c} for c in (0.1, 0.2, 0.62)], ref)  # most frames fainter than any seen
    assert all(r.flagged for r in reports) and "fainter than every training frame" in reports[2].reasons[0]


def test_batch_snr_like_another_dose():
    ref = reference(snr={"median": 2.0, "spread": 0.3, "min": 1.2, "max": 2.6, "n": 12})
    same, _ = _batch([{"snr": v} for v in (1.3, 2.0, 2.1)], ref)
    assert not any(r.flagged for r in same)
    noisy, _found = _batch([{"snr": v} for v in (1.3, 1.35, 1.4)], ref)  # each inside the range, the batch not
    assert all(r.flagged for r in noisy) and "under-segmentation" in noisy[0].reasons[0]


def test_batches_grouped_by_recorded_conditions():
    reports = [
        assess_shift({"pixel_scale_nm": s, "dose_e_per_A2": d}, reference(), f"f{i}")
        for i, (s, d) in enumerate([(0.02, 80), (0.02, 884), (0.02, 80.0), (0.033, 80)])
    ]
    assert [[r.frame for r in g] for g in batch_groups(reports)] == [["f0", "f2"], ["f1"], ["f3"]]


def test_snr_not_compared_across_pixel_scales_but_dose_is():
    ref = reference(dose_e_per_A2=884.0, snr={"median": 2.0, "spread": 0.3, "min": 1.6, "max": 2.6, "n": 12})
    rep = assess_shift({"snr": 6.0, "rescaled": True, "dose_e_per_A2": 884.0}, ref)
    assert rep.level == "low" and "not compared" in rep.findings[-1].message
    low = assess_shift({"snr": 6.0, "rescaled": True, "dose_e_per_A2": 80.0}, ref)
    assert low.level == "high" and any("dose 80" in r for r in low.reasons)


def test_unknown_dose_is_said_not_compared():
    # a frame outside the catalog without --dose: the report says the dose was not compared
    ref = reference(0.02, 423.0)
    r = assess_shift({"pixel_scale_nm": 0.02, "dose_e_per_A2": None, "rescaled": False}, ref, "x")
    assert r.level == "low"
    assert any("dose not compared" in m and "--dose" in m for m in r.not_compared)
    assert r.to_dict()["not_compared"] == r.not_compared
    untrained = assess_shift({"pixel_scale_nm": 0.02, "dose_e_per_A2": 80.0, "rescaled": False}, reference(0.02), "y")
    assert any("dose not compared" in m and "training dose unknown" in m for m in untrained.not_compared)
    known = assess_shift({"pixel_scale_nm": 0.02, "dose_e_per_A2": 423.0, "rescaled": False}, ref, "z")
    assert not known.not_compared


def test_equal_pixel_scale_is_not_called_the_wrong_size():
    ref = reference(0.02, 423.0)
    same = assess_shift({"pixel_scale_nm": 0.02, "dose_e_per_A2": 423.0, "rescaled": False}, ref, "same")
    msgs = [f.message for f in same.findings]
    assert not any("wrong size" in m for m in msgs), msgs
    assert any("matches" in m for m in msgs if "pixel scale" in m)
    # within the calibration tolerance (not resampled for that reason): still no wrong-size claim
    near = assess_shift({"pixel_scale_nm": 0.0203, "rescaled": False}, ref, "near")
    assert not any("wrong size" in f.message for f in near.findings)
    # really different and not resampled (--no-rescale): the rule fires
    off = assess_shift({"pixel_scale_nm": 0.033, "rescaled": False}, ref, "off", rescale_requested=False)
    assert off.level == "high" and any("wrong size" in m for m in off.reasons)


def test_risk_csv_lists_what_was_not_compared(tmp_path):
    import pandas as pd

    from temshift.predict.outputs import write_risk_reports

    r = assess_shift({"pixel_scale_nm": 0.02, "rescaled": False}, reference(0.02, 423.0), "a")
    _, csv = write_risk_reports(tmp_path, [r])
    row = pd.read_csv(csv).iloc[0]
    assert "dose not compared" in row["not_compared"]
