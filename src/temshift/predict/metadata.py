"""What is known about a frame before it is predicted, and where each value came from.

Precedence, for every value: a value given by the user (``flag``: ``--pixel-scale``,
``--dose``) over one recorded in the frame file (``file``: the pixel size the acquisition
software wrote) over the catalog row with the frame's file name (``catalog``). Doses are
not recorded in the formats read here, so they come from a flag or the catalog. A frame
with no pixel scale from any of them gets one estimated from its lattice fringes
(``estimated``, :func:`with_estimated_scale`) when the estimate is confident.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Source = Literal["flag", "file", "catalog", "estimated"]
"""Where a metadata value came from."""


@dataclass(frozen=True)
class FrameMetadata:
    """Recorded conditions of one frame, each with its source (None when unknown).

    Attributes
    ----------
    path : str
        The frame file.
    pixel_scale_nm, pixel_scale_source : float or None, str or None
        Pixel size, nm/pixel, and where it came from (``flag``, ``file``, ``catalog`` or
        ``estimated`` from lattice fringes).
    dose_e_per_A2, dose_source : float or None, str or None
        Electron dose, e/A^2 (``flag`` or ``catalog``).
    file_pixel_scale_nm : float or None
        The pixel size recorded in the file, nm/pixel, also when a flag overrides it.
    material, diameter_nm : str or None, float or None
        Particle material and diameter (nm) from the catalog (used by ``zoo:auto``).
    frame : int, "sum" or None
        Which frame of a stack was read (see :func:`temshift.io.read_frame`).
    notes : tuple of str
        Warnings given while reading the file (how it was read, a pixel size that disagrees
        with the catalog, how the pixel scale was estimated or why it was not).
    scale_estimate : dict or None
        The lattice-fringe estimate of the pixel scale when one was tried and found fringes
        (:class:`temshift.preprocess.scale_estimate.ScaleEstimate` fields, ``used``).
    """

    path: str
    pixel_scale_nm: float | None = None
    pixel_scale_source: Source | None = None
    dose_e_per_A2: float | None = None
    dose_source: Source | None = None
    file_pixel_scale_nm: float | None = None
    material: str | None = None
    diameter_nm: float | None = None
    frame: int | str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    scale_estimate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: each value next to its source."""
        d = asdict(self)
        d["notes"] = list(self.notes)
        return {
            "path": d["path"],
            "pixel_scale_nm": {"value": d["pixel_scale_nm"], "source": d["pixel_scale_source"]},
            "dose_e_per_A2": {"value": d["dose_e_per_A2"], "source": d["dose_source"]},
            "file_pixel_scale_nm": d["file_pixel_scale_nm"],
            "material": {"value": d["material"], "source": "catalog" if d["material"] else None},
            "diameter_nm": {"value": d["diameter_nm"], "source": "catalog" if d["diameter_nm"] else None},
            "frame": d["frame"],
            "notes": d["notes"],
            "pixel_scale_estimate": d["scale_estimate"],
        }


