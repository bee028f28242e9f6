"""Dataset spec, builder, loader, published pairs, atomic writes and errors."""

import json

import h5py
import numpy as np
import pytest
from pydantic import ValidationError

from temshift.catalog import Catalog
from temshift.datasets import (
    DatasetSpec,
    build_dataset,
    content_hash,
    import_published,
    load_dataset,
    shuffled_rows,
)
from temshift.errors import DatasetError, FrameReadError
from temshift.io import read_frame, read_label
from temshift.preprocess import PreprocessSettings, extract_patches, preprocess_frame
from temshift.simulate.toy import write_toy_repository

GROUPS = [
    {"material": "Au", "dose_e_per_A2": 423, "pixel_scale_nm": 0.1, "folder": "s1 Au/UTC", "date": "08/26/21"},
    {"material": "Au", "dose_e_per_A2": 430, "pixel_scale_nm": 0.1, "folder": "s2 Au", "date": "08/27/21"},
    {"material": "Ag", "dose_e_per_A2": 80, "pixel_scale_nm": 0.1, "folder": "s3 Ag", "date": "09/01/21"},
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    csv = write_toy_repository(root, GROUPS, frames_per_group=2, size=256)
    return Catalog.read(csv)


SPEC = DatasetSpec(name="au", where={"material": "Au", "dose_e_per_A2": (425, 10)}, patch_size=64)


@pytest.fixture(scope="module")
def built(repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "au.h5"
    return build_dataset(repo, None, SPEC, out, workers=2)


def test_spec_hash_and_json_round_trip():
    again = DatasetSpec.from_json(SPEC.to_json())
    assert again == SPEC and again.hash() == SPEC.hash()
    assert again.where["dose_e_per_A2"] == (425, 10)  # a tolerance stays a tolerance, not a list
    assert DatasetSpec(name="au", where=SPEC.where, patch_size=128).hash() != SPEC.hash()
    assert SPEC.particle_threshold == 400 * (64 / 512) ** 2
    with pytest.raises(ValidationError):
        DatasetSpec(name="x", patchsize=3)


def test_build_round_trip(repo, built):
    ds = load_dataset(built)
    n = len(ds)
    assert n > 0 and ds.images.shape == (n, 64, 64) and ds.labels.shape == (n, 64, 64)
    assert ds.images.dtype == np.float32 and ds.labels.dtype == np.uint8
    assert set(np.unique(ds.labels)) <= {0, 1}
    assert (ds.labels.reshape(n, -1).sum(axis=1) > SPEC.particle_threshold).all()
    assert set(ds.provenance["file"]) <= {f"{r['folder']}/{r['file']}" for r in repo.query(material="Au").rows()}
    assert ds.spec["name"] == "au" and ds.name == "au"
    assert ds.spec["pixel_scale_nm"] == pytest.approx(0.1) and ds.spec["dose_e_per_A2"] == pytest.approx(426.5)
    assert ds.attrs["dose_e_per_A2"] == pytest.approx(426.5) and ds.dose_e_per_A2 == pytest.approx(426.5)
    assert DatasetSpec.from_json(ds.attrs["spec"]) == SPEC
    assert ds.attrs["content_hash"] == content_hash(ds.images, ds.labels)
    assert json.loads(ds.attrs["preprocess"]) == PreprocessSettings().model_dump(mode="json")
    assert ds.attrs["temshift_version"]


def test_frames_shuffled_with_seed_and_patches_in_frame_order(repo, built):
    ds = load_dataset(built)
    sub, rows = shuffled_rows(repo, SPEC)
    # expected: frames in shuffled order, each cut in row-major order
    exp_imgs, exp_prov = [], []
    for r in rows:
        frame = read_frame(sub.frame_path(r))
        lab = read_label(sub.label_path(r), frame.data.shape)
        p, _, c = extract_patches(preprocess_frame(frame.data), lab, 64)
        exp_imgs.append(p)
        exp_prov += [(f"{r['folder']}/{r['file']}", int(a), int(b)) for a, b in c]
    np.testing.assert_array_equal(ds.images, np.concatenate(exp_imgs))
    assert list(ds.provenance.itertuples(index=False, name=None)) == exp_prov
    order = [r["file"] for r in rows]
    assert order == [repo.query(material="Au").df["file"].iloc[i] for i in np.random.default_rng(34522).permutation(4)]


def test_build_is_deterministic_and_thread_independent(repo, built, tmp_path):
    again = build_dataset(repo, None, SPEC, tmp_path / "again.h5", workers=1)
    assert load_dataset(again).attrs["content_hash"] == load_dataset(built).attrs["content_hash"]
    other = SPEC.model_copy(update={"seed": 2})  # 34522 and 1 both give the identity on 4 frames
    p = build_dataset(repo, None, other, tmp_path / "seed1.h5", workers=2)
    assert load_dataset(p).attrs["content_hash"] != load_dataset(built).attrs["content_hash"]


def test_failed_build_leaves_no_file(repo, tmp_path):
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(repo.root, root)
    sub, rows = shuffled_rows(repo, SPEC)
    bad = sub.frame_path(rows[2], root)  # a later frame: earlier ones were already written
    bad.write_bytes(bad.read_bytes()[:300])
    out = tmp_path / "out" / "ds.h5"
    with pytest.raises(FrameReadError, match="cannot read frame") as exc:
        build_dataset(repo, root, SPEC, out, workers=2)
    assert str(bad) in str(exc.value)
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_missing_label_and_no_patches(repo, tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        build_dataset(repo, tmp_path, SPEC, tmp_path / "x.h5")
    strict = SPEC.model_copy(update={"min_particle_pixels": 1e9})
    with pytest.raises(DatasetError, match="no patch"):
        build_dataset(repo, None, strict, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def _pair(folder, name, images, labels):
    with h5py.File(folder / f"{name}_Images.h5", "w") as f:
        f["images"] = images
    with h5py.File(folder / f"{name}_Labels.h5", "w") as f:
        f["labels"] = labels
    return folder / f"{name}_Images.h5"


def test_published_pair_load_and_import(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 32, 32))  # float64, as published
    labels = (rng.random((5, 32, 32)) > 0.7).astype(np.float64)
    name = "Au_5nm_330kx_423e_Std_UTC_FFCorr_Team05"
    p = _pair(tmp_path, name, images, labels)
    for path in (p, tmp_path / f"{name}_Labels.h5"):
        ds = load_dataset(path)
        np.testing.assert_array_equal(ds.images, images.astype(np.float32))
        np.testing.assert_array_equal(ds.labels, labels.astype(np.uint8))
        assert ds.name == name and ds.dose_e_per_A2 == 423
    out = import_published(p, tmp_path / "imported.h5")
    ours = load_dataset(out)
    np.testing.assert_array_equal(ours.images, images.astype(np.float32))
    assert ours.attrs["content_hash"] == content_hash(ours.images, ours.labels)
    assert ours.spec["imported_from"]["labels"].endswith("_Labels.h5")
    assert import_published(p) == tmp_path / f"{name}.h5"


def test_dataset_attrs_writes_the_stored_keys_and_reads_back():
    from temshift.datasets import DatasetAttrs
    from temshift.datasets.store import ATTRS, FORMAT, dataset_attrs

    settings = PreprocessSettings(xray_threshold=None)
    attrs = dataset_attrs("x", {"b": 1, "a": None}, "c0ffee", preprocess=settings, patch_size=64, pixel_scale_nm=None)
    assert list(attrs) == [k for k in ATTRS if k in attrs]  # stored keys only, in ATTRS order
    assert "pixel_scale_nm" not in attrs and attrs["spec"] == '{"a": null, "b": 1}'
    assert attrs["format"] == FORMAT and {"temshift_version", "created"} <= set(attrs)
    rec = DatasetAttrs.from_attrs(attrs)
    assert (rec.name, rec.content_hash, rec.patch_size_px, rec.preprocess) == ("x", "c0ffee", 64, settings)
    plain = dataset_attrs("x", {}, "c0ffee", preprocess=settings.model_dump(mode="json"), stamp=False)
    assert not {"temshift_version", "created"} & set(plain)
    assert DatasetAttrs.from_attrs(plain).preprocess == settings  # a mapping is stored as the same settings


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: d / "missing.h5", "not found"),
        (lambda d: (d / "junk.h5").write_bytes(b"not hdf5 at all") and d / "junk.h5", "not a readable HDF5"),
        (lambda d: _h5(d / "k.h5", imgs=np.zeros((2, 4, 4))), "no dataset 'images' \\(found: imgs\\)"),
        (lambda d: _h5(d / "l.h5", images=np.zeros((2, 4, 4))), "no dataset 'labels'"),
        (lambda d: _h5(d / "n.h5", images=np.full((2, 4, 4), np.nan), labels=np.zeros((2, 4, 4))), "NaN"),
        (lambda d: _h5(d / "v.h5", images=np.zeros((2, 4, 4)), labels=np.full((2, 4, 4), 2)), "0 or 1"),
        (lambda d: _h5(d / "s.h5", images=np.zeros((2, 4, 4)), labels=np.zeros((3, 4, 4))), "differ in shape"),
        (lambda d: _h5(d / "d.h5", images=np.zeros((4, 4)), labels=np.zeros((4, 4))), "expected"),
        (lambda d: _h5(d / "x_Images.h5", images=np.zeros((2, 4, 4))), "missing file of the published pair"),
    ],
)
def test_dataset_errors_name_the_file(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(DatasetError, match=match) as exc:
        load_dataset(path)
    assert "\n" not in str(exc.value) and path.name.split("_")[0] in str(exc.value)


def _h5(path, **arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v
    return path
