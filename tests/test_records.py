"""Typed stage records: files written by older code load into them; the architecture registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from temshift.errors import CheckpointError, DatasetError

torch.set_num_threads(1)
LEGACY = Path(__file__).resolve().parent / "data" / "legacy"
LEGACY_CKPT = LEGACY / "checkpoint_v1.pt"
LEGACY_DATASET = LEGACY / "dataset_v1.h5"


# ---------------------------------------------------------------- files of the code before the records


def test_legacy_checkpoint_loads_into_the_record():
    from temshift.models import UNet, load_model

    model, meta = load_model(LEGACY_CKPT)
    assert isinstance(model, UNet) and not model.training
    assert meta.architecture == "unet" and meta.source == "temshift" and meta.kind == "fold"
    assert meta.config == {"in_channels": 1, "num_classes": 2, "filters": (2, 4), "bottleneck": 4}
    assert (meta.fold, meta.seed, meta.n_folds, meta.val_fraction) == (0, 962, 5, 0.125)
    assert meta.best_epoch == 1 and meta.best_val_loss == 1.213723599910736
    assert meta.train_loss_at_best == 0.9639963189760844
    assert meta.split == {"train": 15, "val": 2, "test": 4}
    assert meta.settings["epochs"] == 1 and meta.trained_with["device"] == "cpu"
    assert meta.dataset.name == "legacy_au" and meta.dataset.n_patches == 21
    assert meta.dataset.patch_size_px == (32, 32) and meta.dataset.spec_hash == "69a287b7cd7d3cea"
    spec = meta.dataset_spec
    assert spec.name == "legacy_au" and spec.patch_size_px == 32 and spec.seed == 34522 and spec.n_frames == 2
    assert spec.pixel_scale_nm == 0.1 and spec.dose_e_per_A2 == 423.0
    assert spec.where == {"material": "Au", "pixel_scale_nm": {"tol": 0.005, "value": 0.1}}
    assert spec.preprocess.rescale == "standardize" and spec.preprocess.xray_threshold == 1500.0
    assert spec.preprocess.flatfield_degree == (2, 2)
    ts = meta.training_statistics
    assert ts.version == 2 and ts.tile_px == 32 and ts.n_frames == 2 and ts.n_patches == 8
    assert ts.snr.median == 1.0921706548890735 and ts.contrast.min == 4.140588509151514
    assert ts.fringe_peaks[0].period_px == 8.288444968503004 and ts.fringe_period_px.n == 2


def test_legacy_checkpoint_round_trips_with_the_same_meta(tmp_path):
    from temshift.models import load_model, save_checkpoint
    from temshift.models.checkpoint import VERSION, read_checkpoint_payload

    old = read_checkpoint_payload(LEGACY_CKPT)
    assert old["version"] == 1 and "architecture" not in old
    model, meta = load_model(LEGACY_CKPT)
    save_checkpoint(tmp_path / "again.pt", model, meta)
    new = read_checkpoint_payload(tmp_path / "again.pt")
    assert new["version"] == VERSION and new["architecture"] == "unet" and new["config"] == old["config"]
    assert new["meta"] == old["meta"]  # the JSON keeps its keys and values
    assert all(torch.equal(new["state_dict"][k], v) for k, v in old["state_dict"].items())


def test_legacy_checkpoint_predictor_and_reference():
    from temshift.predict.pipeline import load_predictor

    p = load_predictor(LEGACY_CKPT)
    assert (p.pixel_scale_nm, p.dose_e_per_A2, p.patch_size) == (0.1, 423.0, 32)
    assert p.preprocess.rescale == "standardize" and p.preprocess.xray_threshold == 1500.0
    ref = p.training_reference()  # carried in the checkpoint: the dataset path in it is long gone
    assert (ref.pixel_scale_nm, ref.dose_e_per_A2) == (0.1, 423.0) and ref.statistics.snr.n == 2


def test_legacy_dataset_loads_into_the_record():
    from temshift.datasets import load_dataset
    from temshift.datasets.store import content_hash

    ds = load_dataset(LEGACY_DATASET)
    rec = ds.record
    assert len(ds) == 21 and ds.images.shape == (21, 32, 32) and ds.name == "legacy_au"
    assert (rec.format, rec.format_version, rec.name) == ("temshift-dataset", 1, "legacy_au")
    assert rec.patch_size_px == 32 and rec.seed == 34522 and rec.n_frames == 2 and rec.temshift_version == "0.1.0"
    assert rec.pixel_scale_nm == 0.1 and rec.dose_e_per_A2 == 423.0 and rec.spec_hash == "69a287b7cd7d3cea"
    assert rec.preprocess.rescale == "standardize" and rec.preprocess == rec.spec.preprocess
    assert rec.spec.where["pixel_scale_nm"] == {"tol": 0.005, "value": 0.1} and rec.spec.spec_hash == rec.spec_hash
    assert rec.content_hash == content_hash(ds.images, ds.labels)
    assert (ds.pixel_scale_nm, ds.dose_e_per_A2) == (0.1, 423.0)
    assert rec.spec.to_stored() == json.loads(ds.attrs["spec"])  # written back under the same keys


def test_training_statistics_of_the_legacy_dataset_match_its_checkpoint():
    from temshift.datasets.statistics import training_statistics
    from temshift.models import load_model

    ts = training_statistics(LEGACY_DATASET)
    carried = load_model(LEGACY_CKPT)[1].training_statistics
    # recomputed here, written on another CPU: floats agree to rounding (numpy's SIMD paths differ by CPU)
    got, want = _flat(ts.model_copy(update={"dataset": carried.dataset}).model_dump()), _flat(carried.model_dump())
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert got[key] == value, key


def _flat(value, prefix=""):
    """Nested dicts/lists as one {path: leaf} dict (numbers stay numbers, so `pytest.approx` compares them)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}.{key}").items()}
    if isinstance(value, list | tuple):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


