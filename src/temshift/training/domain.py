"""Domain randomization for the generalist: parameter ranges and per-frame draws.

`PretrainRanges` is the typed record of what the simulated training frames cover (units in
the names); it is stored in the generalist's checkpoint meta and listed in docs/pretrain.md.
`draw_frame(ranges, seed, index)` draws the parameters of frame `index` from a random stream
seeded by ``(seed, index)`` alone, so a frame does not depend on how many frames a run
makes, in what order or on which worker; `frame_request` turns a draw into the simulator's
`FrameRequest`. Each frame is its own microscope session (session key ``pretrain/<index>``),
so the session-level conditions the simulator draws itself (astigmatism up to 20 A, gain
spread, uneven illumination and gain-reference error) vary frame to frame as well.

The defaults of the fields added after the shipped generalist was trained (clustering,
support thickness, illumination strength) are single values that reproduce the simulator's
own behaviour and consume no random draws, and the default materials are the three of the
paper's repository, so the default ranges still draw exactly the shipped generalist's frames.
Pt and Pd, wider clustering and thicker or thinner supports are opt-in (`--ranges FILE.json`).
New draws come after the old ones in a frame's stream, so widening them leaves every other
parameter of a frame unchanged.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LogRange = tuple[float, float]

#: fields that are lists of options; every other field is a (low, high) range
CHOICES = ("materials", "shapes", "supports", "energies_eV")
#: seed-stream tag of the draws (keeps them apart from other uses of the same seed)
DRAW_STREAM = 11


def _all_known(names, resolve, kind: str, complaint: str):
    """`names` unchanged when `resolve` knows each one (KeyError otherwise: ValueError naming it)."""
    for name in names:
        try:
            resolve(name)
        except KeyError:
            raise ValueError(f"{kind} {name!r} {complaint}") from None
    return names


class PretrainRanges(BaseModel):
    """Parameter ranges of the generalist's simulated training frames.

    Every ``(low, high)`` pair is drawn uniformly, on a log scale where the name says
    ``log`` (fields ``*_log``), per frame. Choices (materials, shapes, supports, beam
    energies) are drawn with equal probability.

    Attributes
    ----------
    materials : tuple of str
        Particle materials (simulator names).
    shapes : tuple of str
        Particle shapes ("Sphere", "Oblong").
    supports : tuple of str
        Support films ("UT Carbon", "SiN").
    diameter_nm_log : (float, float)
        Nominal particle diameter, nm (each particle spreads 10 % around it).
    pixel_scale_nm_log : (float, float)
        Detector pixel size at the specimen, nm/pixel (frames are then resampled to the
        working scale as at prediction).
    dose_e_per_A2_log : (float, float)
        Electron dose, e/A^2.
    density_log : (float, float)
        Multiplier of the simulator's default particle area fraction.
    defocus_A : (float, float)
        Defocus, A (positive = underfocus).
    cs_A_log : (float, float)
        Spherical aberration C30, A (1e4 A = 1 um; corrected to uncorrected instruments).
    focal_spread_A : (float, float)
        1-sigma focal spread, A.
    convergence_mrad : (float, float)
        Illumination semi-angle, mrad.
    aperture_mrad : (float, float)
        Objective aperture semi-angle, mrad. Above 20 mrad at 300 kV the simulator refines
        its field grid to sample the wider band (`temshift.simulate.optics.max_field_sampling_A`):
        at 30 mrad, e.g., a 0.02 nm/px frame gets a field grid twice as fine per axis (measured
        1.3-1.8x slower to simulate), a 0.026 nm/px one the same grid as at 20 mrad.
    energies_eV : tuple of float
        Beam energies, eV.
    gain_counts_per_e_log : (float, float)
        Camera conversion gain, counts per electron (the session spread of the simulator
        comes on top).
    read_noise_counts : (float, float)
        Gaussian read noise, counts rms.
    mtf_floor : (float, float)
        High-frequency floor of the detector MTF.
    mtf_q0_per_px : (float, float)
        MTF half-width, cycles per pixel.
    cluster_fraction : (float, float)
        Probability that a particle is placed touching an earlier one (0 = scattered,
        1 = chains and rafts); default the simulator's 0.4.
    support_thickness_A : (float, float) or None
        Support thickness, A; None = the simulator's draw around the support's mean
        (3 nm carbon, 5 nm SiN, 0.4 nm spread).
    illumination_scale_log : (float, float)
        Strength of beam fall-off and gain-reference error relative to the simulator's
        session draw (5-35 % fall-off, +-2-5 % gain error at 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    materials: tuple[str, ...] = ("Au", "Ag", "CdSe")
    shapes: tuple[str, ...] = ("Sphere", "Oblong")
    supports: tuple[str, ...] = ("UT Carbon", "SiN")
    diameter_nm_log: LogRange = (1.5, 20.0)
    pixel_scale_nm_log: LogRange = (0.02, 0.08)
    dose_e_per_A2_log: LogRange = (30.0, 3000.0)
    density_log: LogRange = (0.3, 3.0)
    defocus_A: LogRange = (-100.0, 600.0)
    cs_A_log: LogRange = (1e4, 1.2e7)
    focal_spread_A: LogRange = (10.0, 50.0)
    convergence_mrad: LogRange = (0.05, 0.3)
    aperture_mrad: LogRange = (10.0, 20.0)
    energies_eV: tuple[float, ...] = (200e3, 300e3)
    gain_counts_per_e_log: LogRange = (2.0, 20.0)
    read_noise_counts: LogRange = (0.5, 8.0)
    mtf_floor: LogRange = (0.03, 0.3)
    mtf_q0_per_px: LogRange = (0.15, 0.5)
    cluster_fraction: LogRange = (0.4, 0.4)
    support_thickness_A: LogRange | None = None
    illumination_scale_log: LogRange = (1.0, 1.0)

    @field_validator("materials")
    @classmethod
    def _known_materials(cls, value):
        from temshift.simulate.specimen import resolve_material

        return _all_known(value, resolve_material, "material", "is not in the simulator's material table")

    @field_validator("supports")
    @classmethod
    def _known_supports(cls, value):
        from temshift.simulate.specimen import resolve_support

        return _all_known(value, resolve_support, "support", "is not simulated")

    @model_validator(mode="after")
    def _ordered(self):
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, tuple) and not value:
                raise ValueError(f"{name}: empty")
            if name not in CHOICES:
                lo, hi = value
                if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                    raise ValueError(f"{name}: need low <= high, got {value}")
                if name.endswith("_log") and lo <= 0:
                    raise ValueError(f"{name}: a log range needs positive bounds, got {value}")
        if not (self.cluster_fraction[0] >= 0.0 and self.cluster_fraction[1] <= 1.0):
            raise ValueError(f"cluster_fraction: need 0 <= low <= high <= 1, got {self.cluster_fraction}")
        if self.support_thickness_A is not None and self.support_thickness_A[0] <= 0:
            raise ValueError(f"support_thickness_A: need a positive thickness, got {self.support_thickness_A}")
        if self.aperture_mrad[0] <= 0:
            raise ValueError(f"aperture_mrad: need a positive semi-angle, got {self.aperture_mrad}")
        return self


