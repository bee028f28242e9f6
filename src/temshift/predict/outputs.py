"""Files written by ``temshift predict``: masks, overlays, probability maps, risk reports."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from concurrent.futures import Future

    from temshift.models.records import CheckpointMeta
    from temshift.predict.batch import FramePrediction, PredictSettings
    from temshift.predict.histogram import HistogramProcess

OVERLAY_MAX_PX = 2048
"""Overlays are block-averaged down to at most this many pixels per side (a 4096^2 RGB PNG is
~50 MB and slow to write; masks and probabilities keep full resolution)."""


def write_mask_tiff(path, mask: np.ndarray, pixel_scale_nm: float | None = None) -> Path:
    """Write a uint8 {0, 1} mask as TIFF (atomically), with the pixel size as resolution.

    Parameters
    ----------
    path : str or Path
        Output ``.tif``.
    mask : numpy.ndarray
        (H, W) mask, nonzero = particle.
    pixel_scale_nm : float, optional
        nm/pixel, stored as resolution (pixels per cm) in the TIFF tags.
    """
    import tifffile

    from temshift.io.atomic import atomic_path

    path = Path(path)
    kw = {}
    if pixel_scale_nm:
        per_cm = 1e7 / float(pixel_scale_nm)
        kw = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, (np.asarray(mask) != 0).astype(np.uint8), **kw)
    return path


def _block_sums(a: np.ndarray, factor: int, dtype) -> np.ndarray:
    """Sums over `factor` x `factor` blocks, added column offset by column offset, then row by row:
    the same additions in the same order as ``reshape(h, f, w, f).sum(axis=3).sum(axis=1)``
    (so float32 sums equal numpy's block mean to the bit; tests check it) but on strided views,
    ~3.5x faster on a 4096^2 frame than the 4-D reduction."""
    h, w = (a.shape[0] // factor) * factor, (a.shape[1] // factor) * factor
    a = a[:h, :w]
    cols = a[:, 0::factor].astype(dtype)
    for j in range(1, factor):
        cols += a[:, j::factor]
    out = cols[0::factor].copy()
    for i in range(1, factor):
        out += cols[i::factor]
    return out


def _reduce(a: np.ndarray, factor: int) -> np.ndarray:
    """Block means of a float32 image (``reshape(...).mean(axis=(1, 3))``, same bits)."""
    if factor <= 1:
        return a
    return _block_sums(np.asarray(a, dtype=np.float32), factor, np.float32) / np.float32(factor * factor)


def _majority(mask: np.ndarray, factor: int) -> np.ndarray:
    """Blocks of `factor` x `factor` pixels at least half particle (the block mean >= 0.5, counted in integers)."""
    if factor <= 1:
        return mask
    return 2 * _block_sums(mask, factor, np.int32) >= factor * factor


def overlay_rgb(image: np.ndarray, mask: np.ndarray, max_px: int = OVERLAY_MAX_PX) -> np.ndarray:
    """Grey frame (1st-99th percentile stretch) with particles tinted orange and outlined.

    Returns
    -------
    numpy.ndarray
        (h, w, 3) uint8, block-averaged so that the longer side is at most `max_px`.
    """
    from scipy import ndimage as ndi

    factor = int(np.ceil(max(image.shape) / max_px))
    img = _reduce(np.asarray(image, dtype=np.float32), factor)
    m = _majority(np.asarray(mask) != 0, factor)
    lo, hi = np.percentile(img, (1, 99))
    grey = np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)
    to8 = lambda v: (v * 255 + 0.5).astype(np.uint8)  # noqa: E731
    # grey pixels quantized once, then copied to the 3 channels; only particle pixels are tinted
    rgb = np.repeat(to8(grey)[..., None], 3, axis=2)
    tint = np.array([1.0, 0.55, 0.0])
    rgb[m] = to8(0.6 * grey[m][:, None] + 0.4 * tint)
    edge = m & ~ndi.binary_erosion(m)
    rgb[edge] = to8(tint)
    return rgb


OVERLAY_PNG_COMPRESS_LEVEL = 1
"""zlib level of overlay PNGs: on a noisy 2048^2 RGB overlay level 1 encodes in 0.59 s CPU against
0.88 s at level 3 (and ~6x less than PIL's default 6), for a 8 % larger file (5.7 vs 5.2 MB); pixels
are the same at every level."""
MASK_PNG_COMPRESS_LEVEL = 1
"""zlib level of mask PNGs: a 4096^2 mask encodes in half the time of PIL's default 6 (0.29 vs
0.59 s CPU) for 0.9 instead of 0.6 MB; pixels are the same."""


def write_overlay_png(path, image: np.ndarray, mask: np.ndarray, max_px: int = OVERLAY_MAX_PX) -> Path:
    """Write :func:`overlay_rgb` as a PNG, atomically."""
    from temshift.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        _save_overlay_png(tmp, image, mask, max_px)
    return path


def overlay_png_bytes(image: np.ndarray, mask: np.ndarray, max_px: int = OVERLAY_MAX_PX) -> bytes:
    """The PNG file :func:`write_overlay_png` writes, in memory (the same bytes)."""
    import io

    buffer = io.BytesIO()
    _save_overlay_png(buffer, image, mask, max_px)
    return buffer.getvalue()


def _save_overlay_png(target: Any, image: np.ndarray, mask: np.ndarray, max_px: int) -> None:
    from PIL import Image

    Image.fromarray(overlay_rgb(image, mask, max_px), mode="RGB").save(
        target, format="PNG", compress_level=OVERLAY_PNG_COMPRESS_LEVEL
    )


def _write_bytes(path: Path, data: bytes) -> Path:
    from temshift.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_risk_reports(out_dir, reports: list) -> tuple[Path, Path]:
    """Write ``risk.json`` (full findings and statistics) and ``risk.csv`` (one line per frame)."""
    import pandas as pd

    from temshift.io.atomic import atomic_path, atomic_write_text

    out_dir = Path(out_dir)
    data = [r.to_dict() for r in reports]
    jpath = out_dir / "risk.json"
    atomic_write_text(jpath, json.dumps(data, indent=2))
    rows = [
        {
            "frame": d["frame"],
            "risk": d["level"],
            "flagged": d["flagged"],
            "reasons": " | ".join(d["reasons"]),
            "mask_doubts": " | ".join(d.get("doubts", [])),
            "not_compared": " | ".join(d.get("not_compared", [])),
        }
        for d in data
    ]
    cpath = out_dir / "risk.csv"
    with atomic_path(cpath) as tmp:
        pd.DataFrame(rows, columns=["frame", "risk", "flagged", "reasons", "mask_doubts", "not_compared"]).to_csv(
            tmp, index=False
        )
    return jpath, cpath


# --- a batch of predictions (`temshift.predict.batch`) -------------------------------------------

PREDICTION_RECORD = "prediction.json"
"""What produced a prediction folder: version, models and their hashes, settings, frame metadata."""


def write_frame_outputs(
    prediction: FramePrediction,
    out_dir: str | Path,
    settings: PredictSettings | None = None,
    *,
    encoded: dict[str, bytes] | None = None,
) -> list[str]:
    """Write one frame's files: ``<stem>_mask.png``, ``_mask.tif``, ``_overlay.png``, and as set
    ``_probability.tif``, ``_std.tif`` (TTA / ensembles), ``_particles.csv``.

    Nothing is written for a failed frame or one refused in strict mode. The names are
    recorded in ``prediction.outputs``.

    Parameters
    ----------
    prediction : FramePrediction
        With its arrays (:func:`temshift.predict.batch.predict_frames`, ``keep_arrays``).
    out_dir : str or Path
        Existing output folder.
    settings : PredictSettings, optional
        ``save_probabilities`` is read from it.
    encoded : dict, optional
        The mask and overlay PNGs already encoded (:func:`encode_frame_pngs` of the same
        prediction): written as they are.

    Returns
    -------
    list of str
        File names written.
    """
    from temshift.io import write_label_png, write_tiff_frame
    from temshift.predict import particles as parts

    out_dir = Path(out_dir)
    if not prediction.ok or prediction.refused:
        return []
    seg, stem, image, meta = prediction.segmentation, prediction.stem, prediction.image, prediction.metadata
    if seg is None or image is None:
        raise ValueError(f"{prediction.name}: the prediction's arrays were released; write its outputs before")
    if meta is None:
        raise ValueError(f"{prediction.name}: the prediction has no frame metadata")
    scale = meta.pixel_scale_nm
    written = []

    def done(path: Path) -> None:
        written.append(path.name)

    encoded = encoded or {}
    mask_png, overlay_png = out_dir / f"{stem}_mask.png", out_dir / f"{stem}_overlay.png"
    if "mask" in encoded:
        done(_write_bytes(mask_png, encoded["mask"]))
    else:
        done(write_label_png(mask_png, seg.mask, MASK_PNG_COMPRESS_LEVEL))
    done(write_mask_tiff(out_dir / f"{stem}_mask.tif", seg.mask, scale))
    if "overlay" in encoded:
        done(_write_bytes(overlay_png, encoded["overlay"]))
    else:
        done(write_overlay_png(overlay_png, image, seg.mask))
    if settings is not None and settings.save_probabilities:
        done(write_tiff_frame(out_dir / f"{stem}_probability.tif", seg.probabilities, scale))
    if seg.std is not None:
        done(write_tiff_frame(out_dir / f"{stem}_std.tif", seg.std, scale))
    if prediction.particles is not None:
        done(parts.write_particle_csv(prediction.particles, out_dir / f"{stem}_particles.csv"))
    prediction.outputs = written
    return written


def encode_frame_pngs(image: np.ndarray, mask: np.ndarray) -> dict[str, bytes]:
    """A frame's mask and overlay PNG files in memory, as :func:`write_frame_outputs` writes them
    (``{"mask": ..., "overlay": ...}``; pass them to it as `encoded`)."""
    from temshift.io import label_png_bytes

    return {"mask": label_png_bytes(mask, MASK_PNG_COMPRESS_LEVEL), "overlay": overlay_png_bytes(image, mask)}


WRITER_MODULES = (
    "PIL.Image",
    "PIL.PngImagePlugin",
    "tifffile",
    "scipy.ndimage",
    "temshift.io",
    "temshift.predict.particles",
)
"""What :func:`write_frame_outputs` imports (imported by :class:`FrameWriter` before its thread starts)."""


class FrameWriter:
    """Writes frames' files (:func:`write_frame_outputs`) on one background thread.

    PNG and TIFF encoding and numpy release the GIL, so while a frame's files are written
    the caller goes on: the next frame's inference, or the batch's tables and histogram
    (measured on a 4096^2 frame: ~1 s of encoding no longer on the critical path). At most
    one frame waits at a time (memory stays one frame's arrays), errors surface in the next
    :meth:`submit` or in :meth:`wait`, and the files are the same as written in line.

    :meth:`prepare` starts the slow part, encoding the mask and overlay PNGs in memory, as
    soon as a frame is segmented, while the caller measures its statistics and particles;
    :meth:`submit` then writes them. Nothing is written before :meth:`submit` (a frame that
    fails afterwards gets no files), and with ``settings.strict`` nothing is prepared (a
    refused frame's encoding would be wasted).

    Parameters
    ----------
    out_dir : str or Path
        Existing output folder.
    settings : PredictSettings, optional
        As for :func:`write_frame_outputs`.
    """

    def __init__(self, out_dir: str | Path, settings: PredictSettings | None = None) -> None:
        import importlib
        from concurrent.futures import ThreadPoolExecutor

        # the writer's libraries are imported here, on the caller's thread: imported on the writer
        # thread while the caller imports others (matplotlib imports PIL too), one thread can get the
        # other's half-initialized module ("circular import")
        for name in WRITER_MODULES:
            importlib.import_module(name)
        self.out_dir, self.settings = Path(out_dir), settings
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="temshift-writer")
        self._pending: list[tuple[FramePrediction, Future[list[str]]]] = []
        self._encoding: dict[int, Future[dict[str, bytes]]] = {}

    def prepare(self, prediction: FramePrediction, image: np.ndarray, segmentation: Any) -> None:
        """Start encoding the PNGs of a just segmented frame (its raw `image` and `segmentation`);
        :meth:`submit` of the same `prediction` writes them."""
        if self.settings is not None and self.settings.strict:
            return
        self._encoding[id(prediction)] = self._pool.submit(encode_frame_pngs, image, segmentation.mask)

    def submit(self, prediction: FramePrediction) -> None:
        """Start writing `prediction`'s files (its arrays are kept until written, even if released)."""
        import dataclasses

        self.wait()
        encoding = self._encoding.pop(id(prediction), None)
        if prediction.ok and not prediction.refused:
            copy = dataclasses.replace(prediction)  # shallow: holds the arrays after the caller drops them
            self._pending.append(
                (prediction, self._pool.submit(_write_encoded, copy, self.out_dir, self.settings, encoding))
            )

    def wait(self) -> None:
        """Finish the pending writes; record their file names in each prediction's ``outputs``."""
        pending, self._pending = self._pending, []
        for prediction, future in pending:
            prediction.outputs = future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._encoding.clear()
            self._pool.shutdown(wait=True)

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_encoded(
    prediction: FramePrediction,
    out_dir: Path,
    settings: PredictSettings | None,
    encoding: Future[dict[str, bytes]] | None,
) -> list[str]:
    """:func:`write_frame_outputs` with the PNGs :meth:`FrameWriter.prepare` encoded (on the writer thread,
    so the encoding is done by now)."""
    return write_frame_outputs(prediction, out_dir, settings, encoded=None if encoding is None else encoding.result())


def write_batch_outputs(
    predictions: Sequence[FramePrediction],
    out_dir: str | Path,
    settings: PredictSettings | None = None,
    *,
    inputs: dict[str, Any] | None = None,
    frame_writer: FrameWriter | None = None,
    histogram: HistogramProcess | None = None,
) -> list[str]:
    """Write the files of the whole batch: ``particles.csv``, ``particle_summary.csv``,
    ``size_histogram.csv`` / ``.png`` (when particle tables were made), ``risk.json``,
    ``risk.csv`` and :data:`PREDICTION_RECORD`.

    Parameters
    ----------
    predictions : list of FramePrediction
        From :func:`temshift.predict.batch.predict_frames` (arrays not needed).
    out_dir : str or Path
        Existing output folder.
    settings : PredictSettings, optional
        The run's settings (recorded).
    inputs : dict, optional
        What the run was given besides the settings (``models``, ``catalog``,
        ``train_dataset``, ``zoo_dir``), recorded as given.
    frame_writer : FrameWriter, optional
        Still writing the frames' files: waited for before the record is written.
    histogram : HistogramProcess, optional
        Draws ``size_histogram.png`` in its own process (the same file), waited for before the
        record is written.

    Returns
    -------
    list of str
        File names written.
    """
    from temshift.predict import particles as parts

    out_dir = Path(out_dir)
    written = []
    tables = {p.name: p.particles for p in predictions if p.ok and p.particles is not None}
    if tables:
        combined = parts.combine_tables(tables)
        summary, hist = parts.summary_and_histogram(combined, list(tables))
        draw = parts.size_histogram_png if histogram is None else histogram.size_histogram_png
        draw(combined, out_dir / "size_histogram.png", ci=hist)  # first: a HistogramProcess draws meanwhile
        parts.write_particle_csv(combined, out_dir / "particles.csv")
        parts.write_particle_csv(summary, out_dir / "particle_summary.csv")
        parts.write_particle_csv(hist, out_dir / "size_histogram.csv")
        written += ["particles.csv", "particle_summary.csv", "size_histogram.csv", "size_histogram.png"]
    write_risk_reports(out_dir, [p.report for p in predictions if p.report is not None])
    written += ["risk.json", "risk.csv"]
    if histogram is not None:
        histogram.wait()
    if frame_writer is not None:  # the record lists the frames' files: wait for them
        frame_writer.wait()
    write_prediction_record(
        out_dir / PREDICTION_RECORD, predictions, settings, inputs=inputs, batch_outputs=[*written, PREDICTION_RECORD]
    )
    return [*written, PREDICTION_RECORD]


def write_predictions(
    predictions: Iterable[FramePrediction],
    out_dir: str | Path,
    settings: PredictSettings | None = None,
    *,
    inputs: dict[str, Any] | None = None,
) -> list[str]:
    """Write every file ``temshift predict`` writes for these predictions into `out_dir`.

    Per frame :func:`write_frame_outputs` (for frames that still hold their arrays and
    were not written yet), then :func:`write_batch_outputs`; every file atomically.

    Returns
    -------
    list of str
        File names written.
    """
    from temshift.errors import OutputPathError

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputPathError(f"{out_dir}: exists and is a file, not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = list(predictions)
    written: list[str] = []
    for p in predictions:
        if p.segmentation is not None and not p.outputs:
            written += write_frame_outputs(p, out_dir, settings)
    return written + write_batch_outputs(predictions, out_dir, settings, inputs=inputs)


def _sha256(path: str | Path) -> str:
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _model_entry(path: str | Path, meta: CheckpointMeta, hashes: dict[str, str]) -> dict[str, Any]:
    """One model file: path, SHA-256, what it is and the dataset it was trained on."""
    path = Path(path)
    key = str(path.resolve())
    if key not in hashes:
        hashes[key] = _sha256(path)
    ds = meta.dataset
    dataset = (
        {}
        if ds is None
        else {k: getattr(ds, k) for k in ("name", "path", "spec_hash", "content_hash") if getattr(ds, k) is not None}
    )
    if "spec_hash" not in dataset and meta.dataset_spec_hash:
        dataset["spec_hash"] = meta.dataset_spec_hash
    return {
        "path": key,
        "sha256": hashes[key],
        "source": meta.source,
        "kind": meta.kind,
        "training_dataset": dataset or None,
    }


def prediction_record(
    predictions: Sequence[FramePrediction],
    settings: PredictSettings | None = None,
    *,
    inputs: dict[str, Any] | None = None,
    batch_outputs: list[str] | None = None,
) -> dict[str, Any]:
    """The content of :data:`PREDICTION_RECORD` (see :func:`write_prediction_record`)."""
    from temshift import __version__
    from temshift.datasets.statistics import jsonable

    hashes: dict[str, str] = {}
    models: dict[str, dict[str, Any]] = {}
    frames = []
    for p in predictions:
        if p.predictor is not None and p.model_key is not None and p.model_key not in models:
            pred = p.predictor
            models[p.model_key] = {
                "key": p.model_key,
                "pixel_scale_nm": pred.pixel_scale_nm,
                "dose_e_per_A2": pred.dose_e_per_A2,
                "preprocess": pred.preprocess.model_dump() if hasattr(pred.preprocess, "model_dump") else None,
                "files": [_model_entry(f, m, hashes) for f, m in zip(pred.paths, pred.metas)],
            }
        status = "failed" if not p.ok else "refused" if p.refused else "predicted" if p.outputs else "assessed"
        frames.append(
            {
                "frame": p.name,
                "stem": p.stem,
                "path": str(p.path),
                "status": status,
                "error": p.error,
                "models": p.model_key if p.ok else None,
                "choice": p.choice_note,
                "risk": p.report.level if p.report is not None else None,
                "metadata": p.metadata.to_dict() if p.metadata is not None else None,
                "outputs": list(p.outputs),
            }
        )
    record = {
        "temshift_version": __version__,
        "settings": settings.to_dict() if settings is not None else None,
        "inputs": {k: (str(v) if isinstance(v, Path) else v) for k, v in (inputs or {}).items()},
        "models": list(models.values()),
        "frames": frames,
        "batch_outputs": batch_outputs or [],
        "runtime": runtime_record(settings.device if settings is not None else "cpu"),
    }
    return jsonable(record)


def runtime_record(device: str = "cpu") -> dict[str, Any]:
    """What ran the network: torch version, device, threads, and the precision the speed policy chose.

    The masks can differ in pixels near p = 0.5 between bfloat16 (CPUs with native kernels) and
    float32, so a prediction folder says which one produced it.
    """
    import torch

    from temshift.models.runtime import resolve_speed

    channels_last, bf16 = resolve_speed(True, None, torch.device(device))  # prediction's policy
    return {
        "torch_version": torch.__version__,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "precision": "bfloat16" if bf16 else "float32",
        "channels_last": channels_last,
    }


def write_prediction_record(
    path: str | Path,
    predictions: Sequence[FramePrediction],
    settings: PredictSettings | None = None,
    *,
    inputs: dict[str, Any] | None = None,
    batch_outputs: list[str] | None = None,
) -> Path:
    """Write :data:`PREDICTION_RECORD` atomically: temshift version, every setting, each model file
    with its SHA-256 and training dataset hashes, and per frame its metadata with the source of
    each value (``flag``, ``file``, ``catalog``), status, models and files."""
    from temshift.io.atomic import atomic_write_text

    path = Path(path)
    atomic_write_text(
        path, json.dumps(prediction_record(predictions, settings, inputs=inputs, batch_outputs=batch_outputs), indent=2)
    )
    return path
