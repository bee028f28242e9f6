"""The on-disk dataset format (HDF5) and loading our files and the published pairs.

Our file: datasets ``images`` (N, H, W) float32 and ``labels`` (N, H, W) uint8 {0, 1}
(the keys of the published processed datasets), group ``provenance`` with ``file``
(``<folder>/<file>`` of the source frame), ``row`` and ``col`` (top-left pixel of the
patch in the frame), and attributes (see `ATTRS`).
Published pair: ``<name>_Images.h5`` with ``images`` and ``<name>_Labels.h5`` with ``labels``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from temshift.datasets.records import DatasetAttrs
from temshift.errors import DatasetError

if TYPE_CHECKING:  # pandas (and pyarrow) loaded by the readers only: training and models stay free of them
    import pandas as pd

    from temshift.preprocess import PreprocessSettings

FORMAT = "temshift-dataset"
FORMAT_VERSION = 1
#: file attributes we write
ATTRS = (
    "format", "format_version", "name", "spec", "spec_hash", "preprocess", "temshift_version",
    "content_hash", "pixel_scale_nm", "dose_e_per_A2", "n_frames", "patch_size", "seed", "catalog", "created",
)  # fmt: skip
_PAIR = re.compile(r"^(?P<name>.+)_(?P<kind>Images|Labels)\.h5$", re.IGNORECASE)


@dataclass
class Dataset:
    """Patches and their labels, in memory.

    Attributes
    ----------
    images : (N, H, W) float32
    labels : (N, H, W) uint8 in {0, 1}
    spec : dict
        The dataset spec as stored (plus ``pixel_scale_nm``, ``dose_e_per_A2`` medians when
        known): the JSON that spec hashes digest. Read it through `record`.
    provenance : pandas.DataFrame
        Columns ``file``, ``row``, ``col`` (pixels) per patch; ``row = col = -1`` when unknown.
    attrs : dict
        All file attributes as stored. Read them through `record`.
    path : Path
    """

    images: np.ndarray
    labels: np.ndarray
    spec: dict[str, Any] = field(default_factory=dict)
    provenance: pd.DataFrame | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @functools.cached_property
    def record(self) -> DatasetAttrs:
        """The file attributes with the spec as a typed record.

        Raises
        ------
        DatasetError
            An attribute or spec field of the wrong type (named).
        """
        try:
            return DatasetAttrs.from_attrs({**self.attrs, "spec": self.spec})
        except ValueError as exc:
            raise DatasetError(f"{self.path or 'dataset'}: {exc}") from None

    @property
    def name(self) -> str:
        return str(self.record.spec.name or (self.path.stem if self.path else "dataset"))

    @property
    def pixel_scale_nm(self) -> float | None:
        """Median pixel scale, nm/pixel: the spec's, else the file attribute's (None if unknown)."""
        rec = self.record
        return rec.spec.pixel_scale_nm if "pixel_scale_nm" in self.spec else rec.pixel_scale_nm

    @property
    def dose_e_per_A2(self) -> float | None:
        """Median dose, e/A^2: the spec's, else the file attribute's (None if unknown)."""
        rec = self.record
        return rec.spec.dose_e_per_A2 if "dose_e_per_A2" in self.spec else rec.dose_e_per_A2


def content_hash(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of ``sha256(images bytes) + sha256(labels bytes)`` (float32 / uint8, C order)."""
    hi, hl = hashlib.sha256(), hashlib.sha256()
    for i in range(len(images)):  # per patch: no full-size copy for contiguity
        hi.update(np.ascontiguousarray(images[i], dtype=np.float32).tobytes())
        hl.update(np.ascontiguousarray(labels[i], dtype=np.uint8).tobytes())
    return hashlib.sha256(hi.digest() + hl.digest()).hexdigest()


def published_pair(path) -> tuple[str, Path, Path] | None:
    """``(name, images_path, labels_path)`` if `path` is one file of a published pair, else None."""
    path = Path(path)
    m = _PAIR.match(path.name)
    if not m:
        return None
    name = m["name"]
    return name, path.with_name(f"{name}_Images.h5"), path.with_name(f"{name}_Labels.h5")


