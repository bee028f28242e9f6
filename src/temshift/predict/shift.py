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
  paper's magnification steps by 27-110 %. No fringes detected while every training frame
  had them: medium (low when some training frames had none either).
- Particle contrast (needs a mask, i.e. after prediction): ratio to the faintest training
  frame < 0.75 / < 0.5 (as for SNR: the model has seen such frames; frame-to-frame contrast
  varies with particle count, thickness and orientation). Lower
  contrast is the hard direction (train on easy, test on hard fails, Fig. 3-4); higher
  contrast is not flagged.
- Histogram median after preprocessing: distance to trained median in units of the training
  frames' spread (robust SD, at least 0.05) 3 / 6. Standardization assumes a mostly
  amorphous background; a shifted median means the frame's intensity distribution differs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from temshift.datasets.statistics import (STATS_VERSION, jsonable, positive_float, find_key,  # noqa: F401
                                         training_statistics)

LEVELS = ("low", "medium", "high")
PIXEL_SCALE_REL = (0.05, 0.15)
DOSE_LOG2 = (0.5, 1.0)
FRINGE_REL = (0.18, 0.30)
CONTRAST_RATIO = (0.75, 0.5)
MEDIAN_Z = (3.0, 6.0)
MEDIAN_MIN_SPREAD = 0.05


@dataclass
class Finding:
    """One compared statistic: key, risk level and a human-readable message."""

    key: str
    level: str
    message: str


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

    @property
    def reasons(self) -> list[str]:
        """Messages of the medium/high findings, worst first."""
        bad = [f for f in self.findings if f.level != "low"]
        bad.sort(key=lambda f: -LEVELS.index(f.level))
        return [f.message for f in bad]

    def to_dict(self) -> dict:
        return {"frame": self.frame, "level": self.level, "flagged": self.flagged, "reasons": self.reasons,
                "findings": [asdict(f) for f in self.findings], "stats": jsonable(self.stats)}


def _level(value: float, limits: tuple[float, float]) -> str:
    return "high" if value > limits[1] else "medium" if value > limits[0] else "low"


def model_training_statistics(meta: dict, dataset_path=None) -> dict | None:
    """Training statistics for a loaded model: carried in its meta, else computed lazily.

    Looks for ``meta["training_statistics"]``; otherwise measures the training dataset
    (`dataset_path`, or ``meta["dataset"]["path"]`` when that file exists). Returns None
    when neither is available (then only pixel scale and dose, from the spec, are compared).
    """
    stats = meta.get("training_statistics")
    if isinstance(stats, dict) and stats.get("version") == STATS_VERSION:
        return stats
    path = dataset_path or (meta.get("dataset") or {}).get("path")
    if path and Path(path).is_file():
        return training_statistics(path)
    return None


