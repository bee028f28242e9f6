"""Released models grouped by the real training set they were fitted to, and that set's catalog rows.

A models folder holds released ``*_model.h5`` weights and ``model_details.csv`` (columns
``Model Name, Fold, Dataset Trained On, Np Diameter (nm), Np Material, Pixel Scale (nm),
Dosage (e/A2)``). The table spells ``Unet_`` where the files are ``UNet_``, so file names
are matched without regard to case.

A training set maps to catalog conditions: material and diameter exactly, pixel scale within
0.0005 nm, dose within `DOSE_TOLERANCE` (relative), the support from the name (``UTC`` =
ultrathin carbon, ``SiN``) and, when the name gives one (``Sess0821``), the session's month
and year.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from temshift.errors import TemshiftError

DETAILS = "model_details.csv"
COLUMNS = {
    "Model Name": "model",
    "Fold": "fold",
    "Dataset Trained On": "dataset",
    "Np Diameter (nm)": "diameter_nm",
    "Np Material": "material",
    "Pixel Scale (nm)": "pixel_scale_nm",
    "Dosage (e/A2)": "dose_e_per_A2",
}
DOSE_TOLERANCE = 0.03
"""Relative dose tolerance: keeps a set's own spread (447-450 e/A2) and separates the nearest
distinct sets of the catalog (840 vs 884 e/A2 at 0.02 nm/px, 5 % apart)."""
PIXEL_SCALE_TOL_NM = 0.0005
SUPPORTS = {"UTC": "UT Carbon", "SiN": "SiN"}


class RealismError(TemshiftError):
    """A models folder or its table cannot be used for the realism benchmark."""


@dataclass(frozen=True)
class TrainingSet:
    """One real training set of released models.

    Attributes
    ----------
    name : str
        ``Dataset Trained On`` as the table gives it.
    material, diameter_nm, pixel_scale_nm, dose_e_per_A2
        Its conditions (table values).
    support : str or None
        From the name (``UTC`` -> ``"UT Carbon"``).
    session : (month, year) or None
        From ``SessMMYY`` in the name.
    models : tuple of (fold, path)
        Released weights, sorted by fold.
    """

    name: str
    material: str
    diameter_nm: float
    pixel_scale_nm: float
    dose_e_per_A2: float
    support: str | None = None
    session: tuple[int, int] | None = None
    models: tuple = field(default=(), compare=False)

    @property
    def key(self) -> str:
        """Short id, e.g. ``Au5nm_0.020nm_423e_s0821``."""
        s = f"_s{self.session[0]:02d}{self.session[1]:02d}" if self.session else ""
        return f"{self.material}{self.diameter_nm:g}nm_{self.pixel_scale_nm:.3f}nm_{self.dose_e_per_A2:g}e{s}"

    @property
    def label(self) -> str:
        """Axis label, e.g. ``423 e/Å², 0.020 nm/px``."""
        return f"{self.dose_e_per_A2:g} e/Å², {self.pixel_scale_nm:.3f} nm/px"

    def conditions(self) -> dict:
        return {
            "material": self.material,
            "diameter_nm": self.diameter_nm,
            "pixel_scale_nm": self.pixel_scale_nm,
            "dose_e_per_A2": self.dose_e_per_A2,
        }

    def matches(self, cond: dict) -> bool:
        """Whether reference conditions (material, diameter, pixel scale, dose, optional date) name this set."""
        if str(cond.get("material", self.material)) != self.material:
            return False
        if "diameter_nm" in cond and not math.isclose(float(cond["diameter_nm"]), self.diameter_nm, abs_tol=1e-6):
            return False
        if "pixel_scale_nm" in cond and abs(float(cond["pixel_scale_nm"]) - self.pixel_scale_nm) > PIXEL_SCALE_TOL_NM:
            return False
        if (
            "dose_e_per_A2" in cond
            and abs(float(cond["dose_e_per_A2"]) - self.dose_e_per_A2) > DOSE_TOLERANCE * self.dose_e_per_A2
        ):
            return False
        if "date" in cond and self.session is not None:
            month, _, year = str(cond["date"]).split("/")
            if (int(month), int(year) % 100) != self.session:
                return False
        return True


def _session(name: str):
    m = re.search(r"Sess(\d{2})(\d{2})", name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _support(name: str):
    for token, support in SUPPORTS.items():
        if re.search(rf"(^|_|\d|[a-z]){token}(_|$|[A-Z])", name):
            return support
    return None


def read_training_sets(models_dir) -> list[TrainingSet]:
    """The training sets of a models folder, each with its released weights.

    Raises
    ------
    RealismError
        No ``model_details.csv``, missing columns, a row whose file is absent, or a
        training set whose rows disagree on its conditions.
    """
    import pandas as pd

    d = Path(models_dir)
    table = d / DETAILS
    if not d.is_dir():
        raise RealismError(f"{d}: not a folder")
    if not table.is_file():
        raise RealismError(f"{d}: no {DETAILS} (it names each model's training set)")
    try:
        df = pd.read_csv(table)
    except (ValueError, OSError) as exc:
        raise RealismError(f"{table}: unreadable ({exc})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise RealismError(f"{table}: missing column {missing[0]!r}")
    if not len(df):
        raise RealismError(f"{table}: no rows")
    df = df.rename(columns=COLUMNS)
    files = {p.name.lower(): p for p in d.glob("*_model.h5")}
    groups: dict[str, dict] = {}
    for i, row in df.iterrows():
        where = f"{table}: row {i + 2}"
        path = files.get(str(row["model"]).strip().lower())
        if path is None:
            raise RealismError(f"{where}: model file {row['model']} not found in {d}")
        try:
            cond = (
                str(row["material"]).strip(),
                float(row["diameter_nm"]),
                float(row["pixel_scale_nm"]),
                float(row["dose_e_per_A2"]),
            )
            fold = int(row["fold"])
        except (TypeError, ValueError):
            raise RealismError(f"{where}: non-numeric fold, diameter, pixel scale or dose") from None
        if not all(math.isfinite(v) and v > 0 for v in cond[1:]):
            raise RealismError(f"{where}: diameter, pixel scale and dose must be positive")
        name = str(row["dataset"]).strip()
        g = groups.setdefault(name, {"cond": cond, "models": []})
        if g["cond"] != cond:
            raise RealismError(f"{where}: conditions {cond} differ from earlier rows of {name} {g['cond']}")
        g["models"].append((fold, path))
    out = []
    for name, g in groups.items():
        material, diameter, scale, dose = g["cond"]
        out.append(
            TrainingSet(
                name,
                material,
                diameter,
                scale,
                dose,
                _support(name),
                _session(name),
                tuple(sorted(g["models"], key=lambda m: m[0])),
            )
        )
    return sorted(out, key=lambda t: (t.pixel_scale_nm, t.dose_e_per_A2))


def catalog_query(ts: TrainingSet, catalog) -> dict:
    """`Catalog.query` keywords that select the catalog rows of training set `ts`.

    Raises
    ------
    RealismError
        When no catalog row matches (an unknown training set).
    """
    q = {
        "material": ts.material,
        "diameter_nm": ts.diameter_nm,
        "pixel_scale_nm": (ts.pixel_scale_nm, PIXEL_SCALE_TOL_NM),
        "dose_e_per_A2": (ts.dose_e_per_A2, round(DOSE_TOLERANCE * ts.dose_e_per_A2, 3)),
    }
    if ts.support:
        q["support"] = ts.support
    df = catalog.df
    if ts.session:
        month, year = ts.session
        dates = sorted({str(x) for x in df["date"] if re.fullmatch(rf"{month:02d}/\d{{2}}/{year:02d}", str(x))})
        if not dates:
            raise RealismError(f"training set {ts.name}: no catalog session in {month:02d}/{year:02d}")
        q["date"] = dates if len(dates) > 1 else dates[0]
    try:
        catalog.query(**q)
    except TemshiftError as exc:
        raise RealismError(
            f"training set {ts.name}: no catalog rows with {ts.material}, {ts.diameter_nm:g} nm, "
            f"{ts.pixel_scale_nm:g} nm/px, {ts.dose_e_per_A2:g} e/A2"
            + (f", support {ts.support}" if ts.support else "")
            + (f", session {ts.session[0]:02d}/{ts.session[1]:02d}" if ts.session else "")
            + f" ({exc})"
        ) from None
    return q