def _open(path: Path):
    import h5py

    if not path.is_file():
        raise DatasetError(f"{path}: dataset file not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]})") from None


def _read_array(path: Path, key: str) -> np.ndarray:
    with _open(path) as f:
        if key not in f:
            raise DatasetError(f"{path}: no dataset {key!r} (found: {', '.join(sorted(f.keys())) or 'nothing'})")
        try:
            arr = f[key][()]
        except (OSError, TypeError) as exc:
            raise DatasetError(f"{path}: dataset {key!r} cannot be read ({str(exc).splitlines()[0]})") from None
    if arr.ndim == 4 and arr.shape[-1] == 1:  # (N, H, W, 1) channel-last
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise DatasetError(f"{path}: dataset {key!r} has shape {arr.shape}, expected (N, H, W)")
    return arr


def _check(path: Path, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to float32 images / uint8 labels (checks run in blocks of patches)."""
    if images.shape != labels.shape:
        raise DatasetError(f"{path}: images {images.shape} and labels {labels.shape} differ in shape")
    if images.dtype.kind not in "biuf" or labels.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: images/labels must be numeric (got {images.dtype}, {labels.dtype})")
    images = np.asarray(images, dtype=np.float32)
    binary = labels.dtype == np.bool_ or (labels.dtype == np.uint8 and labels.max(initial=0) <= 1)
    for i in range(0, len(images), _BLOCK):  # bounded temporaries on large files
        finite = np.isfinite(images[i : i + _BLOCK]).all(axis=(1, 2))
        if not finite.all():
            bad = i + int(np.flatnonzero(~finite)[0])
            raise DatasetError(f"{path}: images contain NaN or infinite values (first in patch {bad})")
        if not binary:
            lab = labels[i : i + _BLOCK]
            ok = (lab == 0) | (lab == 1)
            if not ok.all():
                raise DatasetError(f"{path}: labels must be 0 or 1, found {lab[~ok][0]!r}")
    return images, labels if labels.dtype == np.uint8 else labels.astype(np.uint8)


_BLOCK = 256  # patches per validation block


def _attr(v):
    return v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v)


def _load_ours(path: Path) -> Dataset:
    import pandas as pd

    images = _read_array(path, "images")
    labels = _read_array(path, "labels")
    images, labels = _check(path, images, labels)
    with _open(path) as f:
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        if "provenance" in f and all(k in f["provenance"] for k in ("file", "row", "col")):
            g = f["provenance"]
            prov = pd.DataFrame(
                {
                    "file": g["file"].asstr()[()],
                    "row": g["row"][()].astype(np.int64),
                    "col": g["col"][()].astype(np.int64),
                }
            )
        else:
            prov = pd.DataFrame({"file": [path.name] * len(images), "row": -1, "col": -1})
    if len(prov) != len(images):
        raise DatasetError(f"{path}: provenance has {len(prov)} rows for {len(images)} patches")
    try:
        spec = json.loads(attrs.get("spec", "{}"))
    except json.JSONDecodeError:
        raise DatasetError(f"{path}: attribute 'spec' is not valid JSON") from None
    ds = Dataset(images, labels, spec, prov, attrs, path)
    ds.record  # noqa: B018  (checks the attributes: a bad one is named now, not when first read)
    return ds


_DOSE_IN_NAME = re.compile(r"_(\d+(?:p\d+)?)e_", re.IGNORECASE)


def _load_pair(name: str, images_path: Path, labels_path: Path) -> Dataset:
    import pandas as pd

    for p in (images_path, labels_path):
        if not p.is_file():
            raise DatasetError(f"{p}: missing file of the published pair {name!r}")
    images, labels = _check(images_path, _read_array(images_path, "images"), _read_array(labels_path, "labels"))
    spec = {"name": name, "source": "published", "patch_size": int(images.shape[-1])}
    m = _DOSE_IN_NAME.search(name)
    if m:  # published names carry the dose, e.g. ..._423e_...
        spec["dose_e_per_A2"] = float(m[1].replace("p", "."))
    prov = pd.DataFrame({"file": [images_path.name] * len(images), "row": -1, "col": -1})
    attrs = {"format": "published-pair", "name": name, "spec": json.dumps(spec)}
    return Dataset(images, labels, spec, prov, attrs, images_path)


def load_dataset(path) -> Dataset:
    """Load a dataset file into memory.

    Parameters
    ----------
    path : str or Path
        Our HDF5 file, or either file of a published pair ``<name>_Images.h5`` /
        ``<name>_Labels.h5`` (the other one is found beside it).

    Raises
    ------
    DatasetError
        Missing or corrupt file, missing keys, mismatched shapes, NaNs, labels not 0/1.
    """
    path = Path(path)
    pair = published_pair(path)
    if pair is not None:
        return _load_pair(*pair)
    return _load_ours(path)


def dataset_attrs(
    name: str,
    spec: Mapping[str, Any],
    content_hash: str,
    *,
    spec_hash: str | None = None,
    preprocess: PreprocessSettings | Mapping[str, Any] | None = None,
    pixel_scale_nm: float | None = None,
    dose_e_per_A2: float | None = None,
    n_frames: int | None = None,
    patch_size: int | None = None,
    seed: int | None = None,
    catalog: str | None = None,
    stamp: bool = True,
    file_format: str = FORMAT,
    format_version: int | None = FORMAT_VERSION,
) -> dict[str, Any]:
    """The attributes of a dataset file (the keys of `ATTRS`), ready for ``h5py`` ``attrs.update``.

    Parameters
    ----------
    name : str
    spec : mapping
        The dataset spec, stored as JSON with sorted keys.
    content_hash : str
        `content_hash` of the patches and labels.
    spec_hash : str, optional
    preprocess : PreprocessSettings or mapping, optional
        Stored as JSON (a settings record by pydantic, a mapping by ``json.dumps`` in its key order).
    pixel_scale_nm, dose_e_per_A2 : float, optional
        Median pixel scale, nm/pixel, and dose, e/A^2 (NaN: unknown).
    n_frames, patch_size, seed : int, optional
        Source frames, patch side (pixels), frame shuffle seed.
    catalog : str, optional
        Catalog the frames were selected from.
    stamp : bool
        Add ``temshift_version`` and ``created`` (ISO 8601 UTC, seconds).
    file_format, format_version : optional
        ``format`` and ``format_version``.

    Returns
    -------
    dict
        Attributes in `ATTRS` order; those given as None are left out.
    """
    from temshift import __version__

    if preprocess is not None and not isinstance(preprocess, Mapping):
        preprocess_json: str | None = preprocess.model_dump_json()
    else:
        preprocess_json = None if preprocess is None else json.dumps(dict(preprocess))
    attrs = {
        "format": file_format,
        "format_version": format_version,
        "name": name,
        "spec": json.dumps(spec, sort_keys=True),
        "spec_hash": spec_hash,
        "preprocess": preprocess_json,
        "temshift_version": __version__ if stamp else None,
        "content_hash": content_hash,
        "pixel_scale_nm": pixel_scale_nm,
        "dose_e_per_A2": dose_e_per_A2,
        "n_frames": n_frames,
        "patch_size": patch_size,
        "seed": seed,
        "catalog": catalog,
        "created": datetime.now(UTC).isoformat(timespec="seconds") if stamp else None,
    }
    return {k: v for k, v in attrs.items() if v is not None}


def write_dataset_file(path, images, labels, provenance: pd.DataFrame, attrs: dict) -> Path:
    """Write a complete dataset file atomically (for in-memory data; `build_dataset` streams)."""
    import h5py

    from temshift.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        p = images.shape[1:]
        f.create_dataset("images", data=np.asarray(images, np.float32), chunks=(1, *p) if len(images) else None)
        f.create_dataset("labels", data=np.asarray(labels, np.uint8), chunks=(1, *p) if len(labels) else None,
                         compression="gzip", compression_opts=1)  # fmt: skip
        write_provenance(f, provenance["file"], provenance["row"], provenance["col"])
        f.attrs.update({k: v for k, v in attrs.items() if v is not None})
    return path


def write_provenance(f, files, rows, cols) -> None:
    """The ``provenance`` group: ``file`` (UTF-8 strings), ``row``, ``col`` (int32 pixels)."""
    import h5py

    g = f.create_group("provenance")
    g.create_dataset("file", data=np.array(list(files), dtype=object), dtype=h5py.string_dtype())
    g.create_dataset("row", data=np.asarray(rows, np.int32))
    g.create_dataset("col", data=np.asarray(cols, np.int32))


def import_published(path, out=None) -> Path:
    """Register a published pair as a temshift dataset file.

    Parameters
    ----------
    path : str or Path
        ``<name>_Images.h5`` (or the ``_Labels.h5`` file) of a published pair.
    out : str or Path, optional
        Output file; default ``<name>.h5`` beside the pair.

    Returns
    -------
    Path of the written file (validated: shapes, no NaNs, labels 0/1).
    """
    path = Path(path)
    pair = published_pair(path)
    if pair is None:
        raise DatasetError(f"{path}: not a published pair file (expected <name>_Images.h5 or <name>_Labels.h5)")
    ds = _load_pair(*pair)
    name = pair[0]
    out = Path(out) if out is not None else pair[1].with_name(f"{name}.h5")
    spec = dict(ds.spec, imported_from={"images": str(pair[1]), "labels": str(pair[2])})
    attrs = dataset_attrs(
        name,
        spec,
        content_hash(ds.images, ds.labels),
        pixel_scale_nm=float("nan"),
        dose_e_per_A2=float(spec.get("dose_e_per_A2", float("nan"))),
        patch_size=int(ds.images.shape[-1]),
    )
    return write_dataset_file(out, ds.images, ds.labels, ds.provenance, attrs)


def dataset_summary(path) -> dict:
    """Header facts of a dataset file without loading the arrays: shapes, attrs, particle fraction."""
    path = Path(path)
    pair = published_pair(path)
    files = (pair[1], pair[2]) if pair else (path, path)
    out: dict = {"path": str(path)}
    with _open(files[0]) as f:
        if "images" not in f:
            raise DatasetError(f"{files[0]}: no dataset 'images' (found: {', '.join(sorted(f.keys())) or 'nothing'})")
        out["images"] = (tuple(f["images"].shape), str(f["images"].dtype))
        if len(out["images"][0]) != 3:
            raise DatasetError(f"{files[0]}: dataset 'images' has shape {out['images'][0]}, expected (N, H, W)")
        out["attrs"] = {k: _attr(v) for k, v in f.attrs.items()}
        if "provenance" in f and "file" in f["provenance"]:
            out["frames"] = len(set(f["provenance"]["file"].asstr()[()]))
    with _open(files[1]) as f:
        if "labels" not in f:
            raise DatasetError(f"{files[1]}: no dataset 'labels' (found: {', '.join(sorted(f.keys())) or 'nothing'})")
        lab = f["labels"]
        out["labels"] = (tuple(lab.shape), str(lab.dtype))
        if out["labels"][0] != out["images"][0]:
            raise DatasetError(
                f"{files[1]}: 'labels' has shape {out['labels'][0]}, 'images' {out['images'][0]}; they must match"
            )
        n = lab.shape[0]
        total = 0
        for i in range(0, n, 256):  # bounded memory on large files
            total += int(np.count_nonzero(lab[i : i + 256]))
        out["particle_fraction"] = total / max(1, int(np.prod(lab.shape)))
    if pair:
        out["attrs"].setdefault("name", pair[0])
        out["attrs"].setdefault("format", "published-pair")
    return out
