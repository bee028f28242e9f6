"""Particle label masks: PNG/TIFF, any nonzero pixel is particle."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from temshift.errors import FrameReadError
from temshift.io.atomic import atomic_path

LABEL_SUFFIXES = (".png", ".tif", ".tiff")


class LabelReadWarning(UserWarning):
    """A label was read by a rule the file does not state (colour channels, values other than 0/1/255)."""


def _load(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".png":
        from PIL import Image

        with Image.open(path) as im:
            im.load()
            return np.asarray(im)
    import tifffile

    return np.asarray(tifffile.imread(path))


def read_label(path: str | os.PathLike[str], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label mask as uint8 {0, 1} (1 = nanoparticle).

    Parameters
    ----------
    path : str or Path
        Single-channel PNG or TIFF; grey/RGB(A) images are accepted, any nonzero
        colour channel counts as particle (alpha is ignored). Colour labels whose channels
        differ, and labels with values other than 0, 1 and 255, are read the same way with a
        `LabelReadWarning` saying so.
    shape : (int, int), optional
        Expected shape in pixels (the frame's); a different shape is an error.

    Raises
    ------
    FrameReadError
        Missing, empty, corrupt, unsupported, non-2D, or wrong-shape file.
    """
    path = Path(path)
    if path.suffix.lower() not in LABEL_SUFFIXES:
        raise FrameReadError(f"{path}: unsupported label format {path.suffix!r} (use .png, .tif, .tiff)")
    if not path.is_file():
        raise FrameReadError(f"{path}: label file not found")
    if path.stat().st_size == 0:
        raise FrameReadError(f"{path}: empty file")
    try:
        mask = _load(path)
    except Exception as exc:  # noqa: BLE001  (Pillow/tifffile decoder errors: one line naming the file)
        msg = str(exc).strip().splitlines()
        raise FrameReadError(f"{path}: cannot read label ({type(exc).__name__}: {msg[0] if msg else ''})") from None
    if mask.ndim == 3 and mask.shape[-1] in (3, 4):
        colour = mask[..., :3]
        if not (colour == colour[..., :1]).all():
            warnings.warn(
                f"{path}: colour label (channels differ), read as particle wherever any of R, G, B "
                "is nonzero (alpha ignored)",
                LabelReadWarning,
                stacklevel=2,
            )
        mask = np.asarray(colour.any(axis=-1))
    if mask.ndim != 2:
        raise FrameReadError(f"{path}: label is not a 2D image (shape {mask.shape})")
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise FrameReadError(f"{path}: label shape {tuple(mask.shape)} does not match frame shape {tuple(shape)}")
    if mask.dtype != bool:
        values = np.unique(mask)
        odd = values[~np.isin(values, (0, 1, 255))]
        if odd.size:
            shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if values.size > 6 else "")
            warnings.warn(
                f"{path}: label values {{{shown}}} are not only 0/1/255; read every nonzero pixel as particle",
                LabelReadWarning,
                stacklevel=2,
            )
    out: np.ndarray = (mask != 0).astype(np.uint8)
    return out


def label_png_bytes(mask: ArrayLike, compress_level: int | None = None) -> bytes:
    """The PNG file :func:`write_label_png` writes for `mask`, in memory (the same bytes)."""
    import io

    buffer = io.BytesIO()
    _save_label_png(buffer, mask, compress_level)
    return buffer.getvalue()


def _save_label_png(target: Any, mask: ArrayLike, compress_level: int | None) -> None:
    from PIL import Image

    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"write_label_png: expected a 2D mask, got shape {arr.shape}")
    kw = {} if compress_level is None else {"compress_level": compress_level}
    # uint8 directly: no int64 copy of a 4096^2 mask
    Image.fromarray(np.multiply(arr != 0, 255, dtype=np.uint8), mode="L").save(target, format="PNG", **kw)


def write_label_png(path: str | os.PathLike[str], mask: ArrayLike, compress_level: int | None = None) -> Path:
    """Write a mask as an 8-bit greyscale PNG (0 background, 255 particle), atomically.

    Any nonzero value of `mask` is particle; 255 keeps the file viewable. `compress_level`
    is zlib's (0-9; default Pillow's 6): the pixels are the same at every level.
    """
    target = Path(path)
    if np.ndim(mask) != 2:
        raise ValueError(f"write_label_png: expected a 2D mask, got shape {np.shape(mask)}")
    with atomic_path(target) as tmp:
        _save_label_png(tmp, mask, compress_level)
    return target
