"""`temshift finetune`: freezing, pairing, the checkpoint in `temshift predict`, resuming, refusals.

Tiny synthetic frames (dark discs on a noisy 8-bit background) written as PNGs and a tiny U-Net.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

SIZE = 64


def _cli():
    from temshift.cli import _register, app

    _register()
    return app


def _write_frames(folder, n=3, seed=0, rgba=True, label_name="label_{k}.png", image_name="image_{k}.png"):
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        lab = np.zeros((SIZE, SIZE), np.uint8)
        for _ in range(3):
            cy, cx = rng.uniform(10, SIZE - 10, 2)
            lab[(yy - cy) ** 2 + (xx - cx) ** 2 < 49] = 1
        img = np.clip(150 - 60 * lab + rng.normal(0, 12, lab.shape), 0, 255).astype(np.uint8)
        if rgba:  # like the real set: RGBA with R = G = B
            Image.fromarray(np.dstack([img, img, img, np.full_like(img, 255)]), mode="RGBA").save(
                folder / "images" / image_name.format(k=k)
            )
        else:
            Image.fromarray(img, mode="L").save(folder / "images" / image_name.format(k=k))
        Image.fromarray(lab * 255, mode="L").save(folder / "labels" / label_name.format(k=k))
    return folder / "images", folder / "labels"


@pytest.fixture()
def base_model(tmp_path):
    from temshift.models import UNet
    from temshift.models.checkpoint import save_checkpoint
    from temshift.models.records import CheckpointMeta

    model = UNet(filters=(2, 4), bottleneck=4, generator=torch.Generator().manual_seed(0))
    meta = {
        "kind": "fold",
        "dataset_spec": {
            "name": "tiny",
            "patch_size": SIZE,
            "preprocess": {"flatfield": False, "xray_threshold": None},
        },
    }
    return save_checkpoint(tmp_path / "base.pt", model, CheckpointMeta.model_validate(meta))


def _settings(**kw):
    from temshift.training.finetune import finetune_settings

    return finetune_settings(
        **{
            "epochs": 2,
            "batch_size": 4,
            "patch_crop": 32,
            "threads": 1,
            "progress": False,
            "device": "cpu",
            "learning_rate": 1e-2,
            **kw,
        }
    )


def _pairs(tmp_path, name="data", **kw):
    from temshift.training.labelled_frames import pair_frames

    return pair_frames(*_write_frames(tmp_path / name, **kw))


def _state(path):
    from temshift.models.checkpoint import load_checkpoint

    return load_checkpoint(path)[0].state_dict()


@pytest.mark.parametrize("mode", ["decoder", "encoder", "none"])
def test_frozen_parts_do_not_change_and_the_rest_does(tmp_path, base_model, mode):
    from temshift.training.finetune import finetune
    from temshift.training.freeze import frozen_prefixes

    result = finetune(base_model, _pairs(tmp_path), tmp_path / "run", freeze=mode, settings=_settings())
    before, after = _state(base_model), _state(result.model_path)
    frozen = frozen_prefixes(mode)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    for key in before:
        if key.startswith(frozen) and frozen:
            # weights and BatchNorm running statistics alike: frozen BNs stay in eval mode
            assert key not in changed, f"{key} changed although {mode} is frozen"
    trainable = [k for k in before if not (frozen and k.startswith(frozen)) and k.endswith("weight")]
    assert trainable and all(k in changed for k in trainable), sorted(set(trainable) - changed)
    if mode != "none":
        assert any(k.endswith("running_mean") and k.startswith(frozen) for k in before)
    meta = json.loads((tmp_path / "run" / "result.json").read_text())
    assert meta["freeze"] == mode


def test_freeze_keeps_batchnorm_of_frozen_parts_in_eval_mode():
    from temshift.models import UNet
    from temshift.training.freeze import EvalBatchNorm2d, freeze

    model = UNet(filters=(2, 4), bottleneck=4)
    info = freeze(model, "decoder")
    model.train()
    assert all(
        isinstance(m, EvalBatchNorm2d) and not m.training
        for m in model.ups.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    )
    assert all(m.training for m in model.downs.modules())
    assert not any(p.requires_grad for p in model.ups.parameters()) and not model.final_conv.weight.requires_grad
    assert all(p.requires_grad for p in model.downs.parameters())
    assert info["frozen_parameters"] + info["trainable_parameters"] == sum(p.numel() for p in model.parameters())


def test_checkpoint_records_its_origin_and_predict_accepts_it(tmp_path, base_model):
    from temshift.io.frames import write_tiff_frame
    from temshift.models import load_model
    from temshift.predict.pipeline import load_predictor
    from temshift.training.labelled_frames import read_image

    images, labels = _write_frames(tmp_path / "data", n=3)
    out = tmp_path / "run"
    res = CliRunner().invoke(
        _cli(),
        [
            "finetune",
            str(base_model),
            "--images",
            str(images),
            "--labels",
            str(labels),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--patch-crop",
            "32",
            "--threads",
            "1",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "decoder frozen" in res.output and "own pixel grid" in res.output
    _, meta = load_model(out / "model.pt")
    assert meta.kind == "finetune" and meta.freeze["mode"] == "decoder"
    assert meta.base_model["file"] == "base.pt" and len(meta.base_model["sha256"]) == 64
    assert [f["image"] for f in meta.frames] == ["image_0.png", "image_1.png", "image_2.png"]
    assert meta.frames[0]["label"] == "label_0.png"
    assert meta.dataset_spec.preprocess.flatfield is False  # the base model's preprocessing, kept
    assert meta.training_statistics is not None
    predictor = load_predictor(out / "model.pt")
    assert predictor.preprocess.flatfield is False and predictor.patch_size == SIZE
    frame = tmp_path / "frame.tif"
    write_tiff_frame(frame, read_image(images / "image_0.png").data)
    pred = CliRunner().invoke(_cli(), ["predict", str(out / "model.pt"), str(frame), "--out", str(tmp_path / "pred")])
    assert pred.exit_code == 0, pred.output
    assert (tmp_path / "pred" / "frame_mask.png").is_file()


def test_pairs_by_name_conventions(tmp_path):
    from temshift.training.labelled_frames import pair_frames

    images, labels = _write_frames(tmp_path / "a", n=3)
    pairs = pair_frames(images, labels)
    assert [(p.image.name, p.label.name) for p in pairs] == [(f"image_{k}.png", f"label_{k}.png") for k in range(3)]
    images, labels = _write_frames(tmp_path / "b", n=2, image_name="frame{k}.png", label_name="frame{k}_label.png")
    assert [p.label.name for p in pair_frames(images, labels)] == ["frame0_label.png", "frame1_label.png"]
    images, labels = _write_frames(tmp_path / "c", n=2, image_name="x{k}.png", label_name="x{k}.png", rgba=False)
    assert [p.label.name for p in pair_frames(images, labels)] == ["x0.png", "x1.png"]


def test_unpaired_files_are_one_line_errors_naming_them(tmp_path, base_model, cli):
    from temshift.training.labelled_frames import PairingError, pair_frames

    images, labels = _write_frames(tmp_path / "d", n=3)
    (labels / "label_2.png").rename(labels / "label_7.png")
    with pytest.raises(PairingError) as err:
        pair_frames(images, labels)
    msg = str(err.value)
    assert "image_2.png" in msg and "label_7.png" in msg and "\n" not in msg
    code, _, out = cli("finetune", base_model, "--images", images, "--labels", labels, "--out", tmp_path / "run")
    assert code == 1
    assert "error:" in out and "image_2.png" in out and "Traceback" not in out
    assert not (tmp_path / "run").exists()


def test_shape_mismatch_names_both_files(tmp_path, base_model, cli):
    from PIL import Image

    images, labels = _write_frames(tmp_path / "e", n=2)
    Image.fromarray(np.zeros((SIZE, SIZE + 8), np.uint8), mode="L").save(labels / "label_1.png")
    code, _, err = cli("finetune", base_model, "--images", images, "--labels", labels, "--out", tmp_path / "run")
    assert code == 1
    assert "label_1.png" in err and "image_1.png" in err and "64x72" in err and "Traceback" not in err


def test_unsupported_and_unreadable_frames_are_one_line_errors(tmp_path):
    from temshift.errors import TemshiftError
    from temshift.training.labelled_frames import pair_frames, read_pair

    images, labels = _write_frames(tmp_path / "f", n=2)
    (images / "notes.txt").write_text("ignored")
    (images / "image_0.png").write_bytes(b"\x89PNG broken")
    pairs = pair_frames(images, labels)
    with pytest.raises(TemshiftError) as err:
        read_pair(pairs[0])
    assert "image_0.png" in str(err.value) and "\n" not in str(err.value)
    (images / "image_9.bmp").write_bytes(b"BM")
    with pytest.raises(TemshiftError, match=r"image_9\.bmp: unsupported image format"):
        pair_frames(images, labels)


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, base_model, monkeypatch):
    import temshift.training.trainer as trainer
    from temshift.training.finetune import STATE_FILE, finetune

    pairs = _pairs(tmp_path)
    straight = finetune(base_model, pairs, tmp_path / "straight", settings=_settings(epochs=3))
    real, calls = trainer.train_epoch, {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_epoch", interrupting)
    with pytest.raises(KeyboardInterrupt):
        finetune(base_model, pairs, tmp_path / "resumed", settings=_settings(epochs=3))
    assert (tmp_path / "resumed" / STATE_FILE).is_file() and not (tmp_path / "resumed" / "model.pt").exists()
    monkeypatch.setattr(trainer, "train_epoch", real)
    resumed = finetune(base_model, pairs, tmp_path / "resumed", settings=_settings(epochs=3))
    assert resumed.epochs_run == 3 and not (tmp_path / "resumed" / STATE_FILE).exists()
    a, b = _state(straight.model_path), _state(resumed.model_path)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    # finished: asked again with the same request, the run is returned, not retrained
    assert finetune(base_model, pairs, tmp_path / "resumed", settings=_settings(epochs=3)) == resumed


def test_run_folder_refuses_other_frames_finished_or_interrupted(tmp_path, base_model, monkeypatch):
    import temshift.training.trainer as trainer
    from temshift.errors import CheckpointError
    from temshift.training.finetune import finetune

    first, other = _pairs(tmp_path, "one", seed=0), _pairs(tmp_path, "two", seed=1)
    finetune(base_model, first, tmp_path / "run", settings=_settings())
    model_bytes = (tmp_path / "run" / "model.pt").read_bytes()
    with pytest.raises(CheckpointError, match="other frames") as err:
        finetune(base_model, other, tmp_path / "run", settings=_settings())
    assert "image_0.png" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="another freeze mode"):
        finetune(base_model, first, tmp_path / "run", freeze="none", settings=_settings())
    assert (tmp_path / "run" / "model.pt").read_bytes() == model_bytes

    def interrupting(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_epoch", interrupting)
    with pytest.raises(KeyboardInterrupt):
        finetune(base_model, first, tmp_path / "half", settings=_settings())
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="other frames"):
        finetune(base_model, other, tmp_path / "half", settings=_settings())


def test_base_model_by_zoo_name_and_ensemble_refused(tmp_path, base_model, monkeypatch):
    import shutil

    from temshift.errors import TemshiftError
    from temshift.models import zoo
    from temshift.training.finetune import resolve_base

    with pytest.raises(TemshiftError, match="no such model file"):
        resolve_base(tmp_path / "nothing.pt")
    ens = tmp_path / "ens"
    for k in range(2):
        (ens / f"fold{k}").mkdir(parents=True)
        shutil.copy(base_model, ens / f"fold{k}" / "model.pt")
    with pytest.raises(TemshiftError, match="2 models"):
        resolve_base(ens)
    zset = zoo.training_sets()[0]
    with pytest.raises(zoo.ZooError, match="temshift zoo pull"):
        resolve_base(zset.name, zoo_dir=tmp_path / "zoo")
    m0 = next(m for m in zset.models if m.fold == 0)
    monkeypatch.setattr(zoo, "is_complete", lambda m, folder: True)  # a pulled zoo, without the download
    path, note = resolve_base(zset.name, zoo_dir=tmp_path / "zoo")
    assert path == tmp_path / "zoo" / m0.file and "fold-0" in note


def test_frames_get_the_prediction_preprocessing_and_scale_matching(tmp_path):
    from temshift.preprocess import PreprocessSettings
    from temshift.preprocess.model_input import model_input
    from temshift.training.finetune import prepare_frames
    from temshift.training.labelled_frames import read_pair

    pairs = _pairs(tmp_path, n=2)
    settings = PreprocessSettings(flatfield=False, xray_threshold=None)
    prepared = prepare_frames(pairs, settings, 0.02, 512, 4, pixel_scale_nm=0.03)  # zoom x1.5: 64 -> 96 px
    frame, label = read_pair(pairs[0])
    expected, zoom = model_input(frame.data, settings, 0.03, 0.02)
    assert zoom == pytest.approx(1.5) and expected.shape == (96, 96)
    assert prepared.images.shape == (2, 96, 96) and prepared.labels.shape == (2, 96, 96)
    np.testing.assert_array_equal(prepared.images[0], expected)
    # the label follows the resampling: its particle share is kept
    assert abs(prepared.labels[0].mean() - label.mean()) < 0.01
    assert [f["zoom"] for f in prepared.frames] == [pytest.approx(1.5)] * 2
    unknown = prepare_frames(pairs, settings, 0.02, 32, 4)  # no scale: own grid, 32 px tiles covering 64 px
    assert unknown.images.shape == (8, 32, 32) and unknown.frames[0]["zoom"] == 1.0


def test_validation_frames_are_held_out(tmp_path, base_model):
    from temshift.models import load_model
    from temshift.training.finetune import FinetuneError, finetune

    pairs = _pairs(tmp_path, n=3)
    result = finetune(base_model, pairs, tmp_path / "run", settings=_settings(), val_frames=1)
    _, meta = load_model(result.model_path)
    assert meta.frames_role == {"train": ["image_0.png", "image_1.png"], "val": ["image_2.png"]}
    assert result.n_frames == 2
    with pytest.raises(FinetuneError, match="at least one"):
        finetune(base_model, pairs, tmp_path / "run2", settings=_settings(), val_frames=3)


def test_frames_of_known_and_unknown_scale_are_not_mixed(tmp_path):
    from temshift.errors import DatasetError
    from temshift.io.frames import write_tiff_frame
    from temshift.preprocess import PreprocessSettings
    from temshift.training.finetune import prepare_frames
    from temshift.training.labelled_frames import pair_frames, read_image

    images, labels = _write_frames(tmp_path / "g", n=2)
    write_tiff_frame(images / "image_1.tif", read_image(images / "image_1.png").data, 0.03)
    (images / "image_1.png").unlink()
    pairs = pair_frames(images, labels)
    settings = PreprocessSettings(flatfield=False, xray_threshold=None)
    with pytest.raises(DatasetError, match=r"image_0\.png: records no pixel scale while image_1\.tif"):
        prepare_frames(pairs, settings, 0.02, 512, 4)
    assert prepare_frames(pairs, settings, 0.02, 512, 4, pixel_scale_nm=0.02).frames[1]["zoom"] == 1.0


def test_finetune_data_file_has_the_format_attributes_of_a_built_dataset(tmp_path, base_model):
    """The fine-tuning patches file says it is a temshift dataset exactly as `dataset build` does."""
    import h5py

    from temshift.catalog import Catalog
    from temshift.datasets import DatasetSpec, build_dataset
    from temshift.simulate.toy import write_toy_repository
    from temshift.training.finetune import DATA_FILE, finetune

    group = {"material": "Au", "dose_e_per_A2": 423, "pixel_scale_nm": 0.1, "folder": "s1 Au", "date": "08/26/21"}
    csv = write_toy_repository(tmp_path / "repo", [group], frames_per_group=1, size=128)
    built = build_dataset(Catalog.read(csv), None, DatasetSpec(name="au", patch_size=64), tmp_path / "au.h5", workers=1)
    run = finetune(base_model, _pairs(tmp_path), tmp_path / "run", settings=_settings(epochs=1))
    with h5py.File(built, "r") as b, h5py.File(run.model_path.parent / DATA_FILE, "r") as f:
        for key in ("format", "format_version"):
            assert key in b.attrs and f.attrs.get(key) == b.attrs[key], key


def test_the_shipped_generalist_by_name_in_the_library_and_the_cli(tmp_path, monkeypatch):
    """`finetune("generalist", ...)` and `temshift finetune generalist` start from `predict generalist`'s model."""
    from temshift.models import load_model
    from temshift.models.pretrained import pretrained_path
    from temshift.predict.pipeline import load_predictor
    from temshift.training.finetune import finetune, resolve_base

    monkeypatch.delenv("TEMSHIFT_PRETRAINED_DIR", raising=False)
    shipped = pretrained_path("generalist")
    monkeypatch.chdir(tmp_path)  # no file called "generalist" here
    path, note = resolve_base("Generalist")
    assert path == shipped and "shipped" in note
    images, labels = _write_frames(tmp_path / "data", n=2, rgba=False)
    from temshift.training.labelled_frames import pair_frames

    res = finetune("generalist", pair_frames(images, labels), tmp_path / "lib", settings=_settings(epochs=1))
    assert res.base_model == "generalist.pt" and res.zoom == [1.0, 1.0]
    _, meta = load_model(res.model_path)
    assert meta.base_model["sha256"] == _sha(shipped) and meta.base_model["kind"] == "generalist"
    assert meta.base_model["pixel_scale_nm"] == pytest.approx(0.04)  # the generalist's working scale
    # scale-less frames: trained on their own grid, so the model records no training scale and
    # predict does not resample them (even with a pixel scale at hand)
    assert meta.dataset_spec.pixel_scale_nm is None
    predictor = load_predictor(res.model_path)
    assert predictor.pixel_scale_nm is None
    from temshift.predict.pipeline import predict_frame
    from temshift.training.labelled_frames import read_image

    assert predict_frame(predictor, read_image(images / "image_0.png").data, pixel_scale_nm=0.1).zoom == 1.0
    out = tmp_path / "cli"
    cli = CliRunner().invoke(
        _cli(),
        [
            "finetune",
            "generalist",
            "--images",
            str(images),
            "--labels",
            str(labels),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--patch-crop",
            "32",
            "--threads",
            "1",
            "--device",
            "cpu",
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert (
        "generalist.pt" in cli.output
        and "own pixel grid (pixel scale unknown: taken as the base's training scale, 0.04 nm/px)" in cli.output
    )
    assert load_model(out / "model.pt")[1].base_model["file"] == "generalist.pt"


def test_an_unknown_model_name_is_a_one_line_error(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    images, labels = _write_frames(tmp_path / "data", n=1)
    code, out, err = cli("finetune", "generalst", "--images", str(images), "--labels", str(labels), "--out", "run")
    text = (out + err).strip()
    assert code == 1 and "Traceback" not in text and len(text.splitlines()) == 1, text
    assert "generalst" in text and "generalist" in text  # names the input and the shipped models
    assert not (tmp_path / "run").exists()


def test_a_shipped_model_missing_from_the_install_is_a_clear_error(tmp_path, monkeypatch):
    from temshift.errors import TemshiftError
    from temshift.training.finetune import resolve_base

    monkeypatch.setenv("TEMSHIFT_PRETRAINED_DIR", str(tmp_path / "none"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TemshiftError, match="not shipped"):
        resolve_base("generalist")


def _sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