class FrameDraw(BaseModel):
    """The drawn parameters of one training frame (JSON-ready, units in the names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    seed: int
    material: str
    shape: str
    support: str
    diameter_nm: float
    pixel_scale_nm: float
    dose_e_per_A2: float
    density: float
    defocus_A: float
    cs_A: float
    focal_spread_A: float
    convergence_mrad: float
    aperture_mrad: float
    energy_eV: float
    gain_counts_per_e: float
    read_noise_counts: float
    mtf_floor: float
    mtf_q0_per_px: float
    cluster_fraction: float = 0.4
    support_thickness_A: float | None = None
    illumination_scale: float = 1.0
    mode: Literal["multislice", "projection"] = "projection"
    frame_size_px: int = Field(..., ge=64)


def _uniform(rng, bounds, log: bool) -> float:
    lo, hi = (float(b) for b in bounds)
    if lo == hi:
        return lo
    if log:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def _choice(rng, options):
    return options[int(rng.integers(len(options)))]


def draw_frame(
    ranges: PretrainRanges,
    seed: int,
    index: int,
    *,
    working_pixel_scale_nm: float,
    working_frame_px: int,
    mode: str = "projection",
) -> FrameDraw:
    """Draw the parameters of frame `index` (a pure function of `seed` and `index`).

    Parameters
    ----------
    ranges : PretrainRanges
    seed, index : int
        Run seed and frame number.
    working_pixel_scale_nm : float
        The generalist's working scale, nm/pixel.
    working_frame_px : int
        Frame edge after resampling to the working scale, pixels: the simulated frame has
        ``working_frame_px * working_pixel_scale_nm / pixel_scale_nm`` pixels per edge.
    mode : {"projection", "multislice"}
        Simulator mode.

    Returns
    -------
    FrameDraw
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), DRAW_STREAM]))
    r = ranges
    px = _uniform(rng, r.pixel_scale_nm_log, True)
    extent_nm = working_frame_px * working_pixel_scale_nm
    diameter = min(_uniform(rng, r.diameter_nm_log, True), extent_nm)  # the simulator needs it to fit
    return FrameDraw(
        index=int(index),
        seed=int(seed),
        material=_choice(rng, r.materials),
        shape=_choice(rng, r.shapes),
        support=_choice(rng, r.supports),
        diameter_nm=diameter,
        pixel_scale_nm=px,
        dose_e_per_A2=_uniform(rng, r.dose_e_per_A2_log, True),
        density=_uniform(rng, r.density_log, True),
        defocus_A=_uniform(rng, r.defocus_A, False),
        cs_A=_uniform(rng, r.cs_A_log, True),
        focal_spread_A=_uniform(rng, r.focal_spread_A, False),
        convergence_mrad=_uniform(rng, r.convergence_mrad, False),
        aperture_mrad=_uniform(rng, r.aperture_mrad, False),
        energy_eV=float(_choice(rng, r.energies_eV)),
        gain_counts_per_e=_uniform(rng, r.gain_counts_per_e_log, True),
        read_noise_counts=_uniform(rng, r.read_noise_counts, False),
        mtf_floor=_uniform(rng, r.mtf_floor, False),
        mtf_q0_per_px=_uniform(rng, r.mtf_q0_per_px, False),
        # drawn last: a degenerate range takes no draw, so the default ranges draw as before
        cluster_fraction=_uniform(rng, r.cluster_fraction, False),
        support_thickness_A=None if r.support_thickness_A is None else _uniform(rng, r.support_thickness_A, False),
        illumination_scale=_uniform(rng, r.illumination_scale_log, True),
        mode=mode,
        frame_size_px=max(64, round(extent_nm / px)),
    )


