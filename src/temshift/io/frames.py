"""Raw camera frames: read (RosettaSciIO, Pillow for PNG/JPEG, numpy) and write (float32 TIFF)."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from temshift.errors import FrameReadError
from temshift.io.atomic import atomic_path
from temshift.units import length_unit_nm

#: relative difference of the y and x pixel sizes below which pixels count as square
SQUARE_PIXEL_TOLERANCE = 1e-3


class PixelScaleMismatchWarning(UserWarning):
    """The pixel size recorded in a frame disagrees with the expected (catalog) value."""


class FrameReadWarning(UserWarning):
    """A frame was read, but not exactly as stored (resampled pixels, colour channels merged)."""


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


@dataclass
class RawFrame:
    """What a frame reader returns (the one schema every entry of `FRAME_READERS` follows).

    Attributes
    ----------
    data : numpy.ndarray
        The stored array, numeric, any dtype: image rows and columns are the last two axes,
        preceded by `stack_dims` axes of frames (a stack or time series).
    axes : list of dict
        One per array axis, in RosettaSciIO's axis-dict form: optional ``name`` (str), ``units``
        (a length unit such as ``"nm"`` or ``"Å"``; anything else means no real-space size) and
        ``scale`` (the pixel size in those units). An empty dict means nothing is known.
    stack_dims : int
        Leading axes that are frames (navigation), not image rows/columns.
    """

    data: np.ndarray
    axes: list[dict[str, Any]]
    stack_dims: int


@dataclass(frozen=True)
class FrameFormat:
    """One entry of `FRAME_READERS`: a file format, its suffixes and its reader.

    Attributes
    ----------
    name : str
        Format name (the table key).
    suffixes : tuple of str
        Lower-case file suffixes with the dot (``".dm3"``); each belongs to one format.
    reader : callable
        ``reader(path) -> RawFrame``; raises `FrameReadError` naming the file on a bad file.
    description : str
        One line for docs and error messages.
    """

    name: str
    suffixes: tuple[str, ...]
    reader: Callable[[Path], RawFrame]
    description: str


def _fail(path: Path, why: str) -> FrameReadError:
    return FrameReadError(f"{path}: {why}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _axis_nm(axis: dict[str, Any]) -> float | None:
    """Size of one pixel along `axis` in nm, or None when it is not a real-space length."""
    scale = axis.get("scale")
    factor = length_unit_nm(axis.get("units"))
    if factor is None or scale is None:  # 1/nm, s, eV, px, no unit: not a real-space length
        return None
    scale = float(scale)
    return scale * factor if np.isfinite(scale) and scale > 0 else None


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """Silence tifffile's log lines on broken files; the error we raise says it once."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _signal_raw(sig: dict[str, Any]) -> RawFrame:
    """A RosettaSciIO signal dict as `RawFrame`: size-1 axes dropped, navigation axes first."""
    data = np.asarray(sig["data"])
    axes = list(sig.get("axes") or [])
    if len(axes) != data.ndim:
        axes = [{} for _ in range(data.ndim)]
    keep = [i for i, n in enumerate(data.shape) if n != 1]
    data = data.reshape([data.shape[i] for i in keep])
    axes = [axes[i] for i in keep]
    if any("navigate" in a for a in axes):
        nav = [i for i, a in enumerate(axes) if a.get("navigate")]
        sig_ax = [i for i, a in enumerate(axes) if not a.get("navigate")]
        order = nav + sig_ax
        data, axes = np.transpose(data, order), [axes[i] for i in order]
        stack_dims = len(nav)
    else:
        stack_dims = max(0, data.ndim - 2)
    return RawFrame(data, axes, stack_dims)


def _rsciio_reader(plugin_name: str) -> Callable[[Path], RawFrame]:
    """A reader through the RosettaSciIO plugin module `plugin_name` (imported on first use)."""

    def read(path: Path) -> RawFrame:
        return _read_rsciio(path, plugin_name)

    return read