# ---------------------------------------------------------------- bad metadata: values or one-line errors


def _legacy_with_spec(tmp_path, **changes):
    """The legacy checkpoint with its dataset spec changed (None deletes a key), saved raw."""
    from temshift.models.checkpoint import read_checkpoint_payload

    payload = read_checkpoint_payload(LEGACY_CKPT)
    spec = payload["meta"]["dataset_spec"]
    for key, value in changes.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    path = tmp_path / "model.pt"
    torch.save(payload, path)
    return path


def test_spec_without_top_level_pixel_scale_gives_none_not_a_type_error(tmp_path):
    # the spec's catalog condition holds {"tol": .., "value": ..} under the same key; a nested key
    # search returned that dict and float() of it raised a TypeError in load_predictor
    from temshift.predict.pipeline import load_predictor

    p = load_predictor(_legacy_with_spec(tmp_path, pixel_scale_nm=None))
    assert p.pixel_scale_nm is None and p.dose_e_per_A2 == 423.0


def test_spec_with_a_non_number_pixel_scale_is_a_one_line_checkpoint_error(tmp_path):
    from temshift.predict.pipeline import load_predictor

    path = _legacy_with_spec(tmp_path, pixel_scale_nm="0.1 nm")
    with pytest.raises(CheckpointError, match=r"model\.pt: .*dataset_spec\.pixel_scale_nm"):
        load_predictor(path)
    with pytest.raises(CheckpointError, match=r"dataset_spec\.preprocess\.rescale"):
        load_predictor(_legacy_with_spec(tmp_path, preprocess={"rescale": "sideways"}))


def test_dataset_attribute_of_the_wrong_type_is_named(tmp_path):
    import shutil

    import h5py

    from temshift.datasets import load_dataset

    path = tmp_path / "bad.h5"
    shutil.copy(LEGACY_DATASET, path)
    with h5py.File(path, "a") as f:
        spec = json.loads(f.attrs["spec"])
        f.attrs["spec"] = json.dumps({**spec, "dose_e_per_A2": {"value": 423, "tol": 10}})
    with pytest.raises(DatasetError, match=r"bad\.h5: .*spec.*dose_e_per_A2"):
        load_dataset(path)


def test_newer_checkpoint_format_is_refused(tmp_path):
    from temshift.models import load_model
    from temshift.models.checkpoint import read_checkpoint_payload

    payload = read_checkpoint_payload(LEGACY_CKPT)
    payload["version"] = 99
    torch.save(payload, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="newer"):
        load_model(tmp_path / "new.pt")


# ---------------------------------------------------------------- a toy architecture through the stages


class TwoConv(nn.Module):
    """conv-BN-ReLU-conv: the smallest segmentation net that has a BatchNorm to fold."""

    def __init__(self, width: int = 4):
        super().__init__()
        self.width = width
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.head = nn.Conv2d(width, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))))


FOLDED: list[str] = []


def _fold_two_conv(model: nn.Module) -> None:
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.conv = fuse_conv_bn_eval(model.conv, model.bn)
    model.bn = nn.Identity()
    FOLDED.append(type(model).__name__)


