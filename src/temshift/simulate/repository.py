"""A synthetic raw repository in the published layout, mirroring a catalog.

`simulate_repository` writes, for each selected catalog row,

* ``REPO/<Folder>/<stem>.tif`` -- float32 counts with the pixel size in the TIFF metadata,
* ``REPO/<Folder>/Labels/<stem>_label.png`` -- the exact label,
* ``REPO/<Folder>/Simulation/<stem>_sim.json`` -- every simulation parameter of the frame
  (defocus, support thickness, seeds, session conditions, the particle list),

and ``REPO/catalog.csv`` in the published schema (``File name`` now the ``.tif``), with
extra columns ``source_file`` (the original name) and ``sim_*`` (a per-frame summary of the
sidecar). Frames already present (all three files) are skipped, so an interrupted run
resumes; a present frame whose sidecar records other parameters (seed, mode, frame size,
density, or the row's dose, pixel scale, ...) is never silently kept: the run is refused,
naming what differs. Rows are checked before anything is simulated (also that their
folder and file names stay inside the repository); a frame that fails is reported with its
parameters in ``REPO/simulation_failures.csv`` and does not stop the others.
"""

from __future__ import annotations

import json
import math
import os
import traceback
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from temshift.errors import TemshiftError
from temshift.progress import Reporter

SIDECAR_DIR = "Simulation"
FAILURES_FILE = "simulation_failures.csv"
GROUP_FIELDS = ("folder", "material", "diameter_nm", "dose_e_per_A2", "pixel_scale_nm")
MIN_PIXEL_SCALE_NM = 0.005
MAX_PIXEL_SCALE_NM = 0.2
MAX_DIAMETER_NM = 50.0
MIN_FRAME_SIZE = 64
MAX_FRAME_SIZE = 8192
#: sidecar values copied into catalog columns
SUMMARY_COLUMNS = {
    "sim_mode": "mode",
    "sim_seed": "seed",
    "sim_frame_size_px": "frame_size_px",
    "sim_defocus_A": "defocus_A",
    "sim_support_thickness_A": "support_thickness_A",
    "sim_n_particles": "n_particles",
    "sim_label_area_fraction": "label_area_fraction",
    "sim_n_xrays": "n_xrays",
}
#: specimen knobs of `micrograph.FrameRequest` a whole repository may set (`simulate_repository(specimen=...)`)
SPECIMEN_OPTIONS = ("support_thickness_A", "cluster_fraction", "illumination_scale")


class SimulationError(TemshiftError):
    """Simulation parameters the simulator cannot honour, or frames that failed."""


# ----------------------------------------------------------------------------- selection and checks


def _resolve_catalog(catalog):
    from temshift.catalog import Catalog

    if catalog is None:
        cat = Catalog.published()
    elif isinstance(catalog, Catalog):
        cat = catalog
    else:
        cat = Catalog.read(catalog)
    df = cat.df.copy()
    if "_row" not in df.columns:
        df["_row"] = np.arange(len(df)) + 2  # line number in the CSV (header = line 1)
    return Catalog(df, source=cat.source, root=cat.root, normalized=True)


def _where_dict(where) -> dict:
    from temshift.catalog import parse_where

    if where is None:
        return {}
    if isinstance(where, dict):
        return dict(where)
    if isinstance(where, str):
        return parse_where([where])
    return parse_where(list(where))


def check_rows(df: pd.DataFrame, source: str, frame_size: int) -> None:
    """Refuse rows the simulator cannot honour (one-line SimulationError naming row and field)."""
    from temshift.simulate.specimen import MATERIALS, SHAPES, resolve_material, resolve_support

    where = ""  # the row being checked, named by bad()

    def bad(field: str, why: str) -> NoReturn:
        raise SimulationError(f"{where}: field {field!r} {why}")

    for _, row in df.iterrows():
        where = f"{source}: row {row['_row']} ({row['file']})"

        try:
            resolve_material(row["material"])
        except KeyError:
            bad("Material", f"= {row['material']!r} is not simulated (known: {', '.join(MATERIALS)})")
        for field, col in (
            ("Nanoparticle Size (nm)", "diameter_nm"),
            ("Dosage (e/A2)", "dose_e_per_A2"),
            ("Pixel Scale (nm)", "pixel_scale_nm"),
        ):
            v = float(row[col])
            if not math.isfinite(v) or v <= 0:
                bad(field, f"must be a positive number, got {row[col]!r}")
        if float(row["diameter_nm"]) > MAX_DIAMETER_NM:
            bad(
                "Nanoparticle Size (nm)", f"= {row['diameter_nm']:g} nm is above the simulator's {MAX_DIAMETER_NM:g} nm"
            )
        px = float(row["pixel_scale_nm"])
        if not MIN_PIXEL_SCALE_NM <= px <= MAX_PIXEL_SCALE_NM:
            bad(
                "Pixel Scale (nm)",
                f"= {px:g} nm is outside the HRTEM range "
                f"{MIN_PIXEL_SCALE_NM:g}-{MAX_PIXEL_SCALE_NM:g} nm the simulator handles",
            )
        if str(row["shape"]).strip().lower() not in SHAPES:
            bad("Nanoparticle Shape", f"= {row['shape']!r} is not simulated (known: Sphere, Oblong)")
        try:
            resolve_support(row["support"])
        except KeyError:
            bad("Support", f"= {row['support']!r} is not simulated (known: UT Carbon, SiN)")
        extent_nm = frame_size * px
        if float(row["diameter_nm"]) > extent_nm:
            bad(
                "Nanoparticle Size (nm)",
                f"= {row['diameter_nm']:g} nm does not fit a {frame_size}-pixel frame "
                f"at {px:g} nm/pixel ({extent_nm:.1f} nm); use a larger --frame-size",
            )