def _read_rsciio(path: Path, plugin_name: str) -> RawFrame:
    plugin = importlib.import_module(plugin_name)
    try:
        with _quiet_tifffile(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # plugins warn about metadata they skip
            signals = plugin.file_reader(str(path))
    except Exception as exc:  # noqa: BLE001  (every plugin raises its own types on bad files)
        raise _fail(path, f"cannot read frame ({_first_line(exc)})") from None
    if not signals:
        raise _fail(path, "file holds no image")
    raws = [_signal_raw(sig) for sig in signals]
    # EMD/TIA files may hold several signals (spectra beside images): take the first image
    for raw in raws:
        if raw.data.ndim - raw.stack_dims == 2:
            return raw
    return raws[0]


def _read_image(path: Path) -> RawFrame:
    """8/16-bit PNG or JPEG: grey, or colour with equal channels; other colours read as luminance."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":  # palette: look the colours up
                data = np.asarray(im.convert("RGBA"))
                mode = "RGBA"
            else:
                data = np.asarray(im)
    except Exception as exc:  # noqa: BLE001  (Pillow's many decoder errors: one line naming the file)
        raise _fail(path, f"cannot read frame ({_first_line(exc)})") from None
    if data.ndim == 3:
        colour = data[..., :3] if data.shape[-1] >= 3 else data[..., :1]
        if (colour == colour[..., :1]).all():
            data = colour[..., 0]
        else:
            warnings.warn(
                f"{path}: {mode} image with different colour channels, read as luminance "
                "0.299 R + 0.587 G + 0.114 B (a camera frame has one channel)",
                FrameReadWarning,
                stacklevel=3,
            )
            data = colour.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    axes = [{"name": "y"}, {"name": "x"}]  # PNG/JPEG carry no pixel size that temshift trusts
    return RawFrame(data, axes, 0)


def _read_npy(path: Path) -> RawFrame:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001  (pickled, truncated or foreign files: one line naming the file)
        raise _fail(path, f"cannot read frame ({_first_line(exc)})") from None
    return RawFrame(data, [{} for _ in range(data.ndim)], max(0, data.ndim - 2))


#: format name -> `FrameFormat`, one entry per format; `register_frame_reader` adds one
FRAME_READERS: dict[str, FrameFormat] = {}


def register_frame_reader(
    name: str, suffixes: tuple[str, ...], reader: Callable[[Path], RawFrame], description: str
) -> FrameFormat:
    """Add a format to `FRAME_READERS` (a name or suffix already taken raises ValueError)."""
    suffixes = tuple(sfx.lower() for sfx in suffixes)
    taken = [sfx for sfx in suffixes if sfx in _FORMAT_OF]
    if name in FRAME_READERS or taken or not suffixes:
        raise ValueError(f"frame format {name!r}: name or suffix {taken or list(suffixes)} already registered")
    fmt = FrameFormat(name, suffixes, reader, description)
    FRAME_READERS[name] = fmt
    _FORMAT_OF.update(dict.fromkeys(suffixes, fmt))
    return fmt


def frame_suffixes() -> tuple[str, ...]:
    """Every suffix `read_frame` reads, in table order."""
    return tuple(_FORMAT_OF)


_FORMAT_OF: dict[str, FrameFormat] = {}  # suffix -> format, kept by register_frame_reader

register_frame_reader(
    "digitalmicrograph",
    (".dm3", ".dm4"),
    _rsciio_reader("rsciio.digitalmicrograph"),
    "Gatan DigitalMicrograph (RosettaSciIO)",
)
register_frame_reader("emd", (".emd",), _rsciio_reader("rsciio.emd"), "Velox / Berkeley EMD (RosettaSciIO)")
register_frame_reader("tia", (".ser", ".emi"), _rsciio_reader("rsciio.tia"), "FEI TIA (RosettaSciIO)")
register_frame_reader("tiff", (".tif", ".tiff"), _rsciio_reader("rsciio.tiff"), "TIFF (RosettaSciIO)")
register_frame_reader("image", (".png", ".jpg", ".jpeg"), _read_image, "8/16-bit PNG or JPEG (Pillow, no pixel size)")
register_frame_reader("npy", (".npy",), _read_npy, "numpy array (no pickles, no pixel size)")


def _describe(raw: RawFrame) -> str:
    """'shape (1, 2048)'-style description with what the axes say the data are."""
    n_signal = raw.data.ndim - raw.stack_dims
    if n_signal == 1:
        ax = raw.axes[-1]
        unit = ax.get("units") or "no unit"
        return (
            f"a 1-D signal, not an image ({raw.data.shape[-1]} channels along "
            f"{ax.get('name') or 'its axis'!r} in {unit}, e.g. a spectrum)"
        )
    return f"not a 2D image (shape {raw.data.shape})"


def _select(path: Path, raw: RawFrame, frame: int | str | None) -> np.ndarray:
    """The 2D image of `raw`: itself, or frame K / the sum of a stack."""
    n_signal = raw.data.ndim - raw.stack_dims
    if n_signal != 2 or raw.data.ndim > 3:
        raise _fail(path, _describe(raw) + ("" if n_signal != 2 else "; only stacks along one axis can be read"))
    if raw.data.ndim == 2:
        if frame not in (None, 0, "sum"):
            raise _fail(path, f"frame={frame!r} asked, but the file holds a single frame")
        return raw.data
    n = raw.data.shape[0]
    name = raw.axes[0].get("name") or "stack"
    if frame is None:
        raise _fail(
            path,
            f"not a 2D image (shape {raw.data.shape}): a stack of {n} frames along {name!r}; "
            f"choose one with --frame K (0-{n - 1}, read_frame(frame=K)) or sum them with --sum "
            f"(read_frame(frame='sum'))",
        )
    if frame == "sum":
        return np.asarray(raw.data.sum(axis=0, dtype=np.float64))
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not -n <= frame < n:
        raise _fail(path, f"frame={frame!r} is not one of the {n} frames (0-{n - 1}) of the stack")
    return np.asarray(raw.data[int(frame)])


def _square_pixels(path: Path, data: np.ndarray, axes: list[dict[str, Any]]) -> tuple[np.ndarray, float | None]:
    """The image on square pixels and their size in nm (None when the file records no length)."""
    sy, sx = _axis_nm(axes[-2]), _axis_nm(axes[-1])
    if sy is None and sx is None:
        return data, None
    if sy is None or sx is None:
        warnings.warn(
            f"{path}: a pixel size is recorded for one axis only ({sy or sx:.5g} nm); pixel size taken as unknown",
            FrameReadWarning,
            stacklevel=3,
        )
        return data, None
    if abs(sy - sx) <= SQUARE_PIXEL_TOLERANCE * max(sy, sx):
        return data, sx
    from scipy.ndimage import zoom

    fine = min(sy, sx)
    factors = (sy / fine, sx / fine)
    out = zoom(data.astype(np.float32), factors, order=1, mode="nearest", grid_mode=True)
    warnings.warn(
        f"{path}: non-square pixels (y {sy:.5g} nm, x {sx:.5g} nm) resampled to square "
        f"{fine:.5g} nm pixels ({data.shape[0]}x{data.shape[1]} -> {out.shape[0]}x{out.shape[1]})",
        FrameReadWarning,
        stacklevel=3,
    )
    return out, fine


def read_frame(
    path: str | os.PathLike[str], expected_pixel_scale_nm: float | None = None, *, frame: int | str | None = None
) -> Frame:
    """Read a raw frame as float32.

    Parameters
    ----------
    path : str or Path
        ``.dm3``, ``.dm4``, ``.emd`` (Velox, Berkeley), ``.ser``/``.emi`` (TIA),
        ``.tif``/``.tiff`` (RosettaSciIO), ``.png``/``.jpg``/``.jpeg`` (8/16 bit, Pillow) or
        ``.npy``: the formats of `FRAME_READERS`.
    expected_pixel_scale_nm : float, optional
        Pixel size in nm from the catalog; a recorded size that differs by more than 2 %
        raises a `PixelScaleMismatchWarning`.
    frame : int or "sum", optional
        For a stack or time series (DM image stacks, Velox series, 3-D ``.npy``): the frame
        to read (0-based), or ``"sum"`` for the sum of all frames (e.g. a drift-corrected
        series). Without it a stack is refused, and the error says so.

    Returns
    -------
    Frame
        ``data`` float32 2D, ``pixel_scale_nm`` (nm/pixel, None when not recorded).

    Notes
    -----
    Pixel sizes are read in any length unit the writers use (`temshift.units.length_unit_nm`:
    nm, ``n_m``, Å, pm, µm, ...). A frame whose y and x pixel sizes differ (some
    drift-corrected frames) is **resampled** to square pixels of the finer size (linear
    interpolation along the coarser axis) with a `FrameReadWarning`, not refused: every
    later step (flat field, pixel-scale matching, particle diameters in nm) assumes square
    pixels, and the finer size keeps all the recorded detail. Colour PNG/JPEG frames with
    equal channels are read as one channel; with different channels as luminance, with a
    `FrameReadWarning`. PNG/JPEG frames have no pixel size (None).

    Raises
    ------
    FrameReadError
        Missing, empty, corrupt, truncated, non-2D (a spectrum, a stack without `frame`),
        non-numeric or unsupported file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        raise _fail(path, "is a folder, not a frame file")
    if suffix not in _FORMAT_OF:
        raise _fail(path, f"unsupported frame format {path.suffix or '(no suffix)'!r} (use {', '.join(_FORMAT_OF)})")
    if not path.is_file():
        raise _fail(path, "frame file not found")
    if path.stat().st_size == 0:
        raise _fail(path, "empty file")
    raw = _FORMAT_OF[suffix].reader(path)
    if raw.data.dtype.kind not in "biuf" or raw.data.dtype.names is not None:
        raise _fail(path, f"not a grey-level image (dtype {raw.data.dtype})")
    if raw.data.size == 0:
        raise _fail(path, f"not a 2D image (shape {raw.data.shape})")
    data = _select(path, raw, frame)
    data, scale_nm = _square_pixels(path, data, raw.axes)
    data = np.ascontiguousarray(data, dtype=np.float32)
    if not np.isfinite(data).all():
        raise _fail(path, "frame contains NaN or infinite values")
    if scale_nm is not None and expected_pixel_scale_nm and abs(scale_nm / float(expected_pixel_scale_nm) - 1) > 0.02:
        warnings.warn(
            f"{path}: recorded pixel scale {scale_nm:.5g} nm differs from expected "
            f"{float(expected_pixel_scale_nm):.5g} nm by more than 2 %",
            PixelScaleMismatchWarning,
            stacklevel=2,
        )
    return Frame(data=data, pixel_scale_nm=scale_nm, path=path)


def write_tiff_frame(path: str | os.PathLike[str], data: ArrayLike, pixel_scale_nm: float | None = None) -> Path:
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

    target = Path(path)
    image = np.ascontiguousarray(data, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"write_tiff_frame: expected a 2D image, got shape {image.shape}")
    scale, units = (float(pixel_scale_nm), "nm") if pixel_scale_nm else (1.0, None)
    axes = [
        {"name": name, "size": n, "scale": scale, "offset": 0.0, "units": units, "navigate": False, "index_in_array": i}
        for i, (name, n) in enumerate(zip(("height", "width"), image.shape, strict=True))
    ]
    signal = {"data": image, "axes": axes, "metadata": {}, "original_metadata": {}}
    with atomic_path(target) as tmp:
        file_writer(str(tmp), signal)
    return target
