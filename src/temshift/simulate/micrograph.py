"""One micrograph: specimen -> exit wave -> lens -> detector, plus its exact label.

`simulate_frame` is the whole forward model for one catalog row. Randomness comes from two
independent streams: the **session** stream (seeded by the run seed and the session key
"<date> | <folder>") fixes what a microscope session shares -- mean defocus, astigmatism,
camera gain, illumination and gain-reference error; the **frame** stream (run seed and
"<folder>/<file>") draws everything else -- particles, support, defocus, noise. A frame
therefore does not depend on which other frames are simulated, in what order or on how
many workers.

Defocus: each session has a mean underfocus drawn uniformly in [50, 150] A (operators
focus on the particles a little underfocus for phase contrast of the carbon), each frame
adds N(0, 30 A). Astigmatism: up to 20 A per session, random azimuth.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from temshift.simulate.camera import Camera, detect, electrons_per_pixel
from temshift.simulate.field import CLUSTER_FRACTION, default_area_fraction, expected_count, place_particles
from temshift.simulate.illumination import (
    draw_illumination_params,
    gain_error_field,
    illumination_field,
    scale_illumination,
)
from temshift.simulate.labels import LabelingModel, human_label, particle_label
from temshift.simulate.optics import (
    Microscope,
    field_oversampling,
    image_intensity,
    integrate_pixels,
    max_field_sampling_A,
)
from temshift.simulate.scattering import (
    FINE_SAMPLING_A,
    fine_factor,
    particle_exit_wave,
    paste_wave,
    support_transmission,
)
from temshift.simulate.specimen import make_nanoparticle, resolve_support

MODES = ("multislice", "projection")
#: at most this many particles in one frame (very small particles on very large fields)
MAX_PARTICLES = 400


def key_hash(text: str) -> int:
    """Stable 32-bit hash of a string (CRC32), for seeding."""
    return zlib.crc32(str(text).encode("utf-8"))


@dataclass
class SessionConditions:
    """What all frames of one microscope session share.

    Attributes
    ----------
    defocus_mean_A : float
        Mean defocus (A, positive = underfocus).
    astigmatism_A, astigmatism_angle_rad : float
        Two-fold astigmatism.
    gain_counts_per_e : float
        Camera conversion gain.
    illumination : dict
        Parameters of `illumination.illumination_field` / `gain_error_field`.
    """

    defocus_mean_A: float
    astigmatism_A: float
    astigmatism_angle_rad: float
    gain_counts_per_e: float
    illumination: dict

    def as_dict(self) -> dict:
        """JSON-ready."""
        return {
            "defocus_mean_A": round(self.defocus_mean_A, 3),
            "astigmatism_A": round(self.astigmatism_A, 3),
            "astigmatism_angle_rad": round(self.astigmatism_angle_rad, 4),
            "gain_counts_per_e": round(self.gain_counts_per_e, 4),
            "illumination": self.illumination,
        }


def draw_session(seed: int, session_key: str, camera: Camera | None = None) -> SessionConditions:
    """Conditions of one session, a pure function of (seed, session_key)."""
    camera = camera or Camera()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), key_hash(session_key), 1]))
    return SessionConditions(
        defocus_mean_A=float(rng.uniform(50.0, 150.0)),
        astigmatism_A=float(rng.uniform(0.0, 20.0)),
        astigmatism_angle_rad=float(rng.uniform(0, np.pi)),
        gain_counts_per_e=float(camera.gain_counts_per_e * np.exp(camera.gain_spread * rng.standard_normal())),
        illumination=draw_illumination_params(rng),
    )


@dataclass
class FrameRequest:
    """Everything that defines one simulated frame.

    Attributes
    ----------
    material : str
        A key of `specimen.MATERIALS` ("Au", "Ag", "CdSe", "Pt", "Pd").
    diameter_nm : float
        Nominal particle diameter.
    dose_e_per_A2 : float
        Electron dose.
    pixel_scale_nm : float
        Detector pixel size at the specimen.
    shape : str
        "Sphere" or "Oblong".
    support : str
        "UT Carbon" or "SiN".
    frame_size_px : int
        Frame side in pixels (square frames).
    mode : {"multislice", "projection"}
    seed : int
        Run seed.
    frame_key, session_key : str
        Identify the frame and its session in the seeding (see module docstring).
    area_fraction : float, optional
        Particle area fraction; default `field.default_area_fraction` times `density`.
    density : float
        Multiplier of the default area fraction.
    defocus_A : float, optional
        Override the drawn defocus.
    cluster_fraction : float
        Probability that a particle is placed next to an already placed one (see
        `field.place_particles`; default `field.CLUSTER_FRACTION`).
    support_thickness_A : float, optional
        Override the support thickness drawn around the support's mean, A.
    illumination_scale : float
        Strength of the session's beam fall-off and gain-reference error relative to the
        simulator's draw (`illumination.scale_illumination`; 1 = as drawn).
    microscope, camera
        Instrument models.
    labeling : LabelingModel or dict
        Optional model of human label error (default: exact labels).
    """

    material: str
    diameter_nm: float
    dose_e_per_A2: float
    pixel_scale_nm: float
    shape: str = "Sphere"
    support: str = "UT Carbon"
    frame_size_px: int = 4096
    mode: str = "multislice"
    seed: int = 0
    frame_key: str = "frame"
    session_key: str = "session"
    area_fraction: float | None = None
    density: float = 1.0
    defocus_A: float | None = None
    cluster_fraction: float = CLUSTER_FRACTION
    support_thickness_A: float | None = None
    illumination_scale: float = 1.0
    xrays: bool = True
    microscope: Microscope = field(default_factory=Microscope)
    camera: Camera = field(default_factory=Camera)
    labeling: LabelingModel = field(default_factory=LabelingModel)

    def __post_init__(self):
        if isinstance(self.labeling, dict):
            self.labeling = LabelingModel(**self.labeling)
        if not 0.0 <= float(self.cluster_fraction) <= 1.0:
            raise ValueError(f"cluster_fraction must be in [0, 1], got {self.cluster_fraction}")
        if self.support_thickness_A is not None and not float(self.support_thickness_A) > 0:
            raise ValueError(f"support_thickness_A must be > 0, got {self.support_thickness_A}")
        if not float(self.illumination_scale) >= 0:
            raise ValueError(f"illumination_scale must be >= 0, got {self.illumination_scale}")


@dataclass
class SimulatedFrame:
    """A simulated raw frame, its label and the parameters that made it.

    Attributes
    ----------
    counts : (H, W) float32
        Raw frame in camera counts.
    label : (H, W) uint8
        1 = particle.
    params : dict
        JSON-ready simulation parameters (defocus, thickness, seeds, particle list, ...).
    intensity : (H, W) float32 or None
        Noise-free pixel-integrated intensity before illumination (1 = beam), if kept.
    illumination : (H, W) float32 or None
        Illumination times gain-reference error, if kept.
    xray_coords : (n, 2) int array
    """

    counts: np.ndarray
    label: np.ndarray
    params: dict
    intensity: np.ndarray | None = None
    illumination: np.ndarray | None = None
    xray_coords: np.ndarray | None = None


def simulate_frame(req: FrameRequest, keep_intermediates: bool = False, particles=None) -> SimulatedFrame:
    """Simulate one raw HRTEM frame and its label.

    Parameters
    ----------
    req : FrameRequest
    keep_intermediates : bool
        Also return the noise-free intensity and the illumination field.
    particles : list of (Nanoparticle, (y_A, x_A)), optional
        Use these particles at these positions instead of drawing them (tests).

    Returns
    -------
    SimulatedFrame
    """
    t0 = time.perf_counter()
    if req.mode not in MODES:
        raise ValueError(f"unknown mode {req.mode!r}; expected one of {MODES}")
    mic, cam = req.microscope, req.camera
    session = draw_session(req.seed, req.session_key, cam)
    rng = np.random.default_rng(np.random.SeedSequence([int(req.seed), key_hash(req.frame_key), 2]))

    n_px = int(req.frame_size_px)
    px_A = float(req.pixel_scale_nm) * 10.0
    m = field_oversampling(px_A, max_field_sampling_A(mic))
    s_f = px_A / m
    n_f = n_px * m
    extent_A = n_px * px_A
    support = resolve_support(req.support)
    # drawn even when overridden, so that an override changes nothing else in the frame
    thickness_A = float(max(10.0, support.thickness_A + support.thickness_spread_A * rng.standard_normal()))
    if req.support_thickness_A is not None:
        thickness_A = float(req.support_thickness_A)
    defocus_A = (
        float(req.defocus_A)
        if req.defocus_A is not None
        else float(np.clip(session.defocus_mean_A + 30.0 * rng.standard_normal(), -200.0, 300.0))
    )

    # specimen: particles and where they lie
    if particles is None:
        af = (
            req.area_fraction
            if req.area_fraction is not None
            else default_area_fraction(req.diameter_nm, n_px, req.density)
        )
        lam = expected_count(af, extent_A + req.diameter_nm * 10 / 1.5, req.diameter_nm * 10)
        n = int(min(MAX_PARTICLES, max(1, rng.poisson(lam))))
        parts = [make_nanoparticle(req.material, req.diameter_nm, rng, req.shape) for _ in range(n)]
        place = place_particles([p.bounding_radius_A for p in parts], extent_A - px_A, rng, req.cluster_fraction)
        parts = parts[: len(place)]
        centers = list(zip(place.y_A - px_A / 2, place.x_A - px_A / 2))
        clustered = list(place.clustered)
    else:
        af = None
        parts = [p for p, _ in particles]
        centers = [tuple(c) for _, c in particles]
        clustered = [False] * len(parts)
    t_specimen = time.perf_counter()

    # exit wave: support phase grating times each particle's abTEM exit wave
    wave = support_transmission(support, thickness_A, (n_f, n_f), s_f, rng, mic.energy_eV)
    t_support = time.perf_counter()
    for p, c in zip(parts, centers):
        local, origin = particle_exit_wave(p, s_f, c, req.mode, mic.energy_eV)
        paste_wave(wave, local, origin)
    t_particles = time.perf_counter()

    # lens and detector
    intensity_f = image_intensity(wave, s_f, defocus_A, mic, session.astigmatism_A, session.astigmatism_angle_rad)
    del wave
    intensity = integrate_pixels(intensity_f, s_f, px_A)
    del intensity_f
    illumination = scale_illumination(session.illumination, req.illumination_scale)
    illum = illumination_field(illumination, intensity.shape)
    gain_err = gain_error_field(illumination, intensity.shape)
    counts, xray_coords = detect(
        intensity * illum, req.dose_e_per_A2, px_A, rng, cam, session.gain_counts_per_e, gain_err, xrays=req.xrays
    )
    t_image = time.perf_counter()

    # exact label from the atoms
    footprints = [((p.positions_A[:, :2] + np.array([c[1], c[0]])), p.atomic_radius_A) for p, c in zip(parts, centers)]
    label = particle_label(footprints, counts.shape, px_A)
    exact_fraction = float(label.mean())
    labeling: dict[str, Any] = {"enabled": False}
    if req.labeling.enabled:
        # own stream: switching the annotator on changes nothing else in the frame
        rng_label = np.random.default_rng(np.random.SeedSequence([int(req.seed), key_hash(req.frame_key), 3]))
        label, labelled, vis = human_label(
            footprints,
            counts.shape,
            px_A,
            req.labeling,
            rng_label,
            intensity,
            electrons_per_pixel(req.dose_e_per_A2, px_A),
            cam.dqe_zero,
        )
        labeling = {
            **req.labeling.as_dict(),
            "n_labelled": int(labelled.sum()),
            "visibility": [round(float(v), 2) for v in vis],
            "exact_area_fraction": round(exact_fraction, 5),
        }
    t_label = time.perf_counter()

    params = {
        "mode": req.mode,
        "seed": int(req.seed),
        "frame_key": req.frame_key,
        "session_key": req.session_key,
        "material": req.material,
        "nominal_diameter_nm": float(req.diameter_nm),
        "shape": req.shape,
        "support": support.name,
        "support_thickness_A": round(thickness_A, 3),
        "cluster_fraction": float(req.cluster_fraction),
        "illumination_scale": float(req.illumination_scale),
        "dose_e_per_A2": float(req.dose_e_per_A2),
        "pixel_scale_nm": float(req.pixel_scale_nm),
        "frame_size_px": n_px,
        "field_sampling_A": round(s_f, 5),
        "particle_sampling_A": round(s_f / fine_factor(s_f, FINE_SAMPLING_A), 5),
        "defocus_A": round(defocus_A, 3),
        "requested_area_fraction": None if af is None else round(af, 5),
        "label_area_fraction": round(float(label.mean()), 5),
        "n_particles": len(parts),
        "n_xrays": int(len(xray_coords)),
        "session": session.as_dict(),
        "microscope": mic.as_dict(),
        "camera": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cam.as_dict().items()},
        "labeling": labeling,
        "particles": [
            {
                "y_nm": round(float(c[0]) / 10, 4),
                "x_nm": round(float(c[1]) / 10, 4),
                "clustered": bool(k),
                **p.describe(),
            }
            for p, c, k in zip(parts, centers, clustered)
        ],
        "seconds": {
            "specimen": round(t_specimen - t0, 3),
            "support": round(t_support - t_specimen, 3),
            "particles": round(t_particles - t_support, 3),
            "imaging": round(t_image - t_particles, 3),
            "label": round(t_label - t_image, 3),
            "total": round(t_label - t0, 3),
        },
    }
    return SimulatedFrame(
        counts=counts,
        label=label,
        params=params,
        intensity=intensity if keep_intermediates else None,
        illumination=(illum * gain_err) if keep_intermediates else None,
        xray_coords=xray_coords,
    )
