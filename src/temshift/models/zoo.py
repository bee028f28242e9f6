"""The authors' released models as a zoo: manifest, download, choice by metadata.

Sytwu, Rangel DaCosta & Scott released 50 residual U-Nets (10 training sets x 5 folds,
MIT licence, in ``trained_models/`` of github.com/ScottLabUCB/HRTEM-Generalization, with
``model_details.csv``). The packaged manifest (``temshift/data/zoo.csv``, licence text beside
it in ``temshift/data/zoo_LICENSE.txt``) lists the 30 of them (6 training sets) whose files we
could hash: name, training set, fold, material, particle diameter, pixel scale, dose,
microscope session, file name, SHA-256 and size. The other 20 (2.2 nm and 10 nm Au, 5 nm Ag,
5 nm CdSe) are not listed, because a download could not be verified.

Choosing a training set for a frame (:func:`pick`) ranks the sets by a distance in the
paper's terms: pixel scale and dose matter most, particle size and material less; prediction
loads the chosen set per frame (``zoo:auto``, :class:`temshift.predict.chooser.ModelChooser`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from temshift.errors import TemshiftError

DEFAULT_BASE_URL = "https://raw.githubusercontent.com/ScottLabUCB/HRTEM-Generalization/HEAD/trained_models/"
"""Where the authors host the released weights (``HEAD`` = the default branch)."""

ZOO_ENV = "TEMSHIFT_ZOO"
"""Environment variable naming the local zoo folder."""

AUTO = "zoo:auto"
"""Model argument that picks the nearest training set per frame (:class:`temshift.predict.ModelChooser`)."""

WEIGHTS = {"pixel_scale": 2.0, "dose": 1.0, "diameter": 0.5, "material": 0.5}
"""Distance weights, per log2 unit (material: per mismatch); see :func:`distance`."""

MANIFEST_COLUMNS = [
    "set",
    "fold",
    "seed",
    "training_set",
    "material",
    "diameter_nm",
    "pixel_scale_nm",
    "dose_e_per_A2",
    "session",
    "file",
    "sha256",
    "size_bytes",
]


class ZooError(TemshiftError):
    """Unknown zoo model, missing local files, or a bad pick request."""


@dataclass(frozen=True)
class ZooModel:
    """One released model (one fold of one training set)."""

    set: str
    fold: int
    seed: int
    training_set: str
    material: str
    diameter_nm: float
    pixel_scale_nm: float
    dose_e_per_A2: float
    session: str
    file: str
    sha256: str
    size_bytes: int


@dataclass
class ZooSet:
    """A training set and its fold models (an ensemble)."""

    name: str
    training_set: str
    material: str
    diameter_nm: float
    pixel_scale_nm: float
    dose_e_per_A2: float
    session: str
    models: list[ZooModel] = field(default_factory=list)


def _read_manifest_rows() -> list[dict]:
    import csv

    text = (resources.files("temshift") / "data" / "zoo.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


def manifest() -> list[ZooModel]:
    """The packaged manifest, one entry per released model file."""
    out = []
    for row in _read_manifest_rows():
        out.append(
            ZooModel(
                set=row["set"],
                fold=int(row["fold"]),
                seed=int(row["seed"]),
                training_set=row["training_set"],
                material=row["material"],
                diameter_nm=float(row["diameter_nm"]),
                pixel_scale_nm=float(row["pixel_scale_nm"]),
                dose_e_per_A2=float(row["dose_e_per_A2"]),
                session=row["session"],
                file=row["file"],
                sha256=row["sha256"],
                size_bytes=int(row["size_bytes"]),
            )
        )
    return out


def license_text() -> str:
    """The MIT licence under which the authors released the weights and their metadata."""
    return (resources.files("temshift") / "data" / "zoo_LICENSE.txt").read_text()


def training_sets() -> list[ZooSet]:
    """Training sets of the manifest, in manifest order, each with its fold models."""
    sets: dict[str, ZooSet] = {}
    for m in manifest():
        s = sets.setdefault(
            m.set,
            ZooSet(m.set, m.training_set, m.material, m.diameter_nm, m.pixel_scale_nm, m.dose_e_per_A2, m.session),
        )
        s.models.append(m)
    return list(sets.values())


def resolve(names) -> list[ZooModel]:
    """Models named by training set (all its folds), file name, or ``all``.

    Raises
    ------
    ZooError
        A name that is neither a set nor a file of the manifest.
    """
    models = manifest()
    by_set = {s.name.lower(): s.models for s in training_sets()}
    by_file = {m.file.lower(): m for m in models}
    by_stem = {m.file.lower().removesuffix("_model.h5"): m for m in models}
    out: list[ZooModel] = []
    for name in names:
        key = str(name).strip().lower()
        if key == "all":
            found = models
        elif key in by_set:
            found = by_set[key]
        elif key in by_file or key in by_stem:
            found = [by_file.get(key) or by_stem[key]]
        else:
            sets = ", ".join(s.name for s in training_sets())
            raise ZooError(
                f"{name}: not in the zoo (training sets: {sets}; or a file name, or 'all'); see `temshift zoo list`"
            )
        out.extend(m for m in found if m not in out)
    return out


def lookup_file(name: str) -> ZooModel | None:
    """Manifest entry of a released file name (the authors' table spells ``Unet_``, files ``UNet_``)."""
    key = Path(name).name.lower()
    return next((m for m in manifest() if m.file.lower() == key), None)


def zoo_dir(path=None) -> Path:
    """Local zoo folder: `path`, else ``$TEMSHIFT_ZOO``, else ``$XDG_CACHE_HOME/temshift/zoo``
    (``~/.cache/temshift/zoo``)."""
    if path:
        return Path(path)
    if os.environ.get(ZOO_ENV):
        return Path(os.environ[ZOO_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "temshift" / "zoo"


# --- download ---------------------------------------------------------------------------


@dataclass
class PullReport:
    """Files fetched, resumed and already complete (final paths)."""

    downloaded: list[Path] = field(default_factory=list)
    resumed: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def is_complete(model: ZooModel, dest) -> bool:
    """Whether `dest` holds this model's file with the right size and SHA-256."""
    from temshift.catalog.fetch import sha256_file

    path = Path(dest) / model.file
    return path.is_file() and path.stat().st_size == model.size_bytes and sha256_file(path) == model.sha256


def pull(names, dest, *, base_url: str = DEFAULT_BASE_URL, timeout: float = 60.0, on_file=None) -> PullReport:
    """Download released models into `dest`, verifying each file's SHA-256.

    Parameters
    ----------
    names : list of str
        Training sets, file names or ``all`` (see :func:`resolve`).
    dest : str or Path
        Folder the files are written to (flat, under their released names); the licence
        is written beside them as ``LICENSE``.
    base_url : str
        Folder URL holding the released files.
    timeout : float
        Socket timeout, seconds.
    on_file : callable, optional
        Called with ``(model, status)`` after each file.

    Returns
    -------
    PullReport

    Raises
    ------
    ZooError
        Unknown name.
    FetchError
        Network or HTTP failure, or a file whose SHA-256 does not match (nothing is left
        under its final name; a short ``.part`` is kept for resuming).
    """
    from temshift.catalog.fetch import download, file_url
    from temshift.io.atomic import atomic_write_text

    models = resolve(names)
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ZooError(f"{dest}: exists and is not a folder")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooError(f"{dest}: cannot create the zoo folder ({exc.strerror})") from None
    if not os.access(dest, os.W_OK):
        raise ZooError(f"{dest}: zoo folder is not writable")
    report = PullReport()
    for m in models:
        path = dest / m.file
        if is_complete(m, dest):  # complete and verified: no network needed
            status = "skipped"
        else:
            status = download(file_url(base_url, m.file), path, timeout=timeout, sha256=m.sha256)
        {"skipped": report.skipped, "resumed": report.resumed}.get(status, report.downloaded).append(path)
        if on_file:
            on_file(m, status)
    if not (dest / "LICENSE").is_file():
        atomic_write_text(dest / "LICENSE", license_text())
    return report


def local_files(zset: ZooSet, folder) -> list[Path]:
    """The fold files of a training set in a local zoo folder, verified by SHA-256.

    Raises
    ------
    ZooError
        Missing or damaged files, naming the ``temshift zoo pull`` command that fetches them.
    """
    folder = Path(folder)
    bad = [m for m in zset.models if not is_complete(m, folder)]
    if bad:
        what = ", ".join(m.file for m in bad[:2]) + (f" and {len(bad) - 2} more" if len(bad) > 2 else "")
        raise ZooError(
            f"zoo set {zset.name}: {len(bad)} of {len(zset.models)} model files missing or damaged in "
            f"{folder} ({what}); run `temshift zoo pull {zset.name} --dest {folder}`"
        )
    return [folder / m.file for m in zset.models]


# --- choice by metadata -----------------------------------------------------------------


@dataclass
class Ranked:
    """A training set, its distance to the query and the terms that make it up."""

    set: ZooSet
    distance: float
    terms: dict[str, float]
    why: list[str]


def distance(
    zset: ZooSet, *, pixel_scale_nm=None, dose_e_per_A2=None, material=None, diameter_nm=None
) -> tuple[float, dict[str, float], list[str]]:
    """Distance of a training set to a frame's recording conditions.

    ``d = sqrt(sum_k (w_k * t_k) ** 2)`` over the known conditions, with

    - pixel scale: ``t = |log2(s / s_train)|``, ``w = 2``;
    - dose: ``t = |log2(D / D_train)|``, ``w = 1``;
    - particle diameter: ``t = |log2(d / d_train)|``, ``w = 0.5``;
    - material: ``t = 1`` when it differs (case-insensitive), else 0, ``w = 0.5``.

    Log ratios because the effects are multiplicative (the fringe period in pixels scales
    with the pixel scale, the shot-noise SNR with ``sqrt(dose)``). The weights follow the
    paper's findings: pixel-scale steps of 27 % or more and dose factors of 2 cost the most
    dice, so a factor 2 in dose counts 1 and the same distance is reached by a factor 1.41 in
    pixel scale (prediction resamples frames to the training scale, which corrects part of
    the pixel-scale effect, but not the resolution of the lattice detail); models transfer
    better across particle size and between materials (Au and Ag generalize, CdSe less),
    so a factor 2 in size or another material counts 0.5. A condition left out (unknown)
    does not count, and the reasons say so.

    Returns
    -------
    distance : float
    terms : dict
        Weighted term per condition (only the compared ones).
    why : list of str
        One phrase per condition, e.g. ``"dose 80 vs 423 e/A2 (x0.19)"``.
    """
    terms: dict[str, float] = {}
    why: list[str] = []

    def ratio_term(key, value, trained, unit, label):
        if value is None:
            why.append(f"{label} not compared (unknown)")
            return
        t = abs(math.log2(float(value) / trained))
        terms[key] = WEIGHTS[key] * t
        why.append(
            f"{label} {float(value):g} vs {trained:g} {unit}"
            + ("" if t < 1e-9 else f" (x{float(value) / trained:.2g})")
        )

    ratio_term("pixel_scale", pixel_scale_nm, zset.pixel_scale_nm, "nm/px", "pixel scale")
    ratio_term("dose", dose_e_per_A2, zset.dose_e_per_A2, "e/A2", "dose")
    ratio_term("diameter", diameter_nm, zset.diameter_nm, "nm", "size")
    if material is None:
        why.append("material not compared (unknown)")
    else:
        same = str(material).strip().lower() == zset.material.lower()
        terms["material"] = 0.0 if same else WEIGHTS["material"]
        why.append(f"material {material}" + (" (same)" if same else f" vs {zset.material}"))
    return math.sqrt(sum(v * v for v in terms.values())), terms, why


def pick(*, pixel_scale_nm=None, dose_e_per_A2=None, material=None, diameter_nm=None, sets=None) -> list[Ranked]:
    """Training sets ranked by :func:`distance` to the given conditions, nearest first.

    Raises
    ------
    ZooError
        No condition given, or a non-positive pixel scale, dose or size.
    """
    given = {"pixel scale": pixel_scale_nm, "dose": dose_e_per_A2, "size": diameter_nm}
    for label, v in given.items():
        if v is not None and not (float(v) > 0 and math.isfinite(float(v))):
            raise ZooError(f"{label} must be positive, got {v}")
    if all(v is None for v in (*given.values(), material)):
        raise ZooError("give at least one of pixel scale, dose, material or size to pick a training set")
    out = []
    for s in sets if sets is not None else training_sets():
        d, terms, why = distance(
            s, pixel_scale_nm=pixel_scale_nm, dose_e_per_A2=dose_e_per_A2, material=material, diameter_nm=diameter_nm
        )
        out.append(Ranked(s, d, terms, why))
    out.sort(key=lambda r: r.distance)
    return out


def explain(ranked: list[Ranked]) -> str:
    """One line saying which set was picked and why (and the runner-up)."""
    best = ranked[0]
    text = f"{best.set.name} (distance {best.distance:.2f}: {', '.join(best.why)})"
    tied = [r.set.name for r in ranked[1:] if r.distance - best.distance < 1e-6]
    if tied:
        unknown = [w.split(" not compared")[0] for w in best.why if "not compared" in w]
        text += f"; TIED with {', '.join(tied)}, first in the manifest taken" + (
            f" (give the {' / '.join(unknown)} to decide)" if unknown else ""
        )
    elif len(ranked) > 1:
        text += f"; next {ranked[1].set.name} ({ranked[1].distance:.2f})"
    return text


# --- manifest building (maintainers) ----------------------------------------------------


def build_manifest(model_details_csv, weights_dir, catalog=None):
    """Manifest rows for the released files present in `weights_dir`.

    Parameters
    ----------
    model_details_csv : path
        The authors' ``model_details.csv`` (its ``Model Name`` spells ``Unet_``; the files
        are ``UNet_``: matched case-insensitively).
    weights_dir : path
        Folder with the released ``*_model.h5`` files; only files present are listed, with
        their SHA-256 and size.
    catalog : Catalog, optional
        For the session (date) of each training set: the published catalog by default. A
        session is recorded when the set's conditions (material, size, pixel scale, dose
        within 5 e/A2, ultrathin-carbon support) match one session, or the dataset name
        names one (``Sess0821``); otherwise all matching dates are listed.

    Returns
    -------
    pandas.DataFrame
        :data:`MANIFEST_COLUMNS`.
    """
    import re

    import pandas as pd

    from temshift.catalog import Catalog
    from temshift.catalog.fetch import sha256_file

    details = pd.read_csv(model_details_csv)
    files = {p.name.lower(): p for p in Path(weights_dir).glob("*_model.h5")}
    df = (catalog or Catalog.published()).df
    rows = []
    for _, r in details.iterrows():
        path = files.get(str(r["Model Name"]).lower())
        if path is None:
            continue
        m = re.match(r"unet_(.+?)_fold(\d+)_seed(\d+)_model\.h5$", path.name, re.IGNORECASE)
        material, diameter, scale, dose = (
            str(r["Np Material"]),
            float(r["Np Diameter (nm)"]),
            float(r["Pixel Scale (nm)"]),
            float(r["Dosage (e/A2)"]),
        )
        match = df[
            (df["material"] == material)
            & (df["diameter_nm"].astype(float) == diameter)
            & ((df["pixel_scale_nm"].astype(float) - scale).abs() < 1e-4)
            & ((df["dose_e_per_A2"].astype(float) - dose).abs() <= 5)
            & df["folder"].str.contains("UTC|Ultrathin", case=False)
        ]
        dates = sorted({pd.to_datetime(d, format="%m/%d/%y").strftime("%Y-%m-%d") for d in match["date"]})
        sess = re.search(r"Sess(\d\d)(\d\d)", str(r["Dataset Trained On"]))
        if sess:
            named = [d for d in dates if d[2:4] == sess.group(2) and d[5:7] == sess.group(1)]
            dates = named or dates
        rows.append(
            {
                "set": m.group(1),
                "fold": int(m.group(2)),
                "seed": int(m.group(3)),
                "training_set": str(r["Dataset Trained On"]).removesuffix("_Images"),
                "material": material,
                "diameter_nm": diameter,
                "pixel_scale_nm": scale,
                "dose_e_per_A2": dose,
                "session": " or ".join(dates),
                "file": path.name,
                "sha256": sha256_file(path),
                "size_bytes": path.stat().st_size,
            }
        )
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def catalog_conditions(path, catalog=None) -> dict:
    """Material and particle diameter (nm) of a frame from its catalog row (None when not listed)."""
    from temshift.catalog import Catalog

    cat = catalog if catalog is not None else Catalog.published()
    rows = cat.df[cat.df["file"].astype(str) == Path(path).name]
    out: dict[str, str | float | None] = {"material": None, "diameter_nm": None}
    if len(rows):
        row = rows.iloc[0]
        out["material"] = str(row["material"]) if str(row.get("material", "")).strip() not in ("", "nan") else None
        try:
            d = float(row["diameter_nm"])
            out["diameter_nm"] = d if math.isfinite(d) and d > 0 else None
        except (TypeError, ValueError):
            pass
    return out
