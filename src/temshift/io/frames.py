"""Raw camera frames: read (RosettaSciIO / numpy) and write (float32 TIFF)."""

from __future__ import annotations

import contextlib
import importlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from temshift.errors import FrameReadError
from temshift.io.atomic import atomic_path

#: file suffix -> RosettaSciIO plugin module
RSCIIO_READERS = {
    ".dm3": "rsciio.digitalmicrograph",
    ".dm4": "rsciio.digitalmicrograph",
    ".emd": "rsciio.emd",
    ".ser": "rsciio.tia",
    ".tif": "rsciio.tiff",
    ".tiff": "rsciio.tiff",
}
FRAME_SUFFIXES = tuple(RSCIIO_READERS) + (".npy",)

#: length unit (as written by DM, TIA, EMD, ImageJ) -> nanometres
_UNIT_TO_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "å": 0.1,
    "Å": 0.1,
    "a": 0.1,
    "angstrom": 0.1,
    "angstroms": 0.1,
    "pm": 1e-3,
    "µm": 1e3,
    "μm": 1e3,
    "um": 1e3,
    "micron": 1e3,
    "mm": 1e6,
    "m": 1e9,
}


class PixelScaleMismatchWarning(UserWarning):
    """The pixel size recorded in a frame disagrees with the expected (catalog) value."""


@dataclass
class Frame:
    """One raw frame.

    Attributes
    ----------
    data : numpy.ndarray
        2D float32 image (counts for camera frames).
    pixel_scale_nm : float or None
        Pixel size in nm per pixel when the file records one in a length unit.
    path : Path
        The file it was read from.
    """

    data: np.ndarray
    pixel_scale_nm: float | None
    path: Path

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape


def _fail(path: Path, why: str) -> FrameReadError:
    return FrameReadError(f"{path}: {why}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _scale_nm(axes: list[dict]) -> float | None:
    """Pixel size in nm from the two signal axes (x = last), or None when not a length."""
    if len(axes) < 2:
        return None
    x = axes[-1]
    unit = x.get("units")
    scale = x.get("scale")
    if not unit or scale is None or not np.isfinite(scale) or scale <= 0:
        return None
    factor = _UNIT_TO_NM.get(str(unit).strip()) or _UNIT_TO_NM.get(str(unit).strip().lower())
    if factor is None:  # 1/nm, s, px, ...: not a real-space length
        return None
    return float(scale) * factor


@contextlib.contextmanager
def _quiet_tifffile():
    """Silence tifffile's log lines on broken files; the error we raise says it once."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _read_rsciio(path: Path) -> tuple[np.ndarray, float | None]:
    plugin = importlib.import_module(RSCIIO_READERS[path.suffix.lower()])
    try:
        with _quiet_tifffile():
            signals = plugin.file_reader(str(path))
    except Exception as exc:  # every plugin raises its own types on bad files
        raise _fail(path, f"cannot read frame ({_first_line(exc)})") from None
    if not signals:
        raise _fail(path, "file holds no image")
    # EMD/TIA files may hold several signals: take the first 2D image
    for sig in signals:
        data = np.asarray(sig["data"])
        if np.squeeze(data).ndim == 2:
            axes = [a for a, n in zip(sig["axes"], data.shape) if n != 1] if data.ndim > 2 else sig["axes"]
            return np.squeeze(data), _scale_nm(axes)
    shape = np.asarray(signals[0]["data"]).shape
    raise _fail(path, f"not a 2D image (shape {shape})")


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise _fail(path, f"cannot read frame ({_first_line(exc)})") from None


def read_frame(path, expected_pixel_scale_nm: float | None = None) -> Frame:
    """Read a raw frame as float32.

    Parameters
    ----------
    path : str or Path
        ``.dm3``, ``.dm4``, ``.emd``, ``.ser``, ``.tif``/``.tiff`` (RosettaSciIO) or ``.npy``.
    expected_pixel_scale_nm : float, optional
        Pixel size in nm from the catalog; a recorded size that differs by more than 2 %
        raises a `PixelScaleMismatchWarning`.

    Returns
    -------
    Frame
        ``data`` float32 2D, ``pixel_scale_nm`` (nm/pixel, None when not recorded).

    Raises
    ------
    FrameReadError
        Missing, empty, corrupt, truncated, non-2D, non-numeric or unsupported file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FRAME_SUFFIXES:
        raise _fail(path, f"unsupported frame format {path.suffix or '(no suffix)'!r} (use {', '.join(FRAME_SUFFIXES)})")
    if not path.is_file():
        raise _fail(path, "frame file not found")
    if path.stat().st_size == 0:
        raise _fail(path, "empty file")
    if suffix == ".npy":
        data, scale_nm = _read_npy(path), None
    else:
        data, scale_nm = _read_rsciio(path)
    if data.dtype.kind not in "biuf" or data.dtype.names is not None:
        raise _fail(path, f"not a grey-level image (dtype {data.dtype})")
    if data.ndim != 2 or min(data.shape) == 0:
        raise _fail(path, f"not a 2D image (shape {data.shape})")
    data = np.ascontiguousarray(data, dtype=np.float32)
    if not np.isfinite(data).all():
        raise _fail(path, "frame contains NaN or infinite values")
    if scale_nm is not None and expected_pixel_scale_nm:
        if abs(scale_nm / float(expected_pixel_scale_nm) - 1.0) > 0.02:
            warnings.warn(
                f"{path}: recorded pixel scale {scale_nm:.5g} nm differs from expected "
                f"{float(expected_pixel_scale_nm):.5g} nm by more than 2 %",
                PixelScaleMismatchWarning,
                stacklevel=2,
            )
    return Frame(data=data, pixel_scale_nm=scale_nm, path=path)


def write_tiff_frame(path, data, pixel_scale_nm: float | None = None) -> Path:
    """Write a 2D frame as float32 TIFF (atomically) with its pixel size.

    The scale is stored the way RosettaSciIO writes it (ImageJ/DM compatible tags),
    so `read_frame` returns it as ``pixel_scale_nm``.

    Parameters
    ----------
    path : str or Path
        Output ``.tif``/``.tiff``.
    data : array_like
        2D image.
    pixel_scale_nm : float, optional
        Pixel size in nm per pixel.
    """
    from rsciio.tiff import file_writer

    path = Path(path)
    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"write_tiff_frame: expected a 2D image, got shape {data.shape}")
    scale, units = (float(pixel_scale_nm), "nm") if pixel_scale_nm else (1.0, None)
    axes = [
        {"name": name, "size": n, "scale": scale, "offset": 0.0, "units": units, "navigate": False, "index_in_array": i}
        for i, (name, n) in enumerate(zip(("height", "width"), data.shape))
    ]
    signal = {"data": data, "axes": axes, "metadata": {}, "original_metadata": {}}
    with atomic_path(path) as tmp:
        file_writer(str(tmp), signal)
    return path
