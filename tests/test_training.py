"""The training protocol: splits, dihedral variants, augmentation, noise, the loop and fold runs."""

import csv
import math

import numpy as np
import pytest
import torch

from temshift.errors import CheckpointError, DatasetError
from temshift.models.dihedral import dihedral, inverse_dihedral
from temshift.simulate.toy import toy_patches
from temshift.training import Segmenter, TrainSettings, augment, split_fold, splits, train_fold
from temshift.training.data import expand

torch.set_num_threads(1)  # the machine is shared: one thread avoids oversubscription stalls
FAST = {"epochs": 2, "batch_size": 16, "learning_rate": 3e-3, "progress": False, "threads": 1}


# ---------------------------------------------------------------- splits


def test_split_sizes_are_70_10_20_and_contiguous():
    n = 100
    tests = []
    for fold in range(5):
        s = split_fold(n, fold)
        assert (len(s.train), len(s.val), len(s.test)) == (70, 10, 20)
        assert np.array_equal(s.test, np.arange(20 * fold, 20 * fold + 20))
        assert np.all(np.diff(s.val) == 1)  # one contiguous block
        assert len(set(s.train) | set(s.val) | set(s.test)) == n
        tests.append(s.test)
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(n))
    # validation block starts at i * fold_size among the remaining patches: right after the test block
    assert split_fold(n, 0).val[0] == 20 and split_fold(n, 2).val[0] == 60
    assert np.array_equal(split_fold(n, 4).val, np.arange(70, 80))  # last fold: last block of the rest


def test_uneven_split_last_block_takes_remainder():
    assert len(splits.test_block(103, 4)) == 23
    s = split_fold(103, 1)
    assert len(s.train) + len(s.val) + len(s.test) == 103
    with pytest.raises(ValueError):
        split_fold(100, 5)


# ---------------------------------------------------------------- dihedral


def test_eight_distinct_dihedral_variants_and_inverse():
    x = np.arange(9).reshape(3, 3)
    variants = [dihedral(x, k) for k in range(8)]
    assert len({v.tobytes() for v in variants}) == 8
    assert np.array_equal(variants[0], x)
    assert np.array_equal(variants[1], np.rot90(x)) and np.array_equal(variants[4], x.T)
    t = torch.from_numpy(x)
    for k in range(8):
        assert np.array_equal(dihedral(t, k).numpy(), variants[k])
        assert np.array_equal(inverse_dihedral(variants[k], k), x)
    pairs = expand([3, 4], seed=9201)
    assert len(pairs) == 16 and {tuple(p) for p in pairs} == {(i, k) for i in (3, 4) for k in range(8)}
    assert np.array_equal(pairs, expand([3, 4], seed=9201)) and not np.array_equal(pairs, expand([3, 4], None))


# ---------------------------------------------------------------- augmentation


def test_rotation_fills_image_with_background_median_and_label_with_zero():
    img = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 1, 64, 64) / 100
    lab = torch.zeros(1, 64, 64, dtype=torch.long)
    lab[0, 20:40, 20:40] = 1
    fill = augment.background_median(img, lab)
    background = img[0, 0][lab[0] == 0]
    assert fill.item() == pytest.approx(background.median().item())
    out, out_lab = augment.rotate(img, lab, torch.tensor([45.0]), fill)
    for r, c in [(0, 0), (0, 63), (63, 0), (63, 63)]:
        assert out[0, 0, r, c].item() == pytest.approx(fill.item())
        assert out_lab[0, r, c].item() == 0
    assert out_lab.dtype == lab.dtype and set(out_lab.unique().tolist()) <= {0, 1}
    # the particle stays a particle at the centre
    assert out_lab[0, 30, 30] == 1
    # a quarter turn is a pure permutation of pixels (counter-clockwise as np.rot90)
    q, _q_lab = augment.rotate(img, lab, torch.tensor([90.0]), fill)
    np.testing.assert_allclose(q[0, 0].numpy(), np.rot90(img[0, 0].numpy()), atol=1e-3)


def test_random_flip_rotate_probability():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 32, 32)
    y = (torch.rand(16, 32, 32) > 0.7).long()
    same_x, same_y = augment.random_flip_rotate(x, y, gen, probability=0.0)
    assert torch.equal(same_x, x) and torch.equal(same_y, y)
    new_x, new_y = augment.random_flip_rotate(x, y, gen, probability=1.0)
    changed = [not torch.equal(new_x[i], x[i]) for i in range(16)]
    assert all(changed) and x.shape == new_x.shape and new_y.dtype == y.dtype