def _positive(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def catalog_metadata(path: str | Path, catalog: Any = None) -> dict[str, Any]:
    """Pixel scale (nm/pixel), dose (e/A^2), material and diameter (nm) of a frame from its catalog row.

    Parameters
    ----------
    path : str or Path
        Frame file; matched on its file name.
    catalog : Catalog, optional
        Defaults to the published catalog.

    Returns
    -------
    dict
        ``pixel_scale_nm``, ``dose_e_per_A2``, ``material``, ``diameter_nm``: None when the
        frame is not listed or the value is missing, not positive or not a number.
    """
    from temshift.catalog import Catalog

    cat = catalog if catalog is not None else Catalog.published()
    rows = cat.df[cat.df["file"].astype(str) == Path(path).name]
    out: dict[str, Any] = {"pixel_scale_nm": None, "dose_e_per_A2": None, "material": None, "diameter_nm": None}
    if len(rows):
        row = rows.iloc[0]
        for key in ("pixel_scale_nm", "dose_e_per_A2", "diameter_nm"):
            out[key] = _positive(row.get(key))
        material = str(row.get("material", "")).strip()
        out["material"] = material if material not in ("", "nan") else None
    return out


def read_frame_metadata(
    path: str | Path,
    *,
    pixel_scale_nm: float | None = None,
    dose_e_per_A2: float | None = None,
    catalog: Any = None,
    frame: int | str | None = None,
) -> tuple[Any, FrameMetadata]:
    """Read a frame and settle its metadata: flag > file > catalog.

    Parameters
    ----------
    path : str or Path
        The frame file (any format of :func:`temshift.io.read_frame`).
    pixel_scale_nm, dose_e_per_A2 : float, optional
        Values given by the user (they win).
    catalog : Catalog, optional
        Looked up by file name (default: the published catalog).
    frame : int or "sum", optional
        Frame of a stack.

    Returns
    -------
    frame : temshift.io.Frame
    metadata : FrameMetadata

    Raises
    ------
    FrameReadError
        The file cannot be read as a frame.
    PixelScaleError
        A pixel scale from the file or the catalog outside the plausible range (the error
        says where it came from).
    """
    from temshift.io import read_frame
    from temshift.units import check_pixel_scale_nm

    path = Path(path)
    cat = catalog_metadata(path, catalog)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = read_frame(path, expected_pixel_scale_nm=cat["pixel_scale_nm"], frame=frame)
    scale: float | None
    scale_src: Source | None
    dose: float | None
    dose_src: Source | None
    if pixel_scale_nm:
        scale, scale_src = pixel_scale_nm, "flag"
    elif data.pixel_scale_nm:
        scale, scale_src = data.pixel_scale_nm, "file"
    elif cat["pixel_scale_nm"]:
        scale, scale_src = cat["pixel_scale_nm"], "catalog"
    else:
        scale, scale_src = None, None
    if scale and scale_src != "flag":  # a recorded size outside the range: say where it came from
        where = "recorded in the file" if scale_src == "file" else "from the catalog"
        scale = check_pixel_scale_nm(
            scale, f"{path}: pixel scale {where} (pass --pixel-scale)", suggest_unit=scale_src != "file"
        )
    if dose_e_per_A2:
        dose, dose_src = dose_e_per_A2, "flag"
    elif cat["dose_e_per_A2"]:
        dose, dose_src = cat["dose_e_per_A2"], "catalog"
    else:
        dose, dose_src = None, None
    meta = FrameMetadata(
        str(path),
        scale,
        scale_src,
        dose,
        dose_src,
        data.pixel_scale_nm,
        cat["material"],
        cat["diameter_nm"],
        frame,
        tuple(str(w.message) for w in caught),
    )
    return data, meta


def with_estimated_scale(
    data: Any, meta: FrameMetadata, *, material: str | None = None, min_confidence: float | None = None
) -> FrameMetadata:
    """`meta` with a pixel scale estimated from the frame's lattice fringes, when it has none.

    Parameters
    ----------
    data : numpy.ndarray
        The raw frame (counts).
    meta : FrameMetadata
        Its metadata; returned unchanged when it has a pixel scale.
    material : str, optional
        Particle material (overrides the catalog's, ``meta.material``).
    min_confidence : float, optional
        Confidence from which the estimate is used (default
        :data:`temshift.preprocess.scale_estimate.MIN_CONFIDENCE`).

    Returns
    -------
    FrameMetadata
        With ``pixel_scale_source="estimated"`` and a note saying what was estimated from
        which reflection; without a confident estimate the scale stays None and a note says
        why (prediction then assumes the model's working scale, as the shift report says).
        The catalog's material is used when its lattice is known, else fcc Au is assumed.
    """
    from dataclasses import replace

    from temshift.errors import PreprocessError
    from temshift.preprocess import scale_estimate as se

    if meta.pixel_scale_nm is not None:
        return meta
    threshold = se.MIN_CONFIDENCE if min_confidence is None else min_confidence
    material = material or meta.material
    try:
        if material is not None:
            se.reflections(material)
    except PreprocessError:
        material = None  # a material of unknown lattice: the default assumption, said in the estimate
    est = se.estimate_pixel_scale(data, material)
    if est is None:
        note = "frame pixel scale unknown: no lattice fringes to estimate it from"
        return replace(meta, notes=(*meta.notes, note))
    used = est.confidence >= threshold
    record = {**asdict(est), "matched": list(est.matched), "used": used}
    if not used:
        note = (
            f"frame pixel scale unknown: lattice-fringe estimate {est.pixel_scale_nm:.3g} nm/px "
            f"({est.reflection}) not used, confidence {est.confidence:.2f} < {threshold:g}"
        )
        return replace(meta, notes=(*meta.notes, note), scale_estimate=record)
    return replace(
        meta,
        pixel_scale_nm=est.pixel_scale_nm,
        pixel_scale_source="estimated",
        notes=(*meta.notes, f"frame pixel scale unknown: {est.describe()}"),
        scale_estimate=record,
    )
