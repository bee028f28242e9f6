"""The metadata table of raw frames: read, validate, query."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from temshift.catalog.columns import (
    DEFAULT_ABS_TOL,
    FIELD_TO_PUBLISHED,
    FIELDS,
    NUMERIC_FIELDS,
    PUBLISHED_TO_FIELD,
)
from temshift.errors import CatalogError


def _normalize(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rename published columns to fields, check them, derive `session`."""
    df = df.rename(columns=PUBLISHED_TO_FIELD)
    missing = [FIELD_TO_PUBLISHED[f] for f in PUBLISHED_TO_FIELD.values() if f not in df.columns]
    if missing:
        raise CatalogError(f"{source}: missing column(s) {', '.join(repr(m) for m in missing)}")
    for field in NUMERIC_FIELDS:
        values = pd.to_numeric(df[field], errors="coerce")
        bad = values.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise CatalogError(
                f"{source}: row {i + 2}, column {FIELD_TO_PUBLISHED[field]!r}: non-numeric value {df[field].iloc[i]!r}"
            )
        df[field] = values.astype(float)
    _check_positive(df, source)
    for field in ("file", "folder", "date", "material", "shape", "support", "instrument"):
        df[field] = df[field].astype(str).str.strip()
    empty = df["file"].isin(["", "nan"])
    if empty.any():
        raise CatalogError(f"{source}: row {int(np.flatnonzero(empty.to_numpy())[0]) + 2}: empty 'File name'")
    # the same file name may occur in different folders (it does in the published table);
    # the same path twice is an error
    dup = df.duplicated(["folder", "file"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise CatalogError(
            f"{source}: row {i + 2}: duplicate file name {df['file'].iloc[i]!r} in folder {df['folder'].iloc[i]!r}"
        )
    df["session"] = df["date"] + " | " + df["folder"]
    extra = [c for c in df.columns if c not in FIELDS]
    return df[list(FIELDS) + extra].reset_index(drop=True)


def _check_positive(df: pd.DataFrame, source: str) -> None:
    """Refuse rows whose pixel scale or dose is not positive (or outside the pixel-scale range), naming the row."""
    from temshift.units import PixelScaleError, check_pixel_scale_nm

    for field in ("dose_e_per_A2", "pixel_scale_nm", "diameter_nm"):
        v = df[field].to_numpy(float)
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise CatalogError(
                f"{source}: row {i + 2} ({df['file'].iloc[i]}), column "
                f"{FIELD_TO_PUBLISHED[field]!r}: {v[i]:g} is not a positive number"
            )
    for i, v in enumerate(df["pixel_scale_nm"].to_numpy(float)):
        try:
            check_pixel_scale_nm(v, "")
        except PixelScaleError as exc:
            raise CatalogError(
                f"{source}: row {i + 2} ({df['file'].iloc[i]}), column {FIELD_TO_PUBLISHED['pixel_scale_nm']!r}{exc}"
            ) from None


def _field(name: str, columns: Iterable[str]) -> str:
    """Map a normalized or published column name to the normalized one."""
    columns = list(columns)
    if name in columns:
        return name
    if name in PUBLISHED_TO_FIELD:
        return str(PUBLISHED_TO_FIELD[name])
    lowered = {c.lower(): c for c in columns}
    if name.lower() in lowered:
        return lowered[name.lower()]
    known = ", ".join(list(FIELDS) + [c for c in columns if c not in FIELDS])
    raise CatalogError(f"unknown query field {name!r} (known: {known})")


def _mask(series: pd.Series, value: Any) -> np.ndarray:
    """Rows of `series` equal to `value`, a `(value, tol)` pair, or any of a list of values."""
    if isinstance(value, list):
        out = np.zeros(len(series), bool)
        for v in value:
            out |= _mask(series, v)
        return out
    if isinstance(value, tuple):
        if len(value) != 2:
            raise CatalogError(f"a tolerance condition is (value, tol), got {value!r}")
        center, tol = value
    else:
        center, tol = value, None
    numeric = pd.to_numeric(series, errors="coerce")
    if isinstance(center, (int, float, np.number)) and not isinstance(center, bool) and numeric.notna().all():
        tol = DEFAULT_ABS_TOL if tol is None else float(tol)
        close: np.ndarray = np.abs(numeric.to_numpy(float) - float(center)) <= tol + 1e-12
        return close.astype(bool)
    if tol is not None:
        raise CatalogError(f"a tolerance needs a numeric field; got {center!r}±{tol!r}")
    same: np.ndarray = (series.astype(str).str.lower() == str(center).strip().lower()).to_numpy()
    return same


class Catalog:
    """A table of raw frames and their metadata, one row per frame.

    Parameters
    ----------
    df : pandas.DataFrame
        Published or normalized columns; normalized on construction.
    source : str
        Where the table came from, used in error messages.
    root : Path, optional
        Repository root that frame paths are relative to (default: the table's folder).
    """

    def __init__(
        self, df: pd.DataFrame, source: str = "<catalog>", root: Path | None = None, *, normalized: bool = False
    ) -> None:
        self.source = source
        self.df = df.reset_index(drop=True) if normalized else _normalize(df.copy(), source)
        self.root = Path(root) if root is not None else None

    # construction
    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Catalog:
        """Read a catalog CSV in the published schema (extra columns are kept)."""
        path = Path(path)
        if not path.is_file():
            raise CatalogError(f"{path}: catalog file not found")
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise CatalogError(f"{path}: not a readable CSV table ({str(exc).splitlines()[0]})") from None
        except OSError as exc:
            raise CatalogError(f"{path}: cannot read the catalog ({exc.strerror or exc})") from None
        return cls(df, source=str(path), root=path.parent)

    @classmethod
    def published(cls) -> Catalog:
        """The authors' published table (407 frames), shipped with the package."""
        ref = resources.files("temshift") / "data" / "published_catalog.csv"
        with resources.as_file(ref) as path:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        return cls(df, source="published catalog")

    # access
    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        return f"Catalog({len(self)} frames from {self.source})"

    def rows(self) -> Iterator[dict[str, Any]]:
        """Iterate over rows as dicts of normalized fields."""
        return (row._asdict() if hasattr(row, "_asdict") else dict(row) for _, row in self.df.iterrows())

    def query(self, **conditions: Any) -> Catalog:
        """Select frames by metadata.

        Each keyword is a normalized field (``dose_e_per_A2``) or a published column
        name; each value is an exact value, a ``(value, tolerance)`` pair, or a list
        of alternatives. Numbers without a tolerance match within 1e-5; strings match
        case-insensitively.

        Raises
        ------
        CatalogError
            For an unknown field, or when a condition leaves no frame (naming it).
        """
        df = self.df
        for name, value in conditions.items():
            field = _field(name, df.columns)
            keep = _mask(df[field], value)
            if not keep.any():
                shown = f"{value[0]}±{value[1]}" if isinstance(value, tuple) else value
                before = f"the {len(df)} frames left" if len(df) < len(self.df) else f"any of the {len(df)} frames"
                raise CatalogError(f"no frame matches {field}={shown} among {before} ({self.source})")
            df = df[keep]
        return Catalog(df, source=self.source, root=self.root, normalized=True)

    # paths in the published layout
    def frame_path(self, row: Mapping[str, Any], root: str | os.PathLike[str] | None = None) -> Path:
        """``root/<folder>/<file>`` for a row (dict or Series)."""
        return Path(root if root is not None else self._root()) / str(row["folder"]) / str(row["file"])

    def label_path(self, row: Mapping[str, Any], root: str | os.PathLike[str] | None = None) -> Path:
        """``root/<folder>/Labels/<stem>_label.png`` for a row."""
        stem = Path(row["file"]).stem
        return Path(root if root is not None else self._root()) / str(row["folder"]) / "Labels" / f"{stem}_label.png"

    def _root(self) -> Path:
        if self.root is None:
            raise CatalogError(f"{self.source}: no repository root known; pass root=")
        return self.root

    # output
    def to_published(self) -> pd.DataFrame:
        """The table in the published schema: original column names, extra columns after."""
        df = self.df.drop(columns=["session"]).rename(columns=FIELD_TO_PUBLISHED)
        ordered = list(PUBLISHED_TO_FIELD)
        return df[ordered + [c for c in df.columns if c not in ordered]]

    def to_published_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the published-schema CSV atomically."""
        from temshift.io.atomic import atomic_path

        path = Path(path)
        table = self.to_published()
        for field in ("dose_e_per_A2",):  # keep integer doses looking like the published table
            col = FIELD_TO_PUBLISHED[field]
            if (table[col] == table[col].round()).all():
                table[col] = table[col].astype(int)
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
        return path

    def records(self, fields: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Rows as plain dicts (JSON-ready), optionally only some fields."""
        df = self.df if fields is None else self.df[list(fields)]
        return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in df.to_dict("records")]
