"""Uncertainty of predictions: TTA / ensemble spread, per-particle confidence, bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from temshift.io import read_frame, write_tiff_frame
from temshift.models import UNet, save_checkpoint
from temshift.models.records import CheckpointMeta
from temshift.predict import particles as parts
from temshift.predict.pipeline import predict_frame, predict_probabilities
from temshift.predict.uncertainty import MemberMasks, member_probabilities, member_spread
from temshift.preprocess import PreprocessSettings
from temshift.simulate.toy import toy_support_frame

PRE = PreprocessSettings(xray_threshold=None)


class SymmetricConv(nn.Module):
    """Logits from 3x3 kernels that are invariant under the 8 dihedral maps: an equivariant model."""

    def __init__(self, symmetric: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 2, 3, padding=1)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                w = torch.randn_like(conv.weight)
                if symmetric:  # average over the dihedral group of the kernel
                    w = sum(torch.rot90(v, k, dims=(-2, -1)) for v in (w, w.transpose(-1, -2)) for k in range(4)) / 8
                conv.weight.copy_(w)

    def forward(self, x):
        return self.conv2(torch.tanh(self.conv1(x)))


def test_tta_of_an_equivariant_model_has_zero_spread():
    img = np.random.default_rng(0).normal(size=(96, 128)).astype(np.float32)  # not square: transposes too
    model = SymmetricConv()
    spread = member_spread(member_probabilities(model, img, tta=True, tile=128, overlap=64, margin=16, bf16=False))
    assert len(spread.members) == 8 and spread.std.shape == img.shape
    assert spread.std.max() < 1e-5
    single = predict_probabilities(model, img, tile=128, overlap=64, margin=16, bf16=False)
    np.testing.assert_allclose(spread.mean, single, atol=1e-5)
    # the same check fails for a model without the symmetry
    broken = member_spread(
        member_probabilities(SymmetricConv(symmetric=False), img, tta=True, tile=128, overlap=64, margin=16, bf16=False)
    )
    assert broken.std.max() > 1e-2


def test_ensemble_spread_is_the_members_disagreement():
    img = np.random.default_rng(1).normal(size=(96, 96)).astype(np.float32)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(UNet(filters=(4, 8), bottleneck=16).eval())
    p = [member_spread(member_probabilities(m, img, tile=128, overlap=64, margin=16, bf16=False)).mean for m in models]
    spread = member_spread(member_probabilities(models, img, tile=128, overlap=64, margin=16, bf16=False))
    np.testing.assert_allclose(spread.std, np.abs(p[0] - p[1]) / 2, atol=1e-6)  # population SD of two values
    np.testing.assert_allclose(spread.mean, (p[0] + p[1]) / 2, atol=1e-6)
    disagree = (p[0] >= 0.5) != (p[1] >= 0.5)
    assert disagree.any() and (spread.std[disagree] > 0).all()
    agree = spread.members.mask(0) == spread.members.mask(1)
    np.testing.assert_array_equal(agree, ~disagree)


def test_member_spread_matches_numpy_and_holds_a_few_maps_not_all_members():
    """A 5-model ensemble on a 4096^2 frame went over 2 GB: float64 sums and whole-map temporaries
    took about 12 maps' worth of memory (measured with tracemalloc), now under 8."""
    import importlib
    import tracemalloc

    for module in ("temshift.models.inference", "temshift.preprocess.scale"):  # imported by member_spread
        importlib.import_module(module)  # before tracing: not part of its memory

    shape = (600, 800)
    rng = np.random.default_rng(3)
    maps = [rng.random(shape, dtype=np.float32) for _ in range(6)]
    spread = member_spread(iter(maps))
    np.testing.assert_allclose(spread.std, np.stack(maps).astype(np.float64).std(axis=0), atol=2e-7)
    total = maps[0].copy()
    for p in maps[1:]:
        total += p
    np.testing.assert_array_equal(spread.mean, total / np.float32(6))  # the float32 sum of predict_probabilities

    def fresh():  # members arrive one at a time, as from member_probabilities
        for k in range(6):
            yield np.random.default_rng(k).random(shape, dtype=np.float32)

    tracemalloc.start()
    try:
        member_spread(fresh())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * maps[0].nbytes


