"""Dataset-shift warnings: compare a new frame with the model's training data.

The model carries statistics of its training dataset (:func:`training_statistics`): pixel
scale, dose, lattice-fringe periods, SNR, particle contrast and histogram median after
preprocessing (definitions in :mod:`temshift.datasets.statistics`). The same statistics are
computed for each new frame on the model input (after preprocessing and pixel-scale matching)
and compared by :func:`assess_shift`, giving a risk level (``low`` < ``medium`` < ``high``)
with human-readable reasons. A frame is *flagged* when its risk is medium or high.

Thresholds (``(medium, high)``) and why:

- Pixel scale (only when not corrected by resampling): relative difference 5 % / 15 %.
  The fringe period in pixels changes by the same fraction; the paper's magnification
  datasets differ by >= 27 % and fail, 5 % is the spread of nominal calibrations.
- Dose: ``|log2(dose / trained)|`` 0.5 / 1 (factor 1.41 / 2). Shot-noise SNR scales as
  ``sqrt(dose)``; the paper's 884 vs 423 e/A2 (factor 2.1) already costs dice, 80 vs 423
  (factor 5.3) fails. Lower dose -> under-segmentation, higher -> over-segmentation (Fig. S4).
- SNR: the dose-equivalent factor ``(snr / nearest training frame) ** 2`` with the dose
  thresholds (low inside the training frames' range): catches dose shifts when the dose is
  not recorded, and other noise changes (camera, exposure, binning). Measured from the
  nearest training frame rather than the median because SNR varies from frame to frame
  with particle count and support thickness, and the model has seen that variation. Not
  compared for frames resampled from another pixel scale: the structure part of the SNR
  (support texture, fringes) depends on the resolution (on the synthetic magnification
  study, frames matched from 0.020 to 0.042 nm/px measured like a dose x3 although the
  model segmented them as well as its own).
- Fringe period (model-input pixels, i.e. after matching; also reveals a wrong pixel-scale
  calibration): relative distance of the frame's strongest peak to the nearest training peak
  18 % / 30 %. Which reflection dominates depends on particle orientation, and Au {111} /
  {200} (0.235 / 0.204 nm) differ by 15 %, so smaller differences are the same lattice
  (Au and Ag, 0.235 vs 0.236 nm, generalize in the paper); CdSe vs Au differ by ~ 50 %, the
  paper's magnification steps by 27-110 %. No fringes in one frame is noted but not
  flagged: a quick-scale frame holds 1-5 particles, and in-distribution frames without
  detectable fringes occur (2 of 15 on the synthetic dose study) even when every training
  frame had them; a whole batch without fringes is flagged (below).
- Particle contrast under the predicted mask (needs a mask, i.e. after prediction): a *mask
  quality* note, not a shift finding. The mask is the model's own output, so a low value
  says the segmentation of this frame is doubtful (particles missed or background taken for
  particles) rather than that the data differ: on the synthetic magnification study it was
  as low on in-distribution frames that the model failed on (hard dice 0.50, 0.57) as on
  shifted ones. Ratio to the faintest training frame < 0.75 / < 0.5 (frame-to-frame
  contrast varies with particle count, thickness and orientation). Shown in the report
  (``doubts``) and counted as a shift only for a whole batch (below).
- Histogram median after preprocessing: distance to trained median in units of the training
  frames' spread (robust SD, at least 0.05) 3 / 6. Standardization assumes a mostly
  amorphous background; a shifted median means the frame's intensity distribution differs.

Batch findings (:func:`assess_batch`, frames predicted together with the same recorded
pixel scale and dose, at least :data:`BATCH_MIN_FRAMES`): statistics that vary too much from
frame to frame to flag one frame are compared for the batch, and a batch finding is added to
every frame of the batch (medium at most, so ``--strict`` never refuses a frame for it).

- Missing fringes: ``m`` of ``B`` frames show none where ``k`` of ``n`` training frames did;
  flagged when ``P(X >= m) < 0.01`` for ``X ~ Binomial(B, p0)``, ``p0 = (n - k + 1) / (n + 2)``
  (the rule-of-succession rate of fringe-less frames in the training distribution).
- Particle contrast under the masks: the batch median below the faintest training frame
  (for in-distribution frames, at least half of them fainter than all ``n`` training frames:
  probability about ``B / n**2``).
- SNR (frames not resampled): the batch median's dose-equivalent factor against the
  training median, with the dose thresholds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from temshift.datasets.records import TrainingStatistics, positive_or_none
from temshift.datasets.statistics import STATS_VERSION, jsonable, training_statistics
from temshift.models.records import CheckpointMeta
from temshift.preprocess.scale import SCALE_TOLERANCE

LEVELS = ("low", "medium", "high")
PIXEL_SCALE_REL = (0.05, 0.15)
DOSE_LOG2 = (0.5, 1.0)
FRINGE_REL = (0.18, 0.30)
CONTRAST_RATIO = (0.75, 0.5)
MEDIAN_Z = (3.0, 6.0)
MEDIAN_MIN_SPREAD = 0.05
BATCH_MIN_FRAMES = 3
"""Fewest frames for batch findings."""
BATCH_P = 0.01
"""Binomial tail probability below which a batch's missing fringes are flagged."""