def frame_statistics(model_input: np.ndarray, *, pixel_scale_nm: float | None, input_pixel_scale_nm: float | None,
                     rescaled: bool, dose_e_per_A2: float | None = None, mask: np.ndarray | None = None,
                     tile: int = 512, native_image: np.ndarray | None = None, zoom: float = 1.0) -> dict:
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
    """
    from temshift.datasets.statistics import image_statistics, noise_snr

    s = image_statistics(model_input, mask, tile=tile)
    if native_image is not None and zoom != 1.0:
        s["snr"] = noise_snr(native_image, tile=tile) / zoom
    s.update(pixel_scale_nm=pixel_scale_nm, input_pixel_scale_nm=input_pixel_scale_nm, rescaled=bool(rescaled),
             dose_e_per_A2=dose_e_per_A2)
    return s


def _fmt_period(px: float, scale: float | None) -> str:
    return f"{px * scale:.3g} nm" if scale else f"{px:.3g} px"


def assess_shift(frame_stats: dict, train: dict, name: str = "", *, rescale_requested: bool = True) -> ShiftReport:
    """Compare frame statistics with training statistics; risk level and reasons.

    Parameters
    ----------
    frame_stats : dict
        From :func:`frame_statistics`.
    train : dict
        From :func:`training_statistics` (or a partial dict with only ``pixel_scale_nm`` and
        ``dose_e_per_A2`` when the training dataset is unavailable).
    name : str
        Frame name for the report.
    rescale_requested : bool
        Whether pixel-scale matching was on (a missing frame pixel scale is then a finding).

    Returns
    -------
    ShiftReport
    """
    out: list[Finding] = []
    s, s0 = frame_stats.get("pixel_scale_nm"), train.get("pixel_scale_nm")
    if s0 is None:
        out.append(Finding("pixel_scale", "low", "training pixel scale unknown: no pixel-scale check"))
    elif s is None:
        out.append(Finding("pixel_scale", "medium" if rescale_requested else "low",
                           f"frame pixel scale unknown (trained {s0:.3g} nm/px): not matched; pass --pixel-scale"))
    elif frame_stats.get("rescaled"):
        out.append(Finding("pixel_scale", "low", f"pixel scale {s:.3g} nm/px resampled to trained {s0:.3g} nm/px"))
    else:
        rel = abs(s / s0 - 1.0)
        out.append(Finding("pixel_scale", _level(rel, PIXEL_SCALE_REL),
                           f"pixel scale {s:.3g} vs trained {s0:.3g} nm/px ({rel:.0%} off, not resampled): "
                           "features have the wrong size for the model"))

    d, d0 = frame_stats.get("dose_e_per_A2"), train.get("dose_e_per_A2")
    if d and d0:
        r = d / d0
        lvl = _level(abs(math.log2(r)), DOSE_LOG2)
        effect = "expect under-segmentation" if r < 1 else "expect over-segmentation"
        out.append(Finding("dose", lvl, f"dose {d:.3g} e/A2 vs trained {d0:.3g}" + (f": {effect}" if lvl != "low" else "")))

    snr, snr0 = frame_stats.get("snr"), train.get("snr")
    if snr is not None and snr0 and snr0.get("median") and frame_stats.get("rescaled"):
        # the structure part of the SNR (support texture, fringes) changes with resolution, so
        # SNRs at two pixel scales are not comparable; the dose comparison still applies
        out.append(Finding("snr", "low", f"image SNR {snr:.3g} vs trained {snr0['median']:.3g} "
                           "(not compared: frame resampled from another pixel scale)"))
    elif snr is not None and snr0 and snr0.get("median"):
        q = (snr / snr0["median"]) ** 2 if snr0["median"] > 0 else 1.0
        # distance to the nearest training frame, not to the median: the model has seen
        # every SNR inside the training range
        bound = min(max(snr, snr0["min"]), snr0["max"])
        q_edge = (snr / bound) ** 2 if bound > 0 else 1.0
        lvl = "low" if q <= 0 else _level(abs(math.log2(max(q_edge, 1e-6))), DOSE_LOG2)
        effect = "expect under-segmentation" if q < 1 else "expect over-segmentation"
        out.append(Finding("snr", lvl, f"image SNR {snr:.3g} vs trained {snr0['median']:.3g} (like a dose "
                           f"x{q:.2g})" + (f": {effect}" if lvl != "low" else "")))

    peaks0 = train.get("fringe_peaks")
    if peaks0:
        sc = frame_stats.get("input_pixel_scale_nm")
        p = frame_stats.get("fringe_period_px")
        fp0 = train.get("fringe_period_px")
        with_fringes = fp0.get("n") if fp0 else (0 if "fringe_period_px" in train else None)
        n_train = train.get("n_frames")
        if p is None and with_fringes is not None and n_train and with_fringes < n_train:
            # some training frames had no detectable fringes either (few particles, low dose)
            out.append(Finding("fringe", "low", f"no lattice fringes detected (nor in {n_train - with_fringes} of "
                               f"{n_train} training frames)"))
        elif p is None:
            out.append(Finding("fringe", "medium", "no lattice fringes detected (trained frames show "
                               f"{_fmt_period(peaks0[0]['period_px'], s0)}): low dose, defocus or other material?"))
        else:
            ref = min((q["period_px"] for q in peaks0), key=lambda q0: abs(p / q0 - 1))
            rel = abs(p / ref - 1)
            lvl = _level(rel, FRINGE_REL)
            out.append(Finding("fringe", lvl, f"fringe spacing {_fmt_period(p, sc)} ({p:.3g} px) vs trained "
                               f"{_fmt_period(ref, s0)} ({ref:.3g} px)"
                               + (f": differs by {rel:.0%} on the model's pixel grid" if lvl != "low" else "")))

    c, c_train = frame_stats.get("contrast"), train.get("contrast") or {}
    c0 = c_train.get("median")
    if c is not None and c0:
        # as for SNR, measured from the faintest training frame
        ratio = c / min(c0, c_train.get("min", c0))
        lvl = "high" if ratio < CONTRAST_RATIO[1] else "medium" if ratio < CONTRAST_RATIO[0] else "low"
        out.append(Finding("contrast", lvl, f"particle contrast {c:.2g} vs trained {c0:.2g}"
                           + (": fainter particles, expect missed or under-segmented particles" if lvl != "low" else "")))

    m, m0 = frame_stats.get("median"), train.get("median")
    if m is not None and m0:
        z = abs(m - m0["median"]) / max(m0.get("spread") or 0.0, MEDIAN_MIN_SPREAD)
        lvl = _level(z, MEDIAN_Z)
        out.append(Finding("median", lvl, f"histogram median after preprocessing {m:.3g} vs trained {m0['median']:.3g}"
                           + (": intensity distribution differs (mostly crystalline frame? other preprocessing?)"
                              if lvl != "low" else "")))

    level = max((f.level for f in out), key=LEVELS.index, default="low")
    return ShiftReport(frame=name, level=level, findings=out, stats=frame_stats)


def train_reference(meta: dict, stats: dict | None) -> dict:
    """Training reference for :func:`assess_shift`: `stats`, completed with the spec's scale and dose."""
    ref = dict(stats or {})
    spec = meta.get("dataset_spec") or {}
    for key in ("pixel_scale_nm", "dose_e_per_A2"):
        if not ref.get(key):
            ref[key] = positive_float(find_key(spec, key)) or positive_float(meta.get(key))
    return ref