def test_release_freed_memory_returns_kept_memory_to_the_os():
    from temshift.models.runtime import keep_freed_memory, release_freed_memory

    if not keep_freed_memory():
        pytest.skip("not glibc: nothing is kept")

    def rss_mb() -> float:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

    blocks = [np.ones(25 << 20, dtype=np.uint8) for _ in range(8)]  # 200 MB, from the heap, touched
    del blocks
    kept = rss_mb()
    assert release_freed_memory()
    assert rss_mb() < kept - 100


def test_predict_frame_default_is_unchanged_and_tta_adds_the_spread():
    torch.manual_seed(2)
    model = UNet(filters=(4, 8), bottleneck=16).eval()
    raw, _ = toy_support_frame(200, pixel_scale_nm=0.033, radius_nm=1.5, seed=1)
    plain = predict_frame(model, raw, 0.033, preprocess=PRE, model_pixel_scale_nm=0.02, tile=256)
    assert plain.std is None and plain.members is None
    image = plain.model_input
    ref = predict_probabilities(model, image, tile=256)
    from temshift.preprocess.scale import resample_to_shape

    np.testing.assert_array_equal(plain.probabilities, np.clip(resample_to_shape(ref, raw.shape), 0, 1))
    tta = predict_frame(model, raw, 0.033, preprocess=PRE, model_pixel_scale_nm=0.02, tile=256, tta=True)
    assert tta.std.shape == raw.shape and tta.std.dtype == np.float32
    assert len(tta.members) == 8 and tta.members.shape == raw.shape
    assert tta.std.min() >= 0 and tta.std.max() <= 0.5 and tta.std.max() > 0


def two_discs(n=64):
    yy, xx = np.mgrid[:n, :n]
    a = (yy - 16) ** 2 + (xx - 16) ** 2 <= 36
    b = (yy - 44) ** 2 + (xx - 44) ** 2 <= 49
    return a, b


def test_particle_confidence_columns():
    a, b = two_discs()
    mask = a | b
    prob = np.where(a, 0.9, np.where(b, 0.6, 0.1)).astype(np.float32)
    std = np.where(b, 0.2, 0.0).astype(np.float32)
    members = MemberMasks.from_masks([mask, a, mask, a])  # disc b only found by half of the members
    table = parts.particle_table(mask, 0.02, probabilities=prob, std=std, members=members)
    assert list(table.columns) == [*parts.COLUMNS, *parts.CONFIDENCE_COLUMNS]
    ta, tb = table.sort_values("centroid_row_px").itertuples()
    assert ta.mean_probability == pytest.approx(0.9) and tb.mean_probability == pytest.approx(0.6)
    assert ta.mean_std == pytest.approx(0.0) and tb.mean_std == pytest.approx(0.2)
    assert ta.agreement == 1.0 and tb.agreement == 0.5
    assert table["confidence"].between(0, 1).all() and ta.confidence > tb.confidence
    # without the prediction's spread the table is the plain one
    assert list(parts.particle_table(mask, 0.02).columns) == parts.COLUMNS
    empty = parts.particle_table(np.zeros((8, 8)), 0.02, probabilities=np.zeros((8, 8)))
    assert len(empty) == 0 and "confidence" in empty.columns


def test_best_iou():
    a, b = two_discs()
    labels = parts.label_particles(a | b)
    shifted = parts.label_particles(np.roll(a, 3, axis=1))
    iou = parts.best_iou(labels, shifted)
    inter, union = (a & np.roll(a, 3, axis=1)).sum(), (a | np.roll(a, 3, axis=1)).sum()
    assert iou[0] == pytest.approx(inter / union) and iou[1] == 0.0