@dataclass(frozen=True)
class TrainingReference:
    """What new frames are compared with (:func:`train_reference`).

    Attributes
    ----------
    pixel_scale_nm : float or None
        Training pixel scale, nm/pixel (None: unknown, not compared).
    dose_e_per_A2 : float or None
        Training dose, e/A^2 (None: unknown, not compared).
    statistics : TrainingStatistics or None
        Statistics of the training data (None: only scale and dose are compared).
    """

    pixel_scale_nm: float | None = None
    dose_e_per_A2: float | None = None
    statistics: TrainingStatistics | None = None

    def to_stored(self) -> dict[str, Any]:
        """Flat JSON: the statistics' keys with this scale and dose (as references files hold it)."""
        stats = self.statistics.to_stored() if self.statistics else {}
        return {**stats, "pixel_scale_nm": self.pixel_scale_nm, "dose_e_per_A2": self.dose_e_per_A2}

    @classmethod
    def from_stored(cls, value: dict[str, Any]) -> TrainingReference:
        """Inverse of :meth:`to_stored` (statistics of other definitions are left out)."""
        return cls(
            positive_or_none(value.get("pixel_scale_nm")),
            positive_or_none(value.get("dose_e_per_A2")),
            TrainingStatistics.from_stored(value, STATS_VERSION),
        )


@dataclass
class Finding:
    """One compared statistic: key, risk level, a human-readable message and its kind.

    ``kind`` is ``"shift"`` (the data differ from the training data; sets the risk level),
    ``"batch"`` (the same for the batch the frame was predicted with), ``"quality"`` (the
    predicted mask is doubtful; reported, never sets the risk level) or ``"unchecked"`` (a
    statistic that could not be compared, e.g. an unknown dose; reported so that a low risk
    is not read as "checked and fine").
    """

    key: str
    level: str
    message: str
    kind: str = "shift"


@dataclass
class ShiftReport:
    """Risk of one frame: overall level (worst finding), findings and the frame statistics."""

    frame: str
    level: str
    findings: list[Finding] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        """True for medium or high risk."""
        return self.level != "low"

    def messages(self, kinds=("shift", "batch")) -> list[str]:
        """Messages of the medium/high findings of these kinds, worst first."""
        bad = [f for f in self.findings if f.level != "low" and f.kind in kinds]
        bad.sort(key=lambda f: -LEVELS.index(f.level))
        return [f.message for f in bad]

    @property
    def reasons(self) -> list[str]:
        """Messages of the medium/high shift and batch findings, worst first."""
        return self.messages(("shift", "batch"))

    @property
    def not_compared(self) -> list[str]:
        """Messages of the statistics that were not compared (unknown dose or pixel scale)."""
        return [f.message for f in self.findings if f.kind == "unchecked"]

    @property
    def doubts(self) -> list[str]:
        """Messages of the medium/high mask-quality findings (the prediction itself is doubtful)."""
        return self.messages(("quality",))

    def add(self, findings) -> None:
        """Append findings and recompute the level (worst shift or batch finding)."""
        self.findings.extend(findings)
        self.level = overall_level(self.findings)

    def to_dict(self) -> dict:
        return {
            "frame": self.frame,
            "level": self.level,
            "flagged": self.flagged,
            "reasons": self.reasons,
            "doubts": self.doubts,
            "not_compared": self.not_compared,
            "findings": [asdict(f) for f in self.findings],
            "stats": jsonable(self.stats),
        }