def _check_options(mode, frame_size, frames_per_group, seed, workers, density):
    from temshift.simulate.micrograph import MODES

    if mode not in MODES:
        raise SimulationError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if not (isinstance(frame_size, (int, np.integer)) and MIN_FRAME_SIZE <= frame_size <= MAX_FRAME_SIZE):
        raise SimulationError(f"frame size {frame_size!r} must be an integer in {MIN_FRAME_SIZE}-{MAX_FRAME_SIZE}")
    if frames_per_group is not None and (not isinstance(frames_per_group, (int, np.integer)) or frames_per_group < 1):
        raise SimulationError(f"frames per group {frames_per_group!r} must be a positive integer")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SimulationError(f"seed {seed!r} must be a non-negative integer")
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
        raise SimulationError(f"workers {workers!r} must be a positive integer")
    if not (isinstance(density, (int, float)) and density > 0 and math.isfinite(density)):
        raise SimulationError(f"density {density!r} must be a positive number")


def select_rows(catalog=None, where=None, frames_per_group=None):
    """The catalog rows a run simulates (a Catalog with a ``_row`` column)."""
    cat = _resolve_catalog(catalog)
    cond = _where_dict(where)
    if cond:
        cat = cat.query(**cond)
    if frames_per_group is not None:
        from temshift.catalog import Catalog

        df = cat.df.groupby(list(GROUP_FIELDS), sort=False, dropna=False).head(int(frames_per_group))
        cat = Catalog(df, source=cat.source, root=cat.root, normalized=True)
    return cat


# ----------------------------------------------------------------------------- paths


def _row_name(row, source: str | None = None) -> str:
    line = f"row {row['_row']}" if "_row" in row else "row"
    return f"{source + ': ' if source else ''}{line} (Folder {str(row['folder'])!r}, File name {str(row['file'])!r})"


def output_paths(out: Path, row, source: str | None = None) -> dict:
    """Frame, label and sidecar paths of a row in the synthetic repository.

    Raises
    ------
    UnsafePathError
        When the row's folder or file name would place a file outside `out` (naming the row).
    """
    from temshift.io.paths import resolve_under

    stem = Path(str(row["file"])).stem
    folder, where = str(row["folder"]), _row_name(row, source)
    return {
        "frame": resolve_under(out, folder, f"{stem}.tif", row=where),
        "label": resolve_under(out, folder, "Labels", f"{stem}_label.png", row=where),
        "sidecar": resolve_under(out, folder, SIDECAR_DIR, f"{stem}_sim.json", row=where),
    }


def _check_distinct(rows, all_paths, source: str) -> None:
    """Two rows must not share an output frame (``a.dm3`` and ``a.dm4`` in one folder)."""
    seen: dict[str, Any] = {}
    for (_, row), p in zip(rows, all_paths):
        key = str(p["frame"]).casefold()
        if key in seen:
            raise SimulationError(
                f"{_row_name(row, source)} and {_row_name(seen[key])} would both be written to {p['frame']}"
            )
        seen[key] = row


def _frame_done(paths: dict) -> bool:
    return all(Path(p).is_file() for p in paths.values())


#: sidecar key -> request key: parameters a present frame must share with the run to be kept
RECORDED = {
    "mode": "mode",
    "seed": "seed",
    "frame_size_px": "frame_size_px",
    "density": "density",
    "material": "material",
    "nominal_diameter_nm": "diameter_nm",
    "dose_e_per_A2": "dose_e_per_A2",
    "pixel_scale_nm": "pixel_scale_nm",
    "shape": "shape",
    "support": "support",
    "session_key": "session_key",
}