def sizes_table(n, frames=("f1", "f2", "f3", "f4"), seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(5.0, 1.0, n)
    return pd.DataFrame(
        {
            "frame": rng.choice(list(frames), n),
            "equivalent_diameter_nm": d,
            "area_px": np.pi * (d / 0.04) ** 2,
            "touches_border": rng.random(n) < 0.05,
        }
    )


def test_bootstrap_intervals_contain_the_estimate_and_narrow_with_more_particles():
    small, large = parts.particle_summary(sizes_table(40)), parts.particle_summary(sizes_table(4000))
    for s in (small, large):
        for col in ("particles", "mean_diameter", "median_diameter"):
            assert (s[f"{col}_ci_low"] <= s[col]).all() and (s[col] <= s[f"{col}_ci_high"]).all(), col
    assert sorted(small["frame"][:-1]) == ["f1", "f2", "f3", "f4"] and small["frame"].iloc[-1] == "all"
    a_small, a_large = small.iloc[-1], large.iloc[-1]
    width = lambda r, c: r[f"{c}_ci_high"] - r[f"{c}_ci_low"]  # noqa: E731
    assert width(a_large, "mean_diameter") < 0.3 * width(a_small, "mean_diameter")
    assert width(a_large, "particles") / a_large.particles < 0.3 * width(a_small, "particles") / a_small.particles
    # reproducible with the fixed seed
    pd.testing.assert_frame_equal(small, parts.particle_summary(sizes_table(40)))
    hist = parts.size_histogram_table(sizes_table(400))
    assert (hist["ci_low"] <= hist["particles"]).all() and (hist["particles"] <= hist["ci_high"]).all()
    assert hist["particles"].sum() == (~sizes_table(400)["touches_border"]).sum()


def test_bootstrap_count_of_one_frame_is_counting_noise():
    t = sizes_table(400, frames=("only",))
    row = parts.particle_summary(t).iloc[0]
    assert row.frame == "only"
    # Poisson: 95 % of counts within 400 +- 1.96 * 20
    assert row.particles_ci_low == pytest.approx(400 - 39, abs=8)
    assert row.particles_ci_high == pytest.approx(400 + 39, abs=8)


def test_bootstrap_counts_frames_without_particles():
    t = sizes_table(100, frames=("f1",))
    s = parts.particle_summary(t, frames=["f1", "f2"])
    assert list(s["particles"]) == [100, 0, 100]
    assert s.iloc[-1]["particles_ci_low"] == 0  # both frames drawn as the empty one: 1 in 4 replicates
    one = parts.particle_summary(sizes_table(1, frames=("f1",)).assign(touches_border=False)).iloc[0]
    assert one.particles == 1 and one.mean_diameter > 0 and np.isnan(one.mean_diameter_ci_low)


def test_cli_predict_tta_writes_std_tiff_confidence_and_intervals(tmp_path):
    from temshift.cli import _register, app

    _register()
    torch.manual_seed(0)
    spec = {
        "name": "synth",
        "preprocess": {"xray_threshold": None},
        "patch_size": 128,
        "pixel_scale_nm": 0.02,
        "dose_e_per_A2": 423.0,
    }
    net = UNet(filters=(4, 8), bottleneck=16).eval()
    frames = []
    for k in range(2):
        raw, _ = toy_support_frame(160, radius_nm=0.8, seed=k)
        frames.append(write_tiff_frame(tmp_path / f"frame{k}.tif", raw, 0.02))
    # shift the untrained net's particle logit so that 30 % of the first frame's pixels are particle
    p0 = predict_frame(
        net, toy_support_frame(160, radius_nm=0.8, seed=0)[0], 0.02, preprocess=PRE, tile=256
    ).probabilities
    with torch.no_grad():
        net.final_conv.bias[1] -= float(np.quantile(np.log(p0 / (1 - p0)), 0.7))
    model = save_checkpoint(tmp_path / "m" / "model.pt", net, CheckpointMeta.model_validate({"dataset_spec": spec}))
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["predict", str(model), *map(str, frames), "--out", str(out), "--tta", "--tile", "272"]
    )
    assert res.exit_code == 0, res.output
    std = read_frame(out / "frame0_std.tif")
    assert std.pixel_scale_nm == pytest.approx(0.02) and std.data.shape == (160, 160)
    assert std.data.max() > 0
    table = pd.read_csv(out / "particles.csv")
    assert {"confidence", "agreement", "mean_probability", "mean_std"} <= set(table.columns)
    assert len(table) > 0 and table["confidence"].between(0, 1).all()
    assert table["agreement"].between(0, 1).all() and (table["mean_probability"] >= 0.5).all()
    summary = pd.read_csv(out / "particle_summary.csv")
    assert list(summary["frame"]) == ["frame0.tif", "frame1.tif", "all"]
    assert {"particles_ci_low", "particles_ci_high"} <= set(summary.columns)
    assert (out / "size_histogram.csv").exists() and (out / "size_histogram.png").exists()
    # without --tta (one model) no std map and the plain particle table
    out2 = tmp_path / "out2"
    res = CliRunner().invoke(app, ["predict", str(model), str(frames[0]), "--out", str(out2), "--tile", "272"])
    assert res.exit_code == 0, res.output
    assert not (out2 / "frame0_std.tif").exists()
    assert list(pd.read_csv(out2 / "particles.csv").columns) == ["frame", *parts.COLUMNS]