def overall_level(findings) -> str:
    """Worst level of the shift and batch findings (quality findings do not count)."""
    return max((f.level for f in findings if f.kind in ("shift", "batch")), key=LEVELS.index, default="low")


def _level(value: float, limits: tuple[float, float]) -> str:
    return "high" if value > limits[1] else "medium" if value > limits[0] else "low"


def model_training_statistics(
    meta: CheckpointMeta, dataset_path: str | Path | None = None
) -> TrainingStatistics | None:
    """Training statistics for a loaded model: carried in its meta, else computed lazily.

    Takes ``meta.training_statistics`` (present only when of the current definitions);
    otherwise measures the training dataset (`dataset_path`, or ``meta.dataset.path`` when
    that file exists). Returns None when neither is available (then only pixel scale and
    dose, from the spec, are compared).
    """
    if meta.training_statistics is not None:
        return meta.training_statistics
    path = dataset_path or (meta.dataset.path if meta.dataset else None)
    if path and Path(path).is_file():
        return training_statistics(path)
    return None


def frame_statistics(
    model_input: np.ndarray,
    *,
    pixel_scale_nm: float | None,
    input_pixel_scale_nm: float | None,
    rescaled: bool,
    dose_e_per_A2: float | None = None,
    mask: np.ndarray | None = None,
    tile: int = 512,
    native_image: np.ndarray | None = None,
    zoom: float = 1.0,
    pixel_scale_source: str | None = None,
) -> dict:
    """Statistics of a new frame, measured on the model input.

    Parameters
    ----------
    model_input : numpy.ndarray
        Preprocessed frame at the model's pixel scale (as fed to the network).
    pixel_scale_nm : float or None
        The frame's own pixel scale, nm/pixel.
    input_pixel_scale_nm : float or None
        Pixel scale of `model_input`, nm/pixel.
    rescaled : bool
        Whether the frame was resampled to the training pixel scale.
    dose_e_per_A2 : float, optional
        Electron dose of the frame, e/A^2.
    mask : numpy.ndarray, optional
        Predicted mask on the model-input grid (enables the contrast statistic).
    tile : int
        Tile edge, pixels (the training patch size).
    native_image : numpy.ndarray, optional
        The preprocessed frame before resampling. Interpolation correlates pixel noise, so
        the SNR is measured here and converted to the model grid with the shot-noise law:
        one model pixel integrates ``1 / zoom**2`` frame pixels, so ``snr / zoom``.
    zoom : float
        Resampling factor from the frame to the model input (pixels per frame pixel).
    pixel_scale_source : str, optional
        Where `pixel_scale_nm` came from (``estimated``: the report says so).
    """
    from temshift.datasets.statistics import image_statistics, noise_snr

    s = image_statistics(model_input, mask, tile=tile)
    if native_image is not None and zoom != 1.0:
        s["snr"] = noise_snr(native_image, tile=tile) / zoom
    s.update(
        pixel_scale_nm=pixel_scale_nm,
        input_pixel_scale_nm=input_pixel_scale_nm,
        rescaled=bool(rescaled),
        dose_e_per_A2=dose_e_per_A2,
    )
    if pixel_scale_source == "estimated":
        s["pixel_scale_source"] = pixel_scale_source
    return s


def _fmt_period(px: float, scale: float | None) -> str:
    return f"{px * scale:.3g} nm" if scale else f"{px:.3g} px"


