"""Whole-frame prediction with tiny U-Nets: preprocessing from the meta, pixel-scale matching,
ensembles, and the `predict` / `check` commands end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from temshift.errors import CheckpointError
from temshift.io import write_tiff_frame
from temshift.models import UNet, save_checkpoint
from temshift.models.checkpoint import model_files
from temshift.models.records import CheckpointMeta
from temshift.predict.pipeline import load_predictor, predict_frame, predict_probabilities
from temshift.simulate.toy import toy_patches, toy_support_frame

SPEC = {
    "name": "synth",
    "preprocess": {"xray_threshold": None, "rescale": "standardize"},
    "patch_size": 256,
    "pixel_scale_nm": 0.02,
    "dose_e_per_A2": 423.0,
}


def tiny_checkpoint(path, seed=0, spec=SPEC, dataset_path=None):
    torch.manual_seed(seed)
    model = UNet()  # the paper's 4-8-16-32 net (faster on CPU than narrower ones)
    meta = {"dataset_spec": spec}
    if dataset_path:
        meta["dataset"] = {"path": str(dataset_path)}
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(path, model, CheckpointMeta.model_validate(meta))


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return [tiny_checkpoint(root / f"fold{k}" / "model.pt", seed=k) for k in range(2)]


def test_load_predictor_reads_meta(ckpts):
    p = load_predictor(ckpts[0])
    assert p.pixel_scale_nm == 0.02 and p.dose_e_per_A2 == 423.0
    assert p.preprocess.xray_threshold is None and p.preprocess.rescale == "standardize"
    assert p.patch_size == 256 and len(p.models) == 1
    assert model_files(ckpts[0].parent.parent) == sorted(ckpts)  # a folder of runs = an ensemble
    assert model_files(ckpts[0].parent) == [ckpts[0]]


def test_predict_frame_rescales_and_returns_frame_grid(ckpts):
    raw, _ = toy_support_frame(200, pixel_scale_nm=0.033, radius_nm=1.5, seed=1)
    p = load_predictor(ckpts[0])
    pred = predict_frame(p, raw, 0.033, tile=384)
    assert pred.zoom == pytest.approx(1.65)
    assert pred.model_input.shape == (330, 330)
    assert pred.probabilities.shape == raw.shape and pred.mask.shape == raw.shape
    assert pred.mask.dtype == np.uint8 and set(np.unique(pred.mask)) <= {0, 1}
    assert pred.probabilities.min() >= 0.0 and pred.probabilities.max() <= 1.0
    assert pred.input_pixel_scale_nm == pytest.approx(0.02)
    off = predict_frame(p, raw, 0.033, rescale=False, tile=384)
    assert off.zoom == 1.0 and off.model_input.shape == raw.shape


def test_ensemble_averages_probabilities(ckpts):
    raw, _ = toy_support_frame(128, radius_nm=0.8, seed=2)
    singles = [predict_frame(load_predictor(c), raw, 0.02).probabilities for c in ckpts]
    both = predict_frame(load_predictor(ckpts), raw, 0.02).probabilities
    np.testing.assert_allclose(both, (singles[0] + singles[1]) / 2, atol=1e-5)


def test_tiled_prediction_matches_single_pass_in_the_interior():
    torch.manual_seed(3)
    model = UNet(filters=(4, 8), bottleneck=16).eval()  # shallow: receptive field ~ the margin
    img = np.random.default_rng(0).normal(size=(320, 320)).astype(np.float32)
    tiled = predict_probabilities(model, img, tile=224, overlap=96, margin=32, bf16=False)
    padded = np.pad(img, 64, mode="reflect")
    with torch.inference_mode():
        whole = torch.softmax(model(torch.from_numpy(padded)[None, None]), 1)[0, 1].numpy()[64:-64, 64:-64]
    diff = np.abs(tiled - whole)
    assert diff.mean() < 1e-3


def test_ensemble_members_must_agree(tmp_path, ckpts):
    other = tiny_checkpoint(tmp_path / "other.pt", spec={**SPEC, "pixel_scale_nm": 0.042})
    with pytest.raises(CheckpointError, match="nm/px"):
        load_predictor([ckpts[0], other])
    with pytest.raises(CheckpointError, match="no such"):
        load_predictor(tmp_path / "missing.pt")


def _cli():
    from temshift.cli import _register, app

    _register()
    return app


def test_cli_predict_writes_outputs_and_strict_refuses(tmp_path, ckpts):
    app = _cli()
    good, _ = toy_support_frame(192, radius_nm=1.0, seed=4)
    low, _ = toy_support_frame(192, radius_nm=1.0, dose_e_per_A2=80, seed=5)
    write_tiff_frame(tmp_path / "good.tif", good, 0.02)
    np.save(tmp_path / "low.npy", low)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "predict",
            str(ckpts[0]),
            str(tmp_path / "good.tif"),
            "--out",
            str(out),
            "--dose",
            "423",
            "--save-probabilities",
            "--watershed",
        ],
    )
    assert res.exit_code == 0, res.output
    for name in (
        "good_mask.png",
        "good_mask.tif",
        "good_overlay.png",
        "good_probability.tif",
        "good_particles.csv",
        "particles.csv",
        "size_histogram.png",
        "risk.json",
        "risk.csv",
    ):
        assert (out / name).is_file(), name
    res = CliRunner().invoke(
        app,
        [
            "predict",
            str(ckpts[0]),
            str(tmp_path / "low.npy"),
            "--out",
            str(out),
            "--pixel-scale",
            "0.02",
            "--dose",
            "80",
            "--strict",
        ],
    )
    assert res.exit_code == 2, res.output
    assert not (out / "low_mask.png").exists()
    risk = json.loads((out / "risk.json").read_text())
    assert risk[0]["level"] == "high" and "under-segmentation" in risk[0]["reasons"][0]


def test_cli_check_reports_without_predicting(write_training_dataset, tmp_path):
    app = _cli()
    frames = [toy_support_frame(512, seed=s) for s in range(4)]
    ds = write_training_dataset(tmp_path / "train.h5", [f for f, _ in frames], [lab for _, lab in frames])
    ckpt = tiny_checkpoint(tmp_path / "m.pt", dataset_path=ds)
    ok, _ = toy_support_frame(512, seed=9)
    low, _ = toy_support_frame(512, dose_e_per_A2=60, seed=8)
    write_tiff_frame(tmp_path / "ok.tif", ok, 0.02)
    write_tiff_frame(tmp_path / "low.tif", low, 0.02)
    res = CliRunner().invoke(
        app,
        [
            "check",
            str(ckpt),
            str(tmp_path / "ok.tif"),
            str(tmp_path / "low.tif"),
            "--json",
            str(tmp_path / "risk.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    risk = {r["frame"]: r for r in json.loads((tmp_path / "risk.json").read_text())}
    assert not risk["ok.tif"]["flagged"], risk["ok.tif"]["reasons"]
    assert risk["low.tif"]["flagged"]
    assert not list(tmp_path.glob("*_mask*"))


@pytest.fixture(scope="module")
def trained_strip():
    """A U-Net trained briefly on synthetic patches and a 64 x 512 strip of unseen particles."""

    from temshift import Segmenter

    images, labels = toy_patches(32, 64, seed=1)
    seg = Segmenter(epochs=7, learning_rate=1e-2, batch_size=16, progress=False, threads=1).fit(images, labels)
    test_images, _ = toy_patches(8, 64, seed=2)
    return seg.model, np.concatenate(list(test_images), axis=1)


def test_bf16_inference_gives_the_same_masks_as_float32(trained_strip):
    """The fast default (bf16 autocast) must not change what a trained model segments."""
    model, frame = trained_strip
    p32 = predict_probabilities(model, frame, tile=256, overlap=96, margin=16, bf16=False)
    p16 = predict_probabilities(model, frame, tile=256, overlap=96, margin=16, bf16=True)
    assert np.abs(p16 - p32).max() < 0.1
    assert ((p16 > 0.5) != (p32 > 0.5)).mean() < 0.005


def _plain_copy(fast):
    """`fast` with the speed-ups of `inference_model` undone (BatchNorm stays folded)."""
    import copy

    from temshift.models.inference import ChannelsLastOutput, ConvReLU, StridedMaxPool2d

    plain = copy.deepcopy(fast)
    for mod in list(plain.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, ConvReLU):
                setattr(mod, name, torch.nn.Sequential(child.conv, torch.nn.ReLU()))
            elif isinstance(child, ChannelsLastOutput):
                setattr(mod, name, child.module)
            elif isinstance(child, StridedMaxPool2d):
                setattr(mod, name, torch.nn.MaxPool2d(2, 2))
            elif isinstance(child, torch.nn.ReLU):
                child.inplace = False
    return plain


def test_fast_inference_copy_is_bit_identical_to_the_folded_model(trained_strip):
    """Fused conv + ReLU, in-place ReLU and strided max pooling change speed only, not one bit."""
    from temshift.models.inference import ChannelsLastOutput, ConvReLU, StridedMaxPool2d, batch_fn, inference_model

    model, frame = trained_strip
    fast = inference_model(model)
    assert any(isinstance(m, ConvReLU) for m in fast.modules())
    assert any(isinstance(m, StridedMaxPool2d) for m in fast.modules())
    assert isinstance(fast.downs[0].conv_add, ChannelsLastOutput)
    plain = _plain_copy(fast)
    tiles = np.stack([frame[:, :256], frame[:, 256:]])
    noise = np.random.default_rng(0).standard_normal((1, 96, 160)).astype(np.float32)
    for bf16 in (True, False):
        for batch in (tiles, noise):
            a = batch_fn(fast, channels_last=True, bf16=bf16)(batch)
            b = batch_fn(plain, channels_last=True, bf16=bf16)(batch)
            assert np.array_equal(a, b), bf16
    x = torch.from_numpy(noise[:, None])
    assert torch.equal(StridedMaxPool2d()(x[..., :95, :159]), torch.nn.MaxPool2d(2, 2)(x[..., :95, :159]))


def test_mask_is_probability_above_one_half():
    """One threshold everywhere: a pixel at exactly 0.5 is background (argmax; training and evaluation alike)."""
    from temshift.models.inference import particle_mask

    model = UNet()
    with torch.no_grad():
        model.final_conv.weight.zero_()
        model.final_conv.bias.zero_()  # equal logits: probability exactly 0.5 everywhere
    frame = np.random.default_rng(0).poisson(20.0, (128, 128)).astype(np.float32)
    for tta in (False, True):
        pred = predict_frame(model, frame, rescale=False, tile=128, overlap=64, margin=16, tta=tta)
        assert np.all(pred.probabilities == 0.5)
        assert pred.mask.sum() == 0 and pred.input_mask.sum() == 0
    assert particle_mask(np.array([0.5, 0.50001, 0.2])).tolist() == [0, 1, 0]


def test_cli_check_flags_a_batch_of_low_snr_frames_once_below_the_table(write_training_dataset, tmp_path):
    """Frames that each look like a training frame can still, as a batch, be noisier than training."""
    app = _cli()
    frames = [toy_support_frame(512, seed=s) for s in range(4)]
    ds = write_training_dataset(tmp_path / "train.h5", [f for f, _ in frames], [lab for _, lab in frames])
    ckpt = tiny_checkpoint(tmp_path / "m.pt", dataset_path=ds)
    paths = []
    for s in range(3):
        low, _ = toy_support_frame(512, dose_e_per_A2=60, seed=20 + s)
        paths.append(tmp_path / f"low{s}.tif")
        write_tiff_frame(paths[-1], low, 0.02)
    res = CliRunner().invoke(app, ["check", str(ckpt), *map(str, paths), "--json", str(tmp_path / "risk.json")])
    assert res.exit_code == 0, res.output
    assert "batch of 3 frames" in res.output and "median image SNR of the batch" in res.output
    risk = json.loads((tmp_path / "risk.json").read_text())
    assert all(any(f["kind"] == "batch" and f["level"] == "medium" for f in r["findings"]) for r in risk)


def test_predict_probabilities_without_models_is_a_clear_error():
    with pytest.raises(ValueError, match="no models"):
        predict_probabilities([], np.zeros((64, 64), np.float32))