def test_noise_scaling_keeps_unit_variance():
    gen = torch.Generator().manual_seed(1)
    x = torch.zeros(4, 1, 128, 128)
    rho = 0.75
    noisy = augment.add_noise(x, rho, gen)
    assert noisy.std().item() == pytest.approx(rho / math.sqrt(1 + rho * rho), rel=0.02)
    unit = torch.randn(4, 1, 128, 128, generator=gen)
    assert augment.add_noise(unit, 2.0, gen).std().item() == pytest.approx(1.0, rel=0.02)
    assert augment.sample_rho(5, gen) is None
    assert torch.all(augment.sample_rho(5, gen, rho=0.5) == 0.5)
    r = augment.sample_rho(1000, gen, rho_max=2.0)
    assert r.min() >= 0 and r.max() <= 2.0 and r.mean().item() == pytest.approx(1.0, abs=0.1)
    per_sample = augment.add_noise(torch.zeros(2, 1, 64, 64), torch.tensor([0.0, 1.0]), gen)
    assert per_sample[0].abs().max() == 0 and per_sample[1].std().item() == pytest.approx(0.5**0.5, rel=0.05)


def test_settings_defaults_are_the_paper():
    s = TrainSettings()
    assert (s.epochs, s.batch_size, s.learning_rate, s.n_folds, s.val_fraction) == (250, 32, 1e-4, 5, 0.125)
    assert s.fold_seeds == (962, 1662, 621, 72115, 45521) and s.seed_for(3) == 72115
    assert (s.train_shuffle_seed, s.val_shuffle_seed, s.test_shuffle_seed) == (9201, 6274, 7427)
    assert s.rotate_probability == 0.5 and s.dihedral and s.noise_on_validation
    with pytest.raises(ValueError):
        TrainSettings(noise_rho=0.5, noise_rho_max=1.0)


# ---------------------------------------------------------------- the loop


def test_learns_generated_particles_to_high_dice():
    from temshift.evaluation import evaluate_model

    images, labels = toy_patches(32, 64, seed=1)
    test_images, test_labels = toy_patches(16, 64, seed=2)
    seg = Segmenter(epochs=7, learning_rate=1e-2, batch_size=16, progress=False, threads=1).fit(images, labels)
    metrics = evaluate_model(seg.model, test_images, test_labels)
    assert metrics["hard_dice"] >= 0.9, seg.history[-1]
    masks = seg.predict(test_images[:2])
    assert masks.shape == (2, 64, 64) and masks.dtype == np.uint8
    assert seg.predict(test_images[0, :50, :40]).shape == (50, 40)  # any size: padded internally


@pytest.fixture
def small_dataset(write_dataset, tmp_path):
    images, labels = toy_patches(20, 32, seed=3)
    return write_dataset(tmp_path / "small.h5", images, labels)


def read_history(path):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r.pop("seconds")
    return rows


def test_same_seed_gives_identical_history_and_checkpoint_meta(small_dataset, tmp_path):
    from temshift.models import load_model

    settings = TrainSettings(**FAST, noise_rho_max=0.5)
    a = train_fold(small_dataset, 1, settings, tmp_path / "a")
    b = train_fold(small_dataset, 1, settings, tmp_path / "b")
    assert read_history(a.history_path) == read_history(b.history_path)
    assert len(read_history(a.history_path)) == 2 and a.seed == 1662
    _model, meta = load_model(a.model_path)
    assert meta.fold == 1 and meta.dataset_spec.dose_e_per_A2 == 423
    assert meta.settings["noise_rho_max"] == 0.5 and meta.dataset_spec_hash
    assert not (tmp_path / "a" / "state.pt").exists()
    assert train_fold(small_dataset, 1, settings, tmp_path / "a") == a  # finished: returned at once
    with pytest.raises(CheckpointError, match="other settings"):
        train_fold(small_dataset, 1, TrainSettings(**{**FAST, "epochs": 3}), tmp_path / "a")


def test_interrupted_run_resumes_exactly(small_dataset, tmp_path, monkeypatch):
    import temshift.training.trainer as trainer

    settings = TrainSettings(**{**FAST, "epochs": 3})
    full = train_fold(small_dataset, 0, settings, tmp_path / "full")
    real = trainer.validate
    calls = {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "validate", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train_fold(small_dataset, 0, settings, tmp_path / "resumed")
    assert (tmp_path / "resumed" / "state.pt").exists()
    assert len(read_history(tmp_path / "resumed" / "history.csv")) == 2
    monkeypatch.setattr(trainer, "validate", real)
    resumed = train_fold(small_dataset, 0, settings, tmp_path / "resumed")
    assert read_history(resumed.history_path) == read_history(full.history_path)


def test_corrupt_state_never_restarts(small_dataset, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="state.pt"):
        train_fold(small_dataset, 0, TrainSettings(**FAST), run)
    assert not (run / "history.csv").exists()


def test_channel_mismatch_is_named():
    from temshift.models import ModelConfig
    from temshift.training.data import check_arrays

    images, labels = toy_patches(2, 32, seed=6)
    with pytest.raises(DatasetError, match="x.h5: images have 3 channels, the model expects 1"):
        check_arrays(np.repeat(images[:, None], 3, axis=1), labels, ModelConfig(), "x.h5")
    with pytest.raises(DatasetError, match="patch crop 48 exceeds"):
        check_arrays(images, labels, ModelConfig(), "x.h5", patch_crop=48)


@pytest.mark.parametrize(
    "case, message",
    [
        ("nan", "NaN"),
        ("labels", "0/1|0 or 1"),
        ("size", "multiple of 16"),
        ("channels", "channels|shape"),
        ("missing", "no such|not found"),
    ],
)
def test_bad_datasets_give_one_line_errors(write_dataset, tmp_path, case, message):
    images, labels = toy_patches(10, 32, seed=4)
    if case == "nan":
        images[3, 4, 5] = np.nan
    elif case == "labels":
        labels[2, 0, 0] = 2
    elif case == "size":
        images, labels = images[:, :24, :24], labels[:, :24, :24]
    elif case == "channels":
        images = np.repeat(images[:, None], 3, axis=1)
    path = tmp_path / "bad.h5"
    if case != "missing":
        write_dataset(path, images, labels)
    with pytest.raises(DatasetError, match=message) as err:
        train_fold(path, 0, TrainSettings(**FAST), tmp_path / "run")
    assert "bad.h5" in str(err.value) and "\n" not in str(err.value)


def test_patch_crop_and_cli_train(small_dataset, tmp_path):
    from typer.testing import CliRunner

    from temshift.cli import _register, app

    _register()
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(small_dataset),
            "--folds",
            "0,4",
            "--epochs",
            "1",
            "--patch-crop",
            "16",
            "--noise-rho",
            "0.25",
            "--lr",
            "0.003",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "fold0" / "model.pt").exists() and (tmp_path / "runs" / "fold4" / "model.pt").exists()