def assess_shift(
    frame_stats: dict, train: TrainingReference, name: str = "", *, rescale_requested: bool = True
) -> ShiftReport:
    """Compare frame statistics with training statistics; risk level and reasons.

    Parameters
    ----------
    frame_stats : dict
        From :func:`frame_statistics`.
    train : TrainingReference
        From :func:`train_reference` (without statistics when the training dataset is
        unavailable: then only pixel scale and dose are compared).
    name : str
        Frame name for the report.
    rescale_requested : bool
        Whether pixel-scale matching was on (a missing frame pixel scale is then a finding).

    Returns
    -------
    ShiftReport
    """
    out: list[Finding] = []
    st = train.statistics
    s, s0 = frame_stats.get("pixel_scale_nm"), train.pixel_scale_nm
    if s0 is None:
        out.append(
            Finding("pixel_scale", "low", "pixel scale not compared: training pixel scale unknown", kind="unchecked")
        )
    elif s is None and rescale_requested:
        out.append(
            Finding(
                "pixel_scale",
                "medium",
                f"frame pixel scale unknown: assumed the model's {s0:.3g} nm/px (frame not resampled); "
                "pass --pixel-scale",
            )
        )
    elif s is None:
        out.append(
            Finding(
                "pixel_scale",
                "low",
                f"pixel scale not compared: frame pixel scale unknown (trained {s0:.3g} nm/px); pass --pixel-scale",
                kind="unchecked",
            )
        )
    elif frame_stats.get("rescaled"):
        how = " (estimated from lattice fringes)" if frame_stats.get("pixel_scale_source") == "estimated" else ""
        out.append(Finding("pixel_scale", "low", f"pixel scale {s:.3g} nm/px{how} resampled to trained {s0:.3g} nm/px"))
    else:
        rel = abs(s / s0 - 1.0)
        lvl = _level(rel, PIXEL_SCALE_REL)
        if rel <= SCALE_TOLERANCE:
            # within calibration precision: the frame is not resampled because it needs no resampling
            msg = f"pixel scale {s:.3g} nm/px matches trained {s0:.3g} nm/px ({rel:.0%} off)"
            if frame_stats.get("pixel_scale_source") == "estimated":
                msg += " (estimated from lattice fringes)"
        elif lvl == "low":
            msg = (
                f"pixel scale {s:.3g} vs trained {s0:.3g} nm/px ({rel:.0%} off, not resampled): "
                "within calibration spread"
            )
        else:
            msg = (
                f"pixel scale {s:.3g} vs trained {s0:.3g} nm/px ({rel:.0%} off, not resampled): "
                "features have the wrong size for the model"
            )
        out.append(Finding("pixel_scale", lvl, msg))

    d, d0 = frame_stats.get("dose_e_per_A2"), train.dose_e_per_A2
    if d and d0:
        r = d / d0
        lvl = _level(abs(math.log2(r)), DOSE_LOG2)
        effect = "expect under-segmentation" if r < 1 else "expect over-segmentation"
        out.append(
            Finding("dose", lvl, f"dose {d:.3g} e/A2 vs trained {d0:.3g}" + (f": {effect}" if lvl != "low" else ""))
        )
    elif not d:
        out.append(
            Finding(
                "dose",
                "low",
                "dose not compared: frame dose unknown (not in the catalog; pass --dose)"
                + ("" if d0 else "; training dose unknown too"),
                kind="unchecked",
            )
        )
    else:
        out.append(
            Finding("dose", "low", f"dose not compared: training dose unknown (frame {d:.3g} e/A2)", kind="unchecked")
        )

    snr, snr0 = frame_stats.get("snr"), st.snr if st else None
    if snr is not None and snr0 and snr0.median and frame_stats.get("rescaled"):
        # the structure part of the SNR (support texture, fringes) changes with resolution, so
        # SNRs at two pixel scales are not comparable; the dose comparison still applies
        out.append(
            Finding(
                "snr",
                "low",
                f"image SNR {snr:.3g} vs trained {snr0.median:.3g} "
                "(not compared: frame resampled from another pixel scale)",
            )
        )
    elif snr is not None and snr0 and snr0.median:
        q = (snr / snr0.median) ** 2 if snr0.median > 0 else 1.0
        # distance to the nearest training frame, not to the median: the model has seen
        # every SNR inside the training range
        bound = min(max(snr, snr0.min), snr0.max)
        q_edge = (snr / bound) ** 2 if bound > 0 else 1.0
        lvl = "low" if q <= 0 else _level(abs(math.log2(max(q_edge, 1e-6))), DOSE_LOG2)
        effect = "expect under-segmentation" if q < 1 else "expect over-segmentation"
        out.append(
            Finding(
                "snr",
                lvl,
                f"image SNR {snr:.3g} vs trained {snr0.median:.3g} (like a dose "
                f"x{q:.2g})" + (f": {effect}" if lvl != "low" else ""),
            )
        )

    peaks0 = st.fringe_peaks if st else ()
    if st and peaks0:
        sc = frame_stats.get("input_pixel_scale_nm")
        p = frame_stats.get("fringe_period_px")
        fp0 = st.fringe_period_px
        with_fringes = fp0.n if fp0 else 0
        n_train = st.n_frames
        if p is None and with_fringes is not None and n_train and with_fringes < n_train:
            # some training frames had no detectable fringes either (few particles, low dose)
            out.append(
                Finding(
                    "fringe",
                    "low",
                    f"no lattice fringes detected (nor in {n_train - with_fringes} of {n_train} training frames)",
                )
            )
        elif p is None:
            # one frame without fringes is not evidence of a shift (few particles); a batch is
            out.append(
                Finding(
                    "fringe",
                    "low",
                    "no lattice fringes detected in this frame (trained frames show "
                    f"{_fmt_period(peaks0[0].period_px, s0)})",
                )
            )
        else:
            ref = min((q.period_px for q in peaks0), key=lambda q0: abs(p / q0 - 1))
            rel = abs(p / ref - 1)
            lvl = _level(rel, FRINGE_REL)
            out.append(
                Finding(
                    "fringe",
                    lvl,
                    f"fringe spacing {_fmt_period(p, sc)} ({p:.3g} px) vs trained "
                    f"{_fmt_period(ref, s0)} ({ref:.3g} px)"
                    + (f": differs by {rel:.0%} on the model's pixel grid" if lvl != "low" else ""),
                )
            )

    c, c_train = frame_stats.get("contrast"), st.contrast if st else None
    c0 = c_train.median if c_train else None
    if c is not None and c_train and c0:
        # as for SNR, measured from the faintest training frame
        ratio = c / min(c0, c_train.min)
        lvl = "high" if ratio < CONTRAST_RATIO[1] else "medium" if ratio < CONTRAST_RATIO[0] else "low"
        out.append(
            Finding(
                "contrast",
                lvl,
                f"particle contrast under the mask {c:.2g} vs trained {c0:.2g}"
                + (": doubtful mask (particles missed, or background taken for particles)" if lvl != "low" else ""),
                kind="quality",
            )
        )

    m, m0 = frame_stats.get("median"), st.median if st else None
    if m is not None and m0:
        z = abs(m - m0.median) / max(m0.spread or 0.0, MEDIAN_MIN_SPREAD)
        lvl = _level(z, MEDIAN_Z)
        out.append(
            Finding(
                "median",
                lvl,
                f"histogram median after preprocessing {m:.3g} vs trained {m0.median:.3g}"
                + (
                    ": intensity distribution differs (mostly crystalline frame? other preprocessing?)"
                    if lvl != "low"
                    else ""
                ),
            )
        )

    return ShiftReport(frame=name, level=overall_level(out), findings=out, stats=frame_stats)


