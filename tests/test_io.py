"""Reading and writing frames and labels; error messages for bad files."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from temshift.errors import FrameReadError
from temshift.io import (
    PixelScaleMismatchWarning,
    read_frame,
    read_label,
    write_label_png,
    write_tiff_frame,
)


@pytest.fixture
def frame():
    return np.random.default_rng(0).poisson(300, (40, 56)).astype(np.float32)


def _one_line(exc, path):
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_tiff_round_trip_keeps_data_and_pixel_scale(tmp_path, frame):
    p = write_tiff_frame(tmp_path / "f.tif", frame, 0.0215)
    f = read_frame(p)
    np.testing.assert_array_equal(f.data, frame)
    assert f.data.dtype == np.float32 and f.pixel_scale_nm == pytest.approx(0.0215)
    assert f.path == p


def test_tiff_without_scale_has_none(tmp_path, frame):
    assert read_frame(write_tiff_frame(tmp_path / "f.tiff", frame)).pixel_scale_nm is None


def test_angstrom_units_are_converted_to_nm(tmp_path, frame):
    from rsciio.tiff import file_writer

    axes = [
        {"name": n, "size": s, "scale": 0.2, "offset": 0.0, "units": "Å", "navigate": False}
        for n, s in zip(("height", "width"), frame.shape)
    ]
    file_writer(str(tmp_path / "a.tif"), {"data": frame, "axes": axes, "metadata": {}, "original_metadata": {}})
    assert read_frame(tmp_path / "a.tif").pixel_scale_nm == pytest.approx(0.02)


def test_pixel_scale_mismatch_warns_above_2_percent(tmp_path, frame):
    p = write_tiff_frame(tmp_path / "f.tif", frame, 0.0203)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_frame(p, expected_pixel_scale_nm=0.02)  # 1.5 %: fine
    with pytest.warns(PixelScaleMismatchWarning, match="f.tif"):
        read_frame(p, expected_pixel_scale_nm=0.0198)  # 2.5 %


def test_npy_frame_and_integer_dtypes(tmp_path):
    np.save(tmp_path / "f.npy", np.arange(12, dtype=np.uint16).reshape(3, 4))
    f = read_frame(tmp_path / "f.npy")
    assert f.data.dtype == np.float32 and f.data.shape == (3, 4) and f.pixel_scale_nm is None


def test_write_is_atomic(tmp_path, frame, monkeypatch):
    import rsciio.tiff

    def broken(filename, signal, **kw):
        Path(filename).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(rsciio.tiff, "file_writer", broken)
    with pytest.raises(RuntimeError):
        write_tiff_frame(tmp_path / "f.tif", frame, 0.02)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("gone.tif", None, "not found"),
        ("empty.dm3", b"", "empty file"),
        ("junk.dm3", b"\x00\x01garbage" * 50, "cannot read"),
        ("junk.ser", b"\x00\x01garbage" * 50, "cannot read"),
        ("junk.emd", b"\x00\x01garbage" * 50, "cannot read"),
        ("junk.npy", b"\x93NUMPY garbage", "cannot read"),
        ("frame.jpg", b"x", "cannot read"),
        ("frame.gif", b"x", "unsupported"),
    ],
)
def test_bad_frames_give_one_line_error_naming_the_file(tmp_path, name, content, match):
    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(FrameReadError, match=match) as exc:
        read_frame(p)
    _one_line(exc, p)


def test_truncated_tiff(tmp_path, frame):
    p = write_tiff_frame(tmp_path / "f.tif", frame, 0.02)
    p.write_bytes(p.read_bytes()[:400])
    with pytest.raises(FrameReadError) as exc:
        read_frame(p)
    _one_line(exc, p)


def test_non_2d_frame(tmp_path):
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(FrameReadError, match=r"not a 2D image \(shape \(2, 3, 4\)\)"):
        read_frame(tmp_path / "cube.npy")


def test_nan_frame(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(FrameReadError, match="NaN"):
        read_frame(tmp_path / "nan.npy")


def test_label_png_round_trip_nonzero_is_particle(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 7:12] = 3
    p = write_label_png(tmp_path / "Labels" / "x_label.png", mask)
    lab = read_label(p, shape=(20, 30))
    assert lab.dtype == np.uint8 and lab.sum() == 25 and lab.max() == 1


def test_label_rgb_and_tiff(tmp_path):
    import tifffile
    from PIL import Image

    rgb = np.zeros((8, 9, 3), np.uint8)
    rgb[2, 3] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert read_label(tmp_path / "rgb.png").sum() == 1
    tifffile.imwrite(tmp_path / "l.tif", (np.arange(12).reshape(3, 4) > 5).astype(np.uint16) * 1000)
    np.testing.assert_array_equal(read_label(tmp_path / "l.tif"), np.arange(12).reshape(3, 4) > 5)


def test_label_errors(tmp_path):
    p = write_label_png(tmp_path / "l.png", np.ones((4, 5)))
    with pytest.raises(FrameReadError, match=r"shape \(4, 5\) does not match frame shape \(5, 4\)") as exc:
        read_label(p, shape=(5, 4))
    _one_line(exc, p)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(FrameReadError, match="cannot read label") as exc:
        read_label(bad)
    _one_line(exc, bad)
    with pytest.raises(FrameReadError, match="not found"):
        read_label(tmp_path / "none.png")
    with pytest.raises(FrameReadError, match="unsupported"):
        read_label(tmp_path / "l.bmp")


def test_emd_frame_with_scale(tmp_path, frame):
    from rsciio import emd

    axes = [
        {"name": n, "units": "nm", "size": s, "offset": 0.0, "scale": 0.033, "navigate": False}
        for n, s in zip(("y", "x"), frame.shape)
    ]
    meta = {"General": {"title": "frame"}, "Signal": {"signal_type": ""}}
    emd.file_writer(str(tmp_path / "f.emd"), {"data": frame, "axes": axes, "metadata": meta, "original_metadata": {}})
    f = read_frame(tmp_path / "f.emd", expected_pixel_scale_nm=0.033)
    np.testing.assert_array_equal(f.data, frame)
    assert f.pixel_scale_nm == pytest.approx(0.033)


@pytest.mark.parametrize(
    "units, scale, expected",
    [("nm", 0.02, 0.02), ("µm", 2e-5, 0.02), ("Å", 0.2, 0.02), ("1/nm", 0.5, None), (None, 1.0, None)],
)
def test_dm_reader_units_and_singleton_axes(tmp_path, monkeypatch, units, scale, expected):
    """What the DigitalMicrograph plugin returns for a OneView frame (one image, maybe a 1-frame stack)."""
    import rsciio.digitalmicrograph as dm

    data = np.arange(20, dtype=np.int32).reshape(1, 4, 5)
    axes = [{"name": "frame", "size": 1, "scale": 1.0, "units": None, "navigate": True}] + [
        {"name": n, "size": s, "scale": scale, "offset": 0.0, "units": units, "navigate": False}
        for n, s in (("y", 4), ("x", 5))
    ]
    monkeypatch.setattr(dm, "file_reader", lambda filename, **kw: [{"data": data, "axes": axes, "metadata": {}}])
    (tmp_path / "f.dm3").write_bytes(b"stub")
    f = read_frame(tmp_path / "f.dm3")
    assert f.data.shape == (4, 5) and f.data.dtype == np.float32
    assert f.pixel_scale_nm == (pytest.approx(expected) if expected else None)