def recorded_differences(params: dict, request: dict) -> dict:
    """``{key: (recorded, requested)}`` for the parameters of a present frame that a run would change.

    Keys missing from an older sidecar (``density``) are not compared.
    """
    from temshift.simulate.specimen import resolve_support

    want = {key: request[req_key] for key, req_key in RECORDED.items()}
    want["support"] = resolve_support(want["support"]).name
    diff = {k: (params[k], v) for k, v in want.items() if k in params and params[k] != v}
    if isinstance(params.get("labeling"), dict):  # exact labels and modelled hand labels must not mix
        had = bool(params["labeling"].get("enabled", False))
        asks = bool((request.get("labeling") or {}).get("enabled", False))
        if had != asks:
            diff["labeling.enabled"] = (had, asks)
    had_specimen = params.get("specimen", {})  # older sidecars: no options existed
    asks_specimen = {k: request[k] for k in SPECIMEN_OPTIONS if k in request}
    if had_specimen != asks_specimen:
        diff["specimen"] = (had_specimen, asks_specimen)
    return diff


def specimen_options(options) -> dict[str, float]:
    """Validated specimen options for every frame of a repository (`SPECIMEN_OPTIONS`).

    Parameters
    ----------
    options : mapping or None
        ``{name: value}``: ``support_thickness_A`` (film thickness, A, instead of the drawn
        one), ``cluster_fraction`` (0-1, chance that a particle touches an earlier one),
        ``illumination_scale`` (>= 0, strength of beam fall-off and gain-reference error;
        1 = as drawn). Values may be strings (from a command line).

    Returns
    -------
    dict
        The options as floats, in `SPECIMEN_OPTIONS` order; empty for none.

    Raises
    ------
    SimulationError
        An unknown name or a bad value, naming it.

    Examples
    --------
    >>> specimen_options({"support_thickness_A": "60"})
    {'support_thickness_A': 60.0}
    """
    from temshift.simulate.micrograph import FrameRequest

    options = dict(options or {})
    unknown = sorted(set(options) - set(SPECIMEN_OPTIONS))
    if unknown:
        raise SimulationError(f"unknown specimen option {unknown[0]!r} (known: {', '.join(SPECIMEN_OPTIONS)})")
    out: dict[str, float] = {}
    for key in SPECIMEN_OPTIONS:
        if key not in options:
            continue
        try:
            value = float(options[key])
        except (TypeError, ValueError):
            raise SimulationError(f"specimen option {key}={options[key]!r}: not a number") from None
        if not math.isfinite(value):
            raise SimulationError(f"specimen option {key}={options[key]!r}: not a finite number")
        try:
            overrides: dict[str, Any] = {key: value}
            FrameRequest("Au", 5.0, 100.0, 0.02, **overrides)  # runs its checks
        except ValueError as exc:
            raise SimulationError(f"specimen option {key}: {exc}") from None
        out[key] = value
    return out


