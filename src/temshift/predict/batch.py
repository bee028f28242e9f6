"""A batch of frames through the models: what ``temshift predict`` and ``temshift check`` do.

For each frame (:func:`predict_frames`): read it and settle its metadata (flag > file >
catalog, :mod:`temshift.predict.metadata`), choose its models (a fixed model or ensemble,
or ``zoo:auto``), segment it (:func:`temshift.predict.pipeline.predict_frame`, pixel-scale
matching, optional TTA), measure it (:func:`temshift.predict.shift.frame_statistics`),
assess its dataset-shift risk, refuse it in strict mode when the risk is high, and measure
its particles. After the batch, frames recorded alike and given to the same models get the
batch findings (:func:`assess_batches`). A frame that fails is recorded with its one-line
reason and the batch goes on. :func:`check_frames` does the same without segmenting.
Files are written by :func:`temshift.predict.outputs.write_predictions`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from temshift.errors import SpecError, TemshiftError
from temshift.predict.metadata import FrameMetadata

if TYPE_CHECKING:
    from temshift.predict.shift import TrainingReference

#: smallest tile edge: 2 x the 128 px overlap + 16
MIN_TILE = 272


@dataclass(frozen=True)
class PredictSettings:
    """Every setting of a prediction run (recorded in ``prediction.json``).

    Attributes
    ----------
    pixel_scale_nm : float, optional
        Frame pixel scale, nm/pixel, for every frame (overrides file and catalog).
    dose_e_per_A2 : float, optional
        Frame dose, e/A^2, for every frame (overrides the catalog).
    frame : int or "sum", optional
        For stacks: the frame to read, or their sum.
    rescale, match_noise : bool
        Pixel-scale matching, and restoring the training scale's pixel noise after it.
    estimate_scale : bool
        A frame with no pixel scale (no flag, file metadata or catalog row) gets one
        estimated from its lattice fringes, when confident
        (:func:`temshift.predict.metadata.with_estimated_scale`); only with `rescale`.
    material : str, optional
        Particle material of every frame for that estimate (overrides the catalog; default:
        the catalog's, else fcc Au is assumed).
    threshold : float
        Probability from which a pixel is particle.
    tile, batch_size : int
        Largest tile edge (pixels) and tiles per forward pass.
    tta : bool
        Test-time augmentation over the 8 dihedral variants.
    strict : bool
        Refuse high-risk frames (no mask is written for them).
    particles, watershed : bool
        Particle tables; split touching particles.
    save_probabilities : bool
        Also write the probability map.
    threads : int, optional
        Torch CPU threads for the process (default: torch's).
    device : str
        Torch device.
    """

    pixel_scale_nm: float | None = None
    dose_e_per_A2: float | None = None
    frame: int | str | None = None
    rescale: bool = True
    match_noise: bool = True
    estimate_scale: bool = True
    material: str | None = None
    threshold: float = 0.5
    tile: int = 2048
    batch_size: int = 1
    tta: bool = False
    strict: bool = False
    particles: bool = True
    watershed: bool = False
    save_probabilities: bool = False
    threads: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        from temshift.units import check_pixel_scale_nm

        if self.pixel_scale_nm is not None:
            check_pixel_scale_nm(self.pixel_scale_nm, "pixel_scale_nm")
        if self.dose_e_per_A2 is not None and not (np.isfinite(self.dose_e_per_A2) and self.dose_e_per_A2 > 0):
            raise SpecError(f"dose_e_per_A2 must be a positive number, got {self.dose_e_per_A2}")
        if self.material is not None:
            from temshift.preprocess.scale_estimate import MATERIALS

            if not any(self.material.strip().lower() == m.lower() for m in MATERIALS):
                raise SpecError(f"material {self.material!r}: no known lattice (known: {', '.join(MATERIALS)})")
        if self.tile < MIN_TILE:
            raise SpecError(f"tile must be at least {MIN_TILE} pixels, got {self.tile}")
        if self.batch_size < 1 or (self.threads is not None and self.threads < 1):
            raise SpecError("batch_size and threads must be at least 1")
        if not 0.0 < self.threshold < 1.0:
            raise SpecError(f"threshold must be between 0 and 1, got {self.threshold}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FramePrediction:
    """One frame of a batch: its metadata, models, segmentation, shift report and particles.

    Attributes
    ----------
    path : Path
        The frame file.
    name, stem : str
        Its name in the batch's tables and the prefix of its output files
        (:func:`temshift.predict.naming.unique_frame_names`).
    metadata : FrameMetadata or None
        Recorded conditions and their sources (None when the file could not be read).
    image : numpy.ndarray or None
        The raw frame (counts), for the overlay.
    segmentation : Segmentation or None
        Probabilities, mask, spread (:class:`temshift.predict.pipeline.Segmentation`);
        None for :func:`check_frames` and failed frames.
    stats : dict or None
        Frame statistics (:func:`temshift.predict.shift.frame_statistics`).
    report : ShiftReport or None
        Dataset-shift risk (with the batch findings once :func:`assess_batches` ran).
    model_key : str or None
        Which models predicted it (model path, or the zoo training set's name).
    predictor : Predictor or None
        Those models.
    reference : temshift.predict.shift.TrainingReference or None
        The training reference it was compared with.
    choice_note : str or None
        What ``zoo:auto`` picked and why.
    particles : pandas.DataFrame or None
        Particle table (with ``settings.particles``, not for refused frames).
    refused : bool
        Strict mode refused it (high risk): no mask is written.
    error : str or None
        One-line reason the frame failed (then most fields are None).
    outputs : list of str
        Files written for it (by :func:`temshift.predict.outputs.write_frame_outputs`).
    """

    path: Path
    name: str
    stem: str
    metadata: FrameMetadata | None = None
    image: np.ndarray | None = None
    segmentation: Any = None
    stats: dict[str, Any] | None = None
    report: Any = None
    model_key: str | None = None
    predictor: Any = None
    reference: TrainingReference | None = None
    choice_note: str | None = None
    particles: Any = None
    refused: bool = False
    error: str | None = None
    outputs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The frame was read and assessed (it may still be refused)."""
        return self.error is None

    @property
    def mask(self) -> np.ndarray | None:
        """(H, W) uint8 {0, 1} mask on the frame grid, or None."""
        return None if self.segmentation is None else self.segmentation.mask

    def release_arrays(self) -> None:
        """Drop the frame-sized arrays (image, segmentation) and keep the report and tables."""
        self.image = None
        self.segmentation = None


def failure_reason(path: str | Path, exc: BaseException) -> str:
    """One line naming the frame and why it failed (the file named once)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    reason = text if isinstance(exc, TemshiftError) else f"{type(exc).__name__}: {text}".rstrip(": ")
    return reason if str(path) in reason else f"{path}: {reason}"


def model_chooser(
    models: Any,
    *,
    ensemble: Sequence[str | Path] | None = None,
    zoo_dir: str | Path | None = None,
    train_dataset: str | Path | None = None,
) -> Any:
    """A :class:`temshift.predict.chooser.ModelChooser` for `models`.

    `models` is a chooser already, a loaded :class:`~temshift.predict.pipeline.Predictor`,
    a model path / run directory / shipped model name / ``"zoo:auto"``, or a list of model
    paths (an ensemble).
    """
    from temshift.predict.chooser import Choice, ModelChooser
    from temshift.predict.pipeline import Predictor

    if isinstance(models, (ModelChooser, _Fixed)):
        return models
    if isinstance(models, Predictor):
        key = str(models.paths[0]) if models.paths else "models"
        return _Fixed(Choice(models, models.training_reference(train_dataset), key))
    if isinstance(models, (list, tuple)):
        first, *more = models
        return ModelChooser(first, [*more, *(ensemble or [])], zoo_dir, train_dataset)
    return ModelChooser(models, list(ensemble or []) or None, zoo_dir, train_dataset)


@dataclass
class _Fixed:
    """The chooser of loaded models: the same choice for every frame."""

    choice: Any
    auto: bool = False

    def for_frame(self, **_conditions: Any) -> Any:
        return self.choice


def _catalog(catalog: Any) -> Any:
    """A Catalog from a Catalog, a CSV path, or None (the published one, read once per batch)."""
    from temshift.catalog import Catalog

    if catalog is None:
        return Catalog.published()
    if isinstance(catalog, (str, Path)):
        return Catalog.read(catalog)
    return catalog


def _settings(settings: PredictSettings | None, options: dict[str, Any]) -> PredictSettings:
    settings = settings or PredictSettings()
    return replace(settings, **options) if options else settings


def _records(frames: Iterable[str | Path]) -> list[FramePrediction]:
    from temshift.predict.naming import unique_frame_names

    paths = [Path(p) for p in frames]
    return [FramePrediction(p, name, stem) for p, (name, stem) in zip(paths, unique_frame_names(paths))]


def _read_and_choose(
    rec: FramePrediction, chooser: Any, cat: Any, s: PredictSettings
) -> tuple[Any, FrameMetadata, TrainingReference]:
    """Read the frame, settle its metadata, pick its models (fills `rec`); returns the Frame, its
    metadata and the training reference."""
    from temshift.predict.metadata import read_frame_metadata, with_estimated_scale

    frame, meta = read_frame_metadata(
        rec.path, pixel_scale_nm=s.pixel_scale_nm, dose_e_per_A2=s.dose_e_per_A2, catalog=cat, frame=s.frame
    )
    if s.estimate_scale and s.rescale:
        meta = with_estimated_scale(frame.data, meta, material=s.material)
    rec.metadata = meta
    choice = chooser.for_frame(
        pixel_scale_nm=meta.pixel_scale_nm,
        dose_e_per_A2=meta.dose_e_per_A2,
        material=meta.material,
        diameter_nm=meta.diameter_nm,
        name=rec.path.name,
    )
    rec.predictor, rec.reference, rec.model_key, rec.choice_note = (
        choice.predictor,
        choice.reference,
        choice.key,
        choice.note,
    )
    return frame, meta, choice.reference


def _particles(seg: Any, pixel_scale_nm: float | None, s: PredictSettings) -> Any:
    from temshift.predict import particles as parts

    spread = {} if seg.std is None else {"probabilities": seg.probabilities, "std": seg.std, "members": seg.members}
    return parts.particle_table(seg.mask, pixel_scale_nm, watershed=s.watershed, **spread)


def _statistics(seg: Any, meta: FrameMetadata, patch_size: int) -> dict[str, Any]:
    """The frame statistics of a segmented frame, measured on its model input (for the shift report)."""
    from temshift.predict.shift import frame_statistics

    return frame_statistics(
        seg.model_input,
        pixel_scale_nm=meta.pixel_scale_nm,
        pixel_scale_source=meta.pixel_scale_source,
        input_pixel_scale_nm=seg.input_pixel_scale_nm,
        rescaled=seg.zoom != 1.0,
        dose_e_per_A2=meta.dose_e_per_A2,
        mask=seg.input_mask,
        tile=patch_size,
        native_image=seg.native_input,
        zoom=seg.zoom,
    )


def _measure(seg: Any, meta: FrameMetadata, patch_size: int, s: PredictSettings) -> tuple[dict[str, Any], Any]:
    """Frame statistics and, unless strict mode may refuse the frame, its particle table: both inside
    the frame's ``try``, so that a table that fails fails its frame only (in strict mode the table
    waits for the report: a refused frame gets none).

    (Run side by side on two threads they were not faster, measured on a 4096^2 frame: the
    statistics already use both cores, and the particle table holds the GIL.)
    """
    stats = _statistics(seg, meta, patch_size)
    table = _particles(seg, meta.pixel_scale_nm, s) if s.particles and not s.strict else None
    return stats, table


Status = Callable[[str], contextlib.AbstractContextManager[Any]]


def predict_frames(
    models: Any,
    frames: Iterable[str | Path],
    settings: PredictSettings | None = None,
    *,
    catalog: Any = None,
    ensemble: Sequence[str | Path] | None = None,
    zoo_dir: str | Path | None = None,
    train_dataset: str | Path | None = None,
    status: Status | None = None,
    on_frame: Callable[[FramePrediction], None] | None = None,
    keep_arrays: bool = True,
    on_segmented: Callable[[FramePrediction, np.ndarray, Any], None] | None = None,
    **options: Any,
) -> list[FramePrediction]:
    """Segment a batch of raw frames and assess each one's dataset-shift risk.

    Parameters
    ----------
    models : path, list of paths, Predictor or ModelChooser
        A checkpoint, released weights, run directory (its ``model.pt`` files form an
        ensemble), shipped model name, ``"zoo:auto"``, a list of these (an ensemble), or
        loaded models (:func:`model_chooser`).
    frames : iterable of path
        Raw frame files.
    settings : PredictSettings, optional
        All settings; keyword `options` (``pixel_scale_nm=0.02, tta=True``) override fields.
    catalog : Catalog or path, optional
        Catalog looked up by file name (default: the published one).
    ensemble, zoo_dir, train_dataset : optional
        More models averaged with `models`; the local zoo folder for ``zoo:auto``; the
        training dataset, when a model does not carry its statistics.
    status : callable, optional
        ``status(message)`` gives a context manager around each frame's segmentation (a
        spinner, a log line).
    on_frame : callable, optional
        Called with each frame's result as soon as it is final except for the batch
        findings (e.g. to write its files, :func:`temshift.predict.outputs.write_frame_outputs`).
    keep_arrays : bool
        Keep the frame-sized arrays in the results; False drops them after `on_frame`
        (a long batch then holds only reports and tables in memory).
    on_segmented : callable, optional
        Called as ``on_segmented(prediction, raw_image, segmentation)`` as soon as a frame is
        segmented, before its statistics, report and particles (e.g. to start encoding its
        files, :meth:`temshift.predict.outputs.FrameWriter.prepare`); the frame may still
        fail or be refused afterwards.

    Returns
    -------
    list of FramePrediction
        One per frame, in order; failed frames carry `error`. The batch findings are in
        the reports.
    """
    from temshift.errors import named
    from temshift.predict.pipeline import predict_frame
    from temshift.predict.shift import assess_shift

    s = _settings(settings, options)
    records = _records(frames)
    cat = _catalog(catalog)
    chooser = model_chooser(models, ensemble=ensemble, zoo_dir=zoo_dir, train_dataset=train_dataset)
    if s.threads:
        import torch

        torch.set_num_threads(s.threads)
    status = status or (lambda _msg: contextlib.nullcontext())
    for rec in records:
        try:  # one bad frame does not stop the batch
            frame, meta, ref = _read_and_choose(rec, chooser, cat, s)
            predictor = rec.predictor
            scale = meta.pixel_scale_nm
            with (
                status(f"segmenting {rec.name} ({len(predictor.models)} model(s){' x 8 variants' if s.tta else ''})"),
                named(rec.path),
            ):
                seg = predict_frame(
                    predictor,
                    frame,
                    scale,
                    rescale=s.rescale,
                    match_noise=s.match_noise,
                    threshold=s.threshold,
                    tile=s.tile,
                    batch_size=s.batch_size,
                    device=s.device,
                    tta=s.tta,
                )
                if on_segmented is not None:
                    on_segmented(rec, frame.data, seg)
                rec.stats, table = _measure(seg, meta, predictor.patch_size, s)
        except Exception as exc:  # noqa: BLE001 -- recorded per frame, the batch goes on
            rec.error = failure_reason(rec.path, exc)
            rec.predictor = rec.reference = None
            _done(rec, on_frame, keep_arrays)
            continue
        rec.image, rec.segmentation = frame.data, seg
        rec.report = assess_shift(rec.stats, ref, rec.name, rescale_requested=s.rescale)
        rec.refused = s.strict and rec.report.level == "high"
        if s.particles and not rec.refused:
            rec.particles = table if table is not None else _particles(seg, scale, s)
        _done(rec, on_frame, keep_arrays)
    assess_batches(records)
    return records


def _done(rec: FramePrediction, on_frame: Callable[[FramePrediction], None] | None, keep_arrays: bool) -> None:
    if on_frame is not None:
        on_frame(rec)
    if not keep_arrays:
        rec.release_arrays()


def check_frames(
    models: Any,
    frames: Iterable[str | Path],
    settings: PredictSettings | None = None,
    *,
    catalog: Any = None,
    zoo_dir: str | Path | None = None,
    train_dataset: str | Path | None = None,
    on_frame: Callable[[FramePrediction], None] | None = None,
    **options: Any,
) -> list[FramePrediction]:
    """Dataset-shift risk of a batch of frames for a model, without segmenting them.

    As :func:`predict_frames` (same parameters), but only preprocessing and pixel-scale
    matching run: the statistics that need a mask (particle contrast) are not measured.
    """
    from temshift.errors import named
    from temshift.predict.shift import assess_shift, frame_statistics
    from temshift.preprocess.model_input import model_input

    s = _settings(settings, options)
    records = _records(frames)
    cat = _catalog(catalog)
    chooser = model_chooser(models, zoo_dir=zoo_dir, train_dataset=train_dataset)
    for rec in records:
        try:  # one bad frame does not stop the batch
            frame, meta, ref = _read_and_choose(rec, chooser, cat, s)
            predictor, scale = rec.predictor, meta.pixel_scale_nm
            with named(rec.path):
                image, zoom, native = model_input(
                    frame.data,
                    predictor.preprocess,
                    scale,
                    predictor.pixel_scale_nm,
                    s.rescale,
                    return_native=True,
                    match_noise=s.match_noise,
                )
            in_scale = scale / zoom if scale else predictor.pixel_scale_nm
            rec.stats = frame_statistics(
                image,
                pixel_scale_nm=scale,
                pixel_scale_source=meta.pixel_scale_source,
                input_pixel_scale_nm=in_scale,
                rescaled=zoom != 1.0,
                dose_e_per_A2=meta.dose_e_per_A2,
                tile=predictor.patch_size,
                native_image=native,
                zoom=zoom,
            )
        except Exception as exc:  # noqa: BLE001 -- recorded per frame, the batch goes on
            rec.error = failure_reason(rec.path, exc)
            rec.predictor = rec.reference = None
            _done(rec, on_frame, True)
            continue
        rec.report = assess_shift(rec.stats, ref, rec.name, rescale_requested=s.rescale)
        _done(rec, on_frame, True)
    assess_batches(records)
    return records


@dataclass
class BatchFinding:
    """The batch findings of one group of frames recorded alike and given to the same models."""

    frames: list[FramePrediction]
    findings: list[Any] = field(default_factory=list)

    @property
    def conditions(self) -> str:
        """``"0.02 nm/px, 423 e/A2"``: the recorded conditions the frames share, or ``""``."""
        st = self.frames[0].report.stats
        s, d = st.get("pixel_scale_nm"), st.get("dose_e_per_A2")
        return ", ".join(x for x in (f"{s:g} nm/px" if s else "", f"{d:g} e/A2" if d else "") if x)


def _groups(predictions: Sequence[FramePrediction]) -> list[list[FramePrediction]]:
    """Assessed frames grouped by models, then by recorded conditions (`shift.batch_groups`)."""
    from temshift.predict.shift import batch_groups

    done = [p for p in predictions if p.report is not None]
    out = []
    for key in dict.fromkeys(p.model_key for p in done):
        mine = [p for p in done if p.model_key == key]
        by_report = {id(p.report): p for p in mine}
        out += [[by_report[id(r)] for r in group] for group in batch_groups([p.report for p in mine])]
    return out


def assess_batches(predictions: Sequence[FramePrediction]) -> list[BatchFinding]:
    """Add the batch findings (:func:`temshift.predict.shift.assess_batch`) to the frames' reports.

    Called once by :func:`predict_frames` and :func:`check_frames`; read them again with
    :func:`batch_findings`.
    """
    from temshift.predict.shift import TrainingReference, assess_batch

    return [
        BatchFinding(g, assess_batch([p.report for p in g], g[0].reference or TrainingReference()))
        for g in _groups(predictions)
    ]


def batch_findings(predictions: Sequence[FramePrediction]) -> list[BatchFinding]:
    """The batch findings of assessed predictions, per group, as read from their reports."""
    return [BatchFinding(g, [f for f in g[0].report.findings if f.kind == "batch"]) for g in _groups(predictions)]
