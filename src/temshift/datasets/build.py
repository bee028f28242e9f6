"""Build a patch dataset from a catalog and raw frames (docs/protocol.md, preprocessing 1-4)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from temshift.datasets.spec import DatasetSpec
from temshift.datasets.store import dataset_attrs, write_provenance
from temshift.errors import DatasetError
from temshift.progress import Reporter


@dataclass
class _FramePatches:
    source: str
    patches: np.ndarray
    labels: np.ndarray
    coords: np.ndarray
    pixel_scale_nm: float | None


def shuffled_rows(catalog, spec: DatasetSpec):
    """Selected catalog rows (normalized fields) in the dataset's frame order.

    Frames are shuffled with ``numpy.random.default_rng(spec.seed).permutation`` over the
    rows in catalog order (the published code's generator is unknown; this choice is ours
    and stable across numpy versions).
    """
    sub = catalog.query(**spec.where) if spec.where else catalog
    df = sub.df.reset_index(drop=True)
    if len(df) == 0:
        raise DatasetError(f"{getattr(catalog, 'source', 'catalog')}: no frames selected for dataset {spec.name!r}")
    order = np.random.default_rng(spec.seed).permutation(len(df))
    return sub, [df.iloc[int(i)] for i in order]


def _process(sub, row, root, spec: DatasetSpec) -> _FramePatches:
    """Read, preprocess and patch one frame (runs in a worker thread; numpy releases the GIL)."""
    from temshift.io import read_frame, read_label
    from temshift.preprocess import extract_patches, preprocess_frame

    frame_path = sub.frame_path(row, root)
    frame = read_frame(frame_path, expected_pixel_scale_nm=row.get("pixel_scale_nm"))
    label = read_label(sub.label_path(row, root), shape=frame.data.shape)
    try:
        img = preprocess_frame(frame.data, spec.preprocess)
    except ValueError as exc:
        raise DatasetError(f"{frame_path}: preprocessing failed ({exc})") from None
    pixel_scale_nm = frame.pixel_scale_nm
    del frame  # free the raw frame (64 MB at 4096^2) before patching
    patches, labels, coords = extract_patches(img, label, spec.patch_size, spec.particle_threshold)
    return _FramePatches(f"{row['folder']}/{row['file']}", patches, labels, coords, pixel_scale_nm)


def _median(values) -> float:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return float(np.median(v)) if v.size else float("nan")


def build_dataset(
    catalog, root, spec: DatasetSpec, out_path, workers: int | None = None, reporter: Reporter | None = None
) -> Path:
    """Build a dataset file from raw frames.

    Selects frames with ``catalog.query(**spec.where)``, shuffles them with ``spec.seed``,
    preprocesses each (threads; numpy releases the GIL), cuts patches in frame order,
    drops background patches and streams everything into an HDF5 file written atomically.

    Parameters
    ----------
    catalog : temshift.catalog.Catalog
    root : str or Path or None
        Repository root (frames at ``root/<folder>/<file>``); None = the catalog's folder.
    spec : DatasetSpec
    out_path : str or Path
        Output ``.h5``; nothing appears under this name unless the build succeeds.
    workers : int, optional
        Frames processed concurrently (default ``min(4, cpu count)``; 1 = no threads).
    reporter : temshift.progress.Reporter, optional
        Receives the progress (job ``"building NAME"``, one step per frame); default: logging.

    Returns
    -------
    Path of the dataset file.

    Raises
    ------
    DatasetError, FrameReadError, CatalogError
        Naming the frame, label or condition at fault.
    """
    import h5py

    from temshift.compute import map_ordered
    from temshift.io.atomic import atomic_path
    from temshift.progress import reporter_or_log

    out_path = Path(out_path)
    sub, rows = shuffled_rows(catalog, spec)
    root = Path(root) if root is not None else None
    missing = [p for r in rows for p in (sub.frame_path(r, root), sub.label_path(r, root)) if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(f"{missing[0]}: file not found{more}")
    workers = min(4, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    p = spec.patch_size
    hi, hl = hashlib.sha256(), hashlib.sha256()
    files, prow, pcol, scales = [], [], [], []

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out_path))
        f = stack.enter_context(h5py.File(tmp, "w"))
        rep, job = reporter_or_log(reporter), f"building {spec.name}"
        rep.start(job, len(rows), unit="frames")
        stack.callback(rep.stop, job)
        images = f.create_dataset("images", (0, p, p), np.float32, maxshape=(None, p, p), chunks=(1, p, p))
        labels = f.create_dataset(
            "labels",
            (0, p, p),
            np.uint8,
            maxshape=(None, p, p),
            chunks=(1, p, p),
            compression="gzip",
            compression_opts=1,
        )
        # closing(): on failure, stop the pool now (not when the traceback is freed)
        results = stack.enter_context(
            contextlib.closing(map_ordered(lambda r: _process(sub, r, root, spec), rows, workers))
        )
        for res in results:
            n0, k = images.shape[0], len(res.patches)
            if k:
                images.resize(n0 + k, axis=0)
                labels.resize(n0 + k, axis=0)
                images[n0:] = res.patches
                labels[n0:] = res.labels
                # buffer protocol: no copy (numpy's stubs declare __buffer__ for Python >= 3.12 only)
                hi.update(np.ascontiguousarray(res.patches))  # type: ignore[arg-type]
                hl.update(np.ascontiguousarray(res.labels))  # type: ignore[arg-type]
                files += [res.source] * k
                prow += res.coords[:, 0].tolist()
                pcol += res.coords[:, 1].tolist()
            scales.append(res.pixel_scale_nm)
            rep.advance(job)
        if not files:
            raise DatasetError(
                f"{out_path}: no patch of the {len(rows)} frames has more than {spec.particle_threshold:g} "
                "particle pixels; nothing written"
            )
        write_provenance(f, files, prow, pcol)
        f.attrs.update(_attrs(spec, rows, scales, hi, hl, catalog))
    return out_path


def _attrs(spec, rows, scales, hi, hl, catalog) -> dict:
    # medians over the selected frames: catalog values, frame metadata where the catalog has none
    cat_scales = [r.get("pixel_scale_nm") for r in rows]
    px = _median([c if c is not None and np.isfinite(c) else s for c, s in zip(cat_scales, scales)])
    dose = _median([r.get("dose_e_per_A2") for r in rows])
    spec_json = json.loads(spec.to_json())
    spec_json.update(pixel_scale_nm=px, dose_e_per_A2=dose, n_frames=len(rows), spec_hash=spec.hash())
    return dataset_attrs(
        spec.name,
        spec_json,
        hashlib.sha256(hi.digest() + hl.digest()).hexdigest(),
        spec_hash=spec.hash(),
        preprocess=spec.preprocess,
        pixel_scale_nm=px,
        dose_e_per_A2=dose,
        n_frames=len(rows),
        patch_size=spec.patch_size,
        seed=spec.seed,
        catalog=str(getattr(catalog, "source", "")),
    )


__all__ = ["build_dataset", "shuffled_rows"]