def _check_present_frames(out: Path, tasks: list, source: str) -> None:
    """Refuse a run whose parameters differ from those recorded by frames already in `out`."""
    stale = []
    for t in tasks:
        sidecar = Path(t["paths"]["sidecar"])
        try:
            params = json.loads(sidecar.read_text())
            if not isinstance(params, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise SimulationError(
                f"{sidecar}: unreadable simulation record ({str(exc).splitlines()[0]}); "
                "delete the frame's three files to simulate it again"
            ) from None
        diff = recorded_differences(params, t["request"])
        if diff:
            stale.append((t, diff))
    if stale:
        t, diff = stale[0]
        had = ", ".join(f"{k}={v[0]!r}" for k, v in diff.items())
        asks = ", ".join(f"{k}={v[1]!r}" for k, v in diff.items())
        raise SimulationError(
            f"{out}: {len(stale)} of the {len(tasks)} frames already there were simulated with other parameters "
            f"(first: {Path(t['paths']['frame']).relative_to(out)}, {source} row {t['row']}, has {had}; this run "
            f"asks {asks}); frames would mix: re-run with the recorded parameters to resume, or use another --out"
        )


# ----------------------------------------------------------------------------- one frame


def _task(row, paths, mode, seed, frame_size, density, labeling=None, specimen=None) -> dict:
    task: dict[str, Any] = {
        "row": int(row["_row"]),
        "file": str(row["file"]),
        "folder": str(row["folder"]),
        "request": {
            "material": str(row["material"]),
            "diameter_nm": float(row["diameter_nm"]),
            "dose_e_per_A2": float(row["dose_e_per_A2"]),
            "pixel_scale_nm": float(row["pixel_scale_nm"]),
            "shape": str(row["shape"]),
            "support": str(row["support"]),
            "frame_size_px": int(frame_size),
            "mode": mode,
            "seed": int(seed),
            "frame_key": f"{row['folder']}/{row['file']}",
            "session_key": str(row["session"]),
            "density": float(density),
        },
        "paths": {k: str(v) for k, v in paths.items()},
    }
    if labeling:
        task["request"]["labeling"] = dict(labeling)
    task["request"].update(specimen or {})
    return task


def run_frame(task: dict) -> dict:
    """Simulate and write one frame (runs in a worker); never raises.

    Returns
    -------
    dict
        ``{"ok": True, "params": ...}`` or ``{"ok": False, "error": ..., "traceback": ...}``.
    """
    try:
        from temshift.io import write_label_png, write_tiff_frame
        from temshift.io.atomic import atomic_write_text
        from temshift.simulate.micrograph import FrameRequest, simulate_frame

        req = FrameRequest(**task["request"])
        frame = simulate_frame(req)
        paths = task["paths"]
        params = dict(frame.params, source_file=task["file"], folder=task["folder"], density=task["request"]["density"])
        specimen = {k: task["request"][k] for k in SPECIMEN_OPTIONS if k in task["request"]}
        if specimen:  # only then: sidecars of default frames stay as they were
            params["specimen"] = specimen
        write_label_png(paths["label"], frame.label)
        Path(paths["sidecar"]).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(paths["sidecar"], json.dumps(params, indent=1))
        write_tiff_frame(paths["frame"], frame.counts, req.pixel_scale_nm)  # last: marks the frame done
        return {"ok": True, "key": (task["folder"], task["file"]), "params": params}
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {
            "ok": False,
            "key": (task["folder"], task["file"]),
            "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            "traceback": traceback.format_exc(),
        }


# ----------------------------------------------------------------------------- running


def _lost(task: dict, exc: BaseException) -> dict:
    """The result of a frame whose worker died (e.g. out of memory)."""
    return {
        "ok": False,
        "key": (task["folder"], task["file"]),
        "error": f"worker lost: {type(exc).__name__}: {exc}",
        "traceback": "",
    }


def _run(tasks: list[dict], workers: int, reporter: Reporter | None) -> list[dict]:
    """Simulate `tasks` here (1 worker) or on local worker processes; one result per task."""
    from temshift.compute import fan_out
    from temshift.progress import reporter_or_log

    rep = reporter_or_log(reporter)
    rep.start("simulate", len(tasks), unit="frames")
    results: list[dict] = []
    try:
        for task, r in fan_out(run_frame, tasks, workers, lost=_lost):
            results.append(r)
            rep.advance("simulate")
            if not r["ok"]:
                rep.note("simulate", f"[red]{len(results)} done, failure in {task['file']}")
    finally:
        rep.stop("simulate")
    return results


def _summary(params: dict) -> dict:
    out = {col: params.get(key) for col, key in SUMMARY_COLUMNS.items()}
    out["sim_gain_counts_per_e"] = params.get("session", {}).get("gain_counts_per_e")
    return out


def simulate_repository(
    out,
    catalog=None,
    where=None,
    frames_per_group=None,
    frame_size=None,
    mode="multislice",
    seed=0,
    workers=None,
    *,
    density: float = 1.0,
    labeling: dict | None = None,
    specimen: dict | None = None,
    reporter: Reporter | None = None,
):
    """Write a synthetic raw repository mirroring a catalog.

    Parameters
    ----------
    out : str or Path
        Repository root (created).
    catalog : Catalog, str or Path, optional
        Rows to mirror; default the packaged published catalog (407 frames).
    where : dict, str or list of str, optional
        Row selection: `Catalog.query` keywords, or ``"field=value[±tol]"`` strings.
    frames_per_group : int, optional
        At most this many frames per (folder, material, size, dose, pixel scale) group,
        the first ones in catalog order.
    frame_size : int, optional
        Frame side in pixels (default 4096, the real frames). Smaller frames raise the
        particle density (see `field.default_area_fraction`).
    mode : {"multislice", "projection"}
        Particle scattering model; "projection" is several times faster.
    seed : int
        Run seed; a frame is a pure function of (seed, its row, frame size, mode).
    workers : int, optional
        Dask worker processes (default: the number of cores); 1 runs in this process.
    density : float
        Multiplier of the default particle area fraction.
    labeling : dict, optional
        `labels.LabelingModel` fields, e.g. ``{"enabled": True, "boundary_jitter_nm": 0.2}``:
        write hand-label-like labels instead of exact ones (the sidecar keeps the exact area
        fraction and which particles were labelled).
    specimen : dict, optional
        Specimen conditions for every frame instead of the simulator's draws
        (`specimen_options`), e.g. ``{"support_thickness_A": 100}`` for a 10 nm film; the
        sidecars record them, and frames of other options are not mixed in.
    reporter : temshift.progress.Reporter, optional
        Receives the progress (job ``"simulate"``, one step per frame); default: logging.

    Returns
    -------
    Catalog
        The repository's catalog (``REPO/catalog.csv``), root = `out`.

    Raises
    ------
    UnsafePathError
        A row whose folder or file name would write outside `out` (before anything is written).
    SimulationError
        For bad options or catalog rows, or frames already in `out` that were simulated with
        other parameters (before simulating anything), and after the run
        when frames failed (their parameters are in ``REPO/simulation_failures.csv``;
        re-running retries only them).
    """
    from temshift.catalog import Catalog

    out = Path(out)
    frame_size = 4096 if frame_size is None else frame_size
    _check_options(mode, frame_size, frames_per_group, seed, workers, density)
    cat = select_rows(catalog, where, frames_per_group)
    check_rows(cat.df, cat.source, int(frame_size))

    rows = list(cat.df.iterrows())
    all_paths = [output_paths(out, row, cat.source) for _, row in rows]
    _check_distinct(rows, all_paths, cat.source)
    if labeling:
        from temshift.simulate.labels import LabelingModel

        try:
            LabelingModel(**labeling)
        except TypeError as exc:
            raise SimulationError(f"labeling options {labeling!r}: {exc}") from None
    specimen = specimen_options(specimen)
    tasks = [_task(row, p, mode, seed, frame_size, density, labeling, specimen) for (_, row), p in zip(rows, all_paths)]
    _check_present_frames(out, [t for t, p in zip(tasks, all_paths) if _frame_done(p)], cat.source)
    pending = [t for t, p in zip(tasks, all_paths) if not _frame_done(p)]
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    n_workers = max(1, min(n_workers, len(pending)))
    out.mkdir(parents=True, exist_ok=True)
    results = _run(pending, n_workers, reporter) if pending else []
    failures = [r for r in results if not r["ok"]]

    # the repository's catalog: every selected frame present on disk
    records, keep = [], []
    for (_, row), p in zip(rows, all_paths):
        if not _frame_done(p):
            continue
        try:
            params = json.loads(Path(p["sidecar"]).read_text())
        except (OSError, ValueError):
            params = {}
        rec = _summary(params)
        prior = row.get("source_file") if "source_file" in row.index else None
        rec["source_file"] = prior if isinstance(prior, str) and prior else row["file"]  # re-simulated repos
        rec["file"] = Path(p["frame"]).name
        rec["sim_params_file"] = str(Path(p["sidecar"]).relative_to(out))
        records.append(rec)
        keep.append(row.name)
    df = cat.df.loc[keep].copy()
    for col in ("file", "source_file", *SUMMARY_COLUMNS, "sim_gain_counts_per_e", "sim_params_file"):
        df[col] = [r[col] for r in records]
    df = df.drop(columns=["_row"])
    result = Catalog(df, source=str(out / "catalog.csv"), root=out, normalized=True)
    if len(df):
        result.to_published_csv(out / "catalog.csv")

    if failures:
        by_key = {(t["folder"], t["file"]): t for t in pending}
        fail_rows = []
        for f in failures:
            t = by_key[tuple(f["key"])]
            fail_rows.append(
                {
                    "row": t["row"],
                    "folder": t["folder"],
                    "file": t["file"],
                    "error": f["error"],
                    **{k: v for k, v in t["request"].items() if k not in ("frame_key", "session_key")},
                }
            )
        from temshift.io.atomic import atomic_path

        with atomic_path(out / FAILURES_FILE) as tmp:
            pd.DataFrame(fail_rows).to_csv(tmp, index=False)
        first = fail_rows[0]
        raise SimulationError(
            f"{len(failures)} of {len(pending)} frames failed (first: row {first['row']} {first['file']}, "
            f"{first['material']} {first['diameter_nm']:g} nm, {first['dose_e_per_A2']:g} e/A2, "
            f"{first['pixel_scale_nm']:g} nm/px: {first['error']}); details in {out / FAILURES_FILE}; "
            f"re-run to retry them"
        )
    elif (out / FAILURES_FILE).exists():
        (out / FAILURES_FILE).unlink()
    return result