def test_segmenter_save_load(tmp_path):
    images, labels = toy_patches(8, 32, seed=5)
    seg = Segmenter(epochs=1, batch_size=8, progress=False, threads=1).fit(images, labels)
    seg.save(tmp_path / "seg.pt")
    again = Segmenter.load(tmp_path / "seg.pt")
    # same weights; the fitted model may run channels-last, so equal up to float rounding
    np.testing.assert_allclose(again.predict_proba(images[:2]), seg.predict_proba(images[:2]), atol=1e-5)
    assert again.meta.trained_with["device"] == "cpu"


def test_early_stopping_keeps_best_epoch(small_dataset, tmp_path, monkeypatch):
    import temshift.training.trainer as trainer

    losses = iter([0.5, 0.4, 0.45, 0.6, 0.7, 0.8, 0.9])
    monkeypatch.setattr(
        trainer, "validate", lambda *a, **k: {"val_loss": next(losses), "val_soft_dice": 0.5, "val_hard_dice": 0.5}
    )
    settings = TrainSettings(**{**FAST, "epochs": 7, "early_stopping_patience": 2})
    result = train_fold(small_dataset, 0, settings, tmp_path / "run")
    assert (result.best_epoch, result.epochs_run, result.stopped_early) == (2, 4, True)
    assert result.best_val_loss == pytest.approx(0.4)


def test_fold_out_of_range_and_too_few_patches(write_dataset, tmp_path):
    from temshift.errors import SpecError

    path = write_dataset(tmp_path / "tiny.h5", *toy_patches(3, 32, seed=7))
    with pytest.raises(SpecError, match="fold 5"):
        train_fold(path, 5, TrainSettings(**FAST), tmp_path / "run")
    with pytest.raises(DatasetError, match="tiny.h5: 3 patches cannot be split"):
        train_fold(path, 0, TrainSettings(**FAST), tmp_path / "run")


def test_samples_per_epoch_caps_the_epoch_with_a_fresh_subset_each_time():
    from temshift.training.data import PatchSet
    from temshift.training.trainer import train_batches

    n = 40
    images = np.arange(n, dtype=np.float32)[:, None, None] * np.ones((1, 16, 16), np.float32)
    data = PatchSet(images, np.zeros((n, 16, 16), np.uint8), np.stack([np.arange(n), np.zeros(n, int)], 1))
    settings = TrainSettings(batch_size=4, samples_per_epoch=12, rotate_probability=0)

    def seen(epoch):
        return [int(v) for x, _ in train_batches(data, settings, seed=1, epoch=epoch) for v in x[:, 0, 0, 0]]

    first, second = seen(1), seen(2)
    assert len(first) == len(second) == 12 and len(set(first)) == 12
    assert set(first) != set(second)
    full = TrainSettings(batch_size=4, rotate_probability=0)
    assert sorted(int(v) for x, _ in train_batches(data, full, 1, 1) for v in x[:, 0, 0, 0]) == list(range(n))


def test_model_carries_its_training_statistics(small_dataset, tmp_path):
    from temshift.predict.pipeline import load_predictor

    run = train_fold(small_dataset, 0, TrainSettings(**FAST), tmp_path / "run")
    expected = load_predictor(run.model_path).training_reference()
    small_dataset.unlink()  # the dataset is gone: the warnings still have their reference
    ref = load_predictor(run.model_path).training_reference()
    assert ref == expected
    assert ref.statistics.snr.n >= 1 and ref.statistics.tile_px == 32 and ref.dose_e_per_A2 == 423