def _binomial_tail(m: int, n: int, p: float) -> float:
    """``P(X >= m)`` for ``X ~ Binomial(n, p)``."""
    return float(sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(m, n + 1)))


def assess_batch(
    reports: list[ShiftReport], train: TrainingReference, *, min_frames: int = BATCH_MIN_FRAMES
) -> list[Finding]:
    """Compare a batch of frames with the training frames; add the batch findings to every report.

    Parameters
    ----------
    reports : list of ShiftReport
        Reports of frames recorded under the same conditions (same pixel scale and dose),
        from :func:`assess_shift` (their ``stats`` are used).
    train : TrainingReference
        As for :func:`assess_shift`.
    min_frames : int
        Batches with fewer frames get no batch findings.

    Returns
    -------
    list of Finding
        The batch findings (kind ``"batch"``, level low or medium), also appended to each
        report, whose level is recomputed.
    """
    st = train.statistics
    if len(reports) < min_frames:
        return []
    out: list[Finding] = []
    stats = [r.stats for r in reports]

    n_train, fp0 = (st.n_frames, st.fringe_period_px) if st else (0, None)
    if st and st.fringe_peaks and n_train:
        k = fp0.n if fp0 else 0
        measured = [s for s in stats if "fringe_period_px" in s]
        m = sum(1 for s in measured if s.get("fringe_period_px") is None)
        if measured and m:
            p0 = (n_train - k + 1) / (n_train + 2)
            tail = _binomial_tail(m, len(measured), p0)
            lvl = "medium" if tail < BATCH_P else "low"
            out.append(
                Finding(
                    "batch_fringe",
                    lvl,
                    f"{m} of {len(measured)} frames of this batch show no lattice "
                    f"fringes (training frames without fringes: {n_train - k} of {n_train})"
                    + (": low dose, defocus or other material?" if lvl != "low" else ""),
                    kind="batch",
                )
            )

    c_train = st.contrast if st else None
    contrasts = [s["contrast"] for s in stats if s.get("contrast") is not None]
    if len(contrasts) >= min_frames and c_train and c_train.min:
        med = float(np.median(contrasts))
        lvl = "medium" if med < c_train.min else "low"
        out.append(
            Finding(
                "batch_contrast",
                lvl,
                f"median particle contrast of the batch {med:.2g} vs training "
                f"frames {c_train.min:.2g}-{c_train.max:.2g}"
                + (
                    ": fainter than every training frame, expect missed particles or false detections"
                    if lvl != "low"
                    else ""
                ),
                kind="batch",
            )
        )

    snr0 = st.snr if st else None
    snrs = [s["snr"] for s in stats if s.get("snr") is not None and not s.get("rescaled")]
    if len(snrs) >= min_frames and snr0 and snr0.median:
        q = (float(np.median(snrs)) / snr0.median) ** 2
        lvl = "medium" if q > 0 and abs(math.log2(q)) > DOSE_LOG2[0] else "low"
        effect = "expect under-segmentation" if q < 1 else "expect over-segmentation"
        out.append(
            Finding(
                "batch_snr",
                lvl,
                f"median image SNR of the batch {np.median(snrs):.3g} vs trained "
                f"{snr0.median:.3g} (like a dose x{q:.2g})" + (f": {effect}" if lvl != "low" else ""),
                kind="batch",
            )
        )
    for r in reports:
        r.add(out)
    return out


def batch_groups(reports: list[ShiftReport]) -> list[list[ShiftReport]]:
    """Reports grouped by recorded conditions (pixel scale and dose, rounded), in first-seen order."""
    groups: dict = {}
    for r in reports:
        s, d = r.stats.get("pixel_scale_nm"), r.stats.get("dose_e_per_A2")
        key = (None if s is None else round(float(s), 4), None if d is None else round(float(d)))
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def train_reference(meta: CheckpointMeta, stats: TrainingStatistics | None) -> TrainingReference:
    """Training reference for :func:`assess_shift`: `stats`, with the spec's scale and dose where they have none."""
    spec = meta.dataset_spec
    scale = (stats.pixel_scale_nm if stats else None) or (positive_or_none(spec.pixel_scale_nm) if spec else None)
    dose = (stats.dose_e_per_A2 if stats else None) or (positive_or_none(spec.dose_e_per_A2) if spec else None)
    return TrainingReference(scale, dose, stats)