def frame_request(draw: FrameDraw):
    """The simulator's `FrameRequest` for a draw (each frame its own session)."""
    from temshift.simulate.camera import Camera
    from temshift.simulate.micrograph import FrameRequest
    from temshift.simulate.optics import Microscope

    mic = Microscope(
        energy_eV=draw.energy_eV,
        cs_A=draw.cs_A,
        focal_spread_A=draw.focal_spread_A,
        convergence_mrad=draw.convergence_mrad,
        aperture_mrad=draw.aperture_mrad,
    )
    cam = Camera(
        gain_counts_per_e=draw.gain_counts_per_e,
        read_noise_counts=draw.read_noise_counts,
        mtf_floor=draw.mtf_floor,
        mtf_q0=draw.mtf_q0_per_px,
    )
    return FrameRequest(
        material=draw.material,
        diameter_nm=draw.diameter_nm,
        dose_e_per_A2=draw.dose_e_per_A2,
        pixel_scale_nm=draw.pixel_scale_nm,
        shape=draw.shape,
        support=draw.support,
        frame_size_px=draw.frame_size_px,
        mode=draw.mode,
        seed=draw.seed,
        frame_key=f"pretrain/{draw.index}",
        session_key=f"pretrain/{draw.index}",
        density=draw.density,
        defocus_A=draw.defocus_A,
        cluster_fraction=draw.cluster_fraction,
        support_thickness_A=draw.support_thickness_A,
        illumination_scale=draw.illumination_scale,
        microscope=mic,
        camera=cam,
    )
