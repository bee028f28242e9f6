"""Length units as acquisition software writes them, and the pixel scales temshift accepts.

One place for both, so that file metadata, the catalog and command-line options are judged
alike: a pixel scale outside `PIXEL_SCALE_RANGE_NM` is almost always a value given in the
wrong unit (Å or µm taken as nm), and using it would resample a frame by a factor of
hundreds (a 4096² frame at "5 nm/px" for a 0.02 nm/px model asks for 61 GiB).
"""

from __future__ import annotations

import math
from typing import Any

from temshift.errors import TemshiftError

#: accepted pixel scales, nm/pixel (inclusive): HRTEM frames lie near 0.01-0.1
PIXEL_SCALE_RANGE_NM = (0.001, 10.0)

#: length unit (lower case, spaces/underscores/dots removed) -> nanometres
_LENGTH_TO_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "nanometre": 1.0,
    "nanometres": 1.0,
    "å": 0.1,
    "a": 0.1,
    "angstrom": 0.1,
    "angstroms": 0.1,
    "ångström": 0.1,
    "ang": 0.1,
    "pm": 1e-3,
    "picometer": 1e-3,
    "picometers": 1e-3,
    "µm": 1e3,
    "um": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometers": 1e3,
    "mm": 1e6,
    "m": 1e9,
    "meter": 1e9,
    "meters": 1e9,
    "metre": 1e9,
}


class PixelScaleError(TemshiftError):
    """A pixel scale is not positive, not finite, or outside `PIXEL_SCALE_RANGE_NM`."""


def length_unit_nm(unit: object) -> float | None:
    """Nanometres per `unit`, or None when `unit` is not a length (``1/nm``, ``s``, ``eV``, ``px``, empty).

    Spellings written by DigitalMicrograph, TIA, Velox, the Berkeley EMD writer and ImageJ
    are accepted: ``nm``, ``n_m`` (Berkeley EMD), ``Å``/``A``/``angstrom``, ``pm``,
    ``µm``/``μm`` (Greek mu)/``um``/``micron``, ``mm``, ``m``; case, spaces, underscores and
    dots are ignored (``n_m`` = ``nm``, ``Nm`` = ``nm``).
    """
    if unit is None:
        return None
    key = str(unit).strip().replace("μ", "µ").replace("Å", "å").lower()  # Greek mu / Angstrom sign
    key = key.replace("_", "").replace(" ", "").replace(".", "")
    return _LENGTH_TO_NM.get(key)


def _unit_hint(value_nm: float) -> str:
    if value_nm > PIXEL_SCALE_RANGE_NM[1]:
        return f": was it given in Å (= {value_nm / 10:g} nm) or pm (= {value_nm / 1000:g} nm)?"
    return f": was it given in µm (= {value_nm * 1000:g} nm) or in m?"


def check_pixel_scale_nm(value: Any, source: str, suggest_unit: bool = True) -> float:
    """Return `value` as float if it is a usable pixel scale in nm/pixel, else raise.

    Parameters
    ----------
    value : float
        Pixel scale, nm/pixel.
    source : str
        Where the value came from (``--pixel-scale``, ``FILE: recorded pixel size``,
        ``CATALOG: row 5``), put at the start of the message.
    suggest_unit : bool
        Add which unit the value was probably typed in (for values people type; a
        calibration read from a file is in a known unit and is just not an HRTEM scale).

    Raises
    ------
    PixelScaleError
        Not a number, not finite, not positive, or outside `PIXEL_SCALE_RANGE_NM`; the
        message suggests the unit the value was probably given in.
    """
    low, high = PIXEL_SCALE_RANGE_NM
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PixelScaleError(f"{source}: pixel scale {value!r} is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise PixelScaleError(f"{source}: pixel scale must be a positive number of nm/px, got {v:g}")
    if not low <= v <= high:
        hint = _unit_hint(v) if suggest_unit else ""
        raise PixelScaleError(f"{source}: {v:g} nm/px is outside {low:g}-{high:g} nm/px{hint}")
    return v
