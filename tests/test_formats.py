"""Frames written by real acquisition software (../shared/data/formats, see its README)."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from shared_data import SHARED_DATA as SHARED
from temshift.errors import FrameReadError
from temshift.io import read_frame
from temshift.io.frames import FrameReadWarning
from temshift.units import length_unit_nm

FORMATS = SHARED / "formats"


def _file(name: str) -> Path:
    path = FORMATS / name
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path


def _quiet_read(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain frame reads without any warning
        return read_frame(path, **kw)


@pytest.mark.parametrize(
    "name, shape, pixel_nm",
    [
        ("test_STEM_image.dm3", (68, 68), 0.248538),
        ("test-1.dm4", (2, 2), None),
        ("test_dm_image_um_unit.dm3", (68, 68), 168.675),
        ("test_loading_image_saved_with_DM.tif", (68, 68), 168.675),
        ("128x128-TEM_search_1.ser", (128, 128), 5.261214),
        ("128x128-TEM_search.emi", (128, 128), 5.261214),
        ("Camera Ceta Imaging Micro.emd", (512, 512), 3.138837),
        ("Acquisition_18.emd", (1024, 1024), 0.012247),
        ("example_image.emd", (3, 3), None),
    ],
)
def test_real_single_frames(name, shape, pixel_nm):
    f = _quiet_read(_file(name))
    assert f.data.shape == shape and f.data.dtype == np.float32
    if pixel_nm is None:
        assert f.pixel_scale_nm is None
    else:
        assert f.pixel_scale_nm == pytest.approx(pixel_nm, rel=1e-4)


def test_tia_pair_gives_the_same_frame_from_either_file():
    a, b = read_frame(_file("128x128-TEM_search.emi")), read_frame(_file("128x128-TEM_search_1.ser"))
    np.testing.assert_array_equal(a.data, b.data)


def test_eels_spectrum_is_refused_as_not_an_image():
    path = _file("08_carbon.dm3")
    with pytest.raises(FrameReadError, match="not an image.*2048 channels.*eV") as exc:
        read_frame(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("ext", ["dm3", "dm4"])
def test_non_square_pixels_are_resampled_to_the_finer_scale_with_a_warning(ext):
    path = _file(f"dmTest_float32_nonSquare_diffPixelSize.{ext}")
    with pytest.warns(FrameReadWarning, match=r"non-square pixels \(y 0.2 nm, x 1 nm\)"):
        f = read_frame(path)
    # y 2.0 Å = 0.2 nm, x 1.0 nm: x is upsampled 5x, the field of view is kept
    assert f.pixel_scale_nm == pytest.approx(0.2)
    assert f.data.shape == (64, 640)


@pytest.mark.parametrize(
    "name, n, shape, pixel_nm",
    [("test_stackbuilder_imagestack.dm3", 3, (2, 16), 59.9829), ("fei_example_tem_stack.emd", 2, (3, 3), 0.0081729)],
)
def test_stacks_need_frame_or_sum(name, n, shape, pixel_nm):
    import rsciio.digitalmicrograph
    import rsciio.emd

    path = _file(name)
    with pytest.raises(FrameReadError, match=rf"stack of {n} frames.*--frame K.*--sum") as exc:
        read_frame(path)
    assert str(path) in str(exc.value)
    plugin = rsciio.emd if name.endswith(".emd") else rsciio.digitalmicrograph
    stored = np.asarray(plugin.file_reader(str(path))[0]["data"], dtype=np.float64)
    last = _quiet_read(path, frame=n - 1)
    assert last.data.shape == shape and last.pixel_scale_nm == pytest.approx(pixel_nm, rel=1e-4)
    np.testing.assert_array_equal(last.data, stored[n - 1])
    total = _quiet_read(path, frame="sum")
    np.testing.assert_allclose(total.data, stored.sum(axis=0), rtol=1e-6)
    with pytest.raises(FrameReadError, match=rf"not one of the {n} frames"):
        read_frame(path, frame=n)


def test_npy_stack_frame_and_sum(tmp_path):
    cube = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "c.npy", cube)
    np.testing.assert_array_equal(read_frame(tmp_path / "c.npy", frame=1).data, cube[1])
    np.testing.assert_array_equal(read_frame(tmp_path / "c.npy", frame="sum").data, cube.sum(0))


@pytest.mark.parametrize(
    "unit, nm",
    [
        ("nm", 1.0),
        ("n_m", 1.0),
        ("NM", 1.0),
        ("Å", 0.1),
        ("\u212b", 0.1),
        ("A", 0.1),
        ("angstrom", 0.1),
        ("pm", 1e-3),
        ("µm", 1e3),
        ("\u03bcm", 1e3),
        ("um", 1e3),
        ("m", 1e9),
        ("1/nm", None),
        ("s", None),
        ("", None),
        ("[]", None),
        (None, None),
    ],
)
def test_length_unit_spellings(unit, nm):
    assert length_unit_nm(unit) == (pytest.approx(nm) if nm else None)


def test_grey_png_stored_as_rgba_reads_as_one_channel():
    images = SHARED / "real" / "tem_particles" / "images"
    path = images / "image_0.png"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    from PIL import Image

    rgba = np.asarray(Image.open(path))
    f = _quiet_read(path)
    assert f.data.shape == rgba.shape[:2] and f.pixel_scale_nm is None
    np.testing.assert_array_equal(f.data, rgba[..., 0])


def test_8bit_png_and_jpeg_frames(tmp_path):
    from PIL import Image

    grey = (np.arange(20 * 30).reshape(20, 30) % 251).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(grey).save(tmp_path / "g.jpg", quality=100)
    np.testing.assert_array_equal(_quiet_read(tmp_path / "g.png").data, grey)
    jpg = _quiet_read(tmp_path / "g.jpg")
    assert jpg.data.shape == (20, 30) and jpg.pixel_scale_nm is None
    assert np.abs(jpg.data - grey).mean() < 3  # lossy, but the same frame


def test_colour_png_with_different_channels_warns_how_it_was_read(tmp_path):
    from PIL import Image

    rgb = np.zeros((6, 7, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.warns(FrameReadWarning, match="luminance"):
        f = read_frame(tmp_path / "c.png")
    assert f.data.shape == (6, 7) and f.data[0, 0] == pytest.approx(0.299 * 200, rel=1e-3)


def test_cli_preprocess_reads_a_stack_frame(tmp_path):
    from typer.testing import CliRunner

    from temshift.cli import _register, app

    _register()
    cube = np.random.default_rng(0).poisson(500, (3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "s.npy", cube)
    runner = CliRunner()
    refused = runner.invoke(app, ["preprocess", str(tmp_path / "s.npy"), "--out", str(tmp_path / "a")])
    assert refused.exit_code != 0 and "--frame" in str(refused.exception or refused.output)
    for flags in (["--frame", "2"], ["--sum"]):
        res = runner.invoke(app, ["preprocess", str(tmp_path / "s.npy"), "--out", str(tmp_path / "b"), *flags])
        assert res.exit_code == 0, res.output
        assert np.load(tmp_path / "b" / "s.npy").shape == (64, 64)