@pytest.fixture()
def two_conv():
    from temshift.models.architectures import ARCHITECTURES, Architecture, register_architecture

    arch = register_architecture(
        Architecture("two-conv", TwoConv, lambda cfg: TwoConv(**cfg), lambda m: {"width": m.width}, _fold_two_conv)
    )
    yield arch
    del ARCHITECTURES["two-conv"]


def test_unknown_architecture_is_a_checkpoint_error(tmp_path, two_conv):
    from temshift.models import load_model, save_checkpoint
    from temshift.models.architectures import ARCHITECTURES, architecture_of

    assert architecture_of(TwoConv()) is two_conv and architecture_of(load_model(LEGACY_CKPT)[0]).name == "unet"
    save_checkpoint(tmp_path / "toy.pt", TwoConv())
    del ARCHITECTURES["two-conv"]
    try:
        with pytest.raises(CheckpointError, match=r"toy\.pt: unknown model architecture 'two-conv'"):
            load_model(tmp_path / "toy.pt")
        with pytest.raises(CheckpointError, match="not a registered model architecture"):
            save_checkpoint(tmp_path / "other.pt", TwoConv())
    finally:
        ARCHITECTURES["two-conv"] = two_conv


def test_toy_architecture_trains_and_predicts_without_stage_changes(tmp_path, two_conv, cli):

    from temshift.datasets import load_dataset
    from temshift.datasets.records import StoredSpec
    from temshift.io import write_tiff_frame
    from temshift.models import load_model, save_checkpoint
    from temshift.models.inference import inference_model
    from temshift.models.records import CheckpointMeta
    from temshift.predict.pipeline import load_predictor, predict_frame
    from temshift.simulate.toy import toy_support_frame
    from temshift.training import TrainSettings
    from temshift.training.data import PatchSet, expand
    from temshift.training.trainer import fit

    ds = load_dataset(LEGACY_DATASET)  # a tiny dataset file: 21 patches of 32 px at 0.1 nm/px
    images, labels = ds.images, ds.labels
    settings = TrainSettings(epochs=1, batch_size=8, progress=False, threads=1, device="cpu")
    torch.manual_seed(0)
    net = TwoConv()
    result = fit(
        net,
        PatchSet(images[:16], labels[:16], expand(np.arange(16), 1, False)),
        PatchSet(images[16:], labels[16:], expand(np.arange(5), 2, False)),
        settings,
        7,
        torch.device("cpu"),
    )
    assert len(result.history) == 1
    net.load_state_dict(result.best_state)
    path = save_checkpoint(
        tmp_path / "toy" / "model.pt", net, CheckpointMeta(kind="toy", dataset_spec=StoredSpec.from_stored(ds.spec))
    )

    model, meta = load_model(path)
    assert isinstance(model, TwoConv) and meta.architecture == "two-conv" and meta.config == {"width": 4}
    x = torch.from_numpy(images[:2, None])
    with torch.no_grad():
        fast = inference_model(model, channels_last=False)
        assert FOLDED and isinstance(fast.bn, nn.Identity)  # folded through the registry
        torch.testing.assert_close(fast(x), model(x), atol=1e-4, rtol=1e-4)

    predictor = load_predictor(path)
    assert (predictor.pixel_scale_nm, predictor.patch_size) == (0.1, 32)
    raw, _ = toy_support_frame(160, pixel_scale_nm=0.1, radius_nm=1.2, seed=1)
    pred = predict_frame(predictor, raw, 0.1, tile=64)
    assert pred.zoom == 1.0 and pred.mask.shape == raw.shape and np.isfinite(pred.probabilities).all()
    frame = write_tiff_frame(tmp_path / "frame.tif", raw, 0.1)
    code, _out, err = cli("predict", path, frame, "--out", tmp_path / "out")
    assert code == 0, err
    from temshift.io import read_frame

    written = read_frame(tmp_path / "out" / "frame_mask.tif").data
    np.testing.assert_array_equal(written != 0, pred.mask != 0)  # the CLI gives what predict_frame gives


def test_records_keep_nan_and_unknown_keys_in_their_json():
    from temshift.models.records import CheckpointMeta
    from temshift.studies.records import TrainResult

    stored = {
        "best_val_loss": float("inf"),
        "pretrain": {"held_out": {"hard_dice": float("nan")}},
        "written_by_a_newer_version": [1, 2],
    }
    back = CheckpointMeta.model_validate(stored).to_stored()
    assert back["best_val_loss"] == float("inf") and np.isnan(back["pretrain"]["held_out"]["hard_dice"])
    assert back["written_by_a_newer_version"] == [1, 2]
    assert np.isnan(TrainResult(run_dir="r", train_hard_dice=float("nan")).to_stored()["train_hard_dice"])
