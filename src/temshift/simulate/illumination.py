"""Per-session uneven illumination and gain-reference error.

Both are smooth multiplicative fields over the frame, defined on normalised frame
coordinates (u, v) in [0, 1] so a session looks the same at any frame size, and drawn
from the session's own random stream: every frame of one microscope session shares them
exactly, different sessions differ. This is the session-dependent signal that the
paper's flat-field correction (a degree-(2, 2) Bernstein fit) removes.

* Illumination: a broad Gaussian beam whose centre is off the frame centre (monochromator
  / beam shift), standard deviation 1.2-2.5 frame widths, plus a weak linear ramp -- a
  5-35 % fall-off across the frame.
* Gain-reference error: the gain reference was taken under slightly different conditions;
  a smooth low-order field of +-2-5 %: a quadratic bowl plus one long-wavelength cosine.

`scale_illumination` makes both stronger or weaker by one factor (the generalist's training
frames draw it, so that its data cover worse-aligned beams and staler gain references than
one lab's sessions).
"""

from __future__ import annotations

import numpy as np


def draw_illumination_params(rng) -> dict:
    """Random illumination / gain-error parameters of one session (JSON-ready)."""
    return {
        "beam_center_uv": [float(v) for v in rng.uniform(0.2, 0.8, 2)],
        "beam_radius_frac": float(rng.uniform(1.2, 2.5)),
        "ramp_uv": [float(v) for v in rng.normal(0, 0.04, 2)],
        "gain_bowl": float(rng.uniform(-0.05, 0.05)),
        "gain_bowl_center_uv": [float(v) for v in rng.uniform(0.3, 0.7, 2)],
        "gain_wave_amplitude": float(rng.uniform(0.0, 0.02)),
        "gain_wave_vector": [float(v) for v in rng.normal(0, 0.5, 2)],
        "gain_wave_phase": float(rng.uniform(0, 2 * np.pi)),
    }


def scale_illumination(params: dict, factor: float) -> dict:
    """Session illumination parameters with fall-off and gain-reference error scaled by `factor`.

    The beam's fall-off (about ``d^2 / (2 w^2)`` at distance ``d`` from its centre, for beam
    radius ``w``), the ramp, the gain bowl and the gain ripple all grow by `factor`; 1 returns
    the parameters unchanged, 0 gives a flat beam and a perfect gain reference.

    Examples
    --------
    >>> p = draw_illumination_params(np.random.default_rng(0))
    >>> scale_illumination(p, 1.0) == p
    True
    >>> scale_illumination(p, 2.0)["gain_bowl"] == 2 * p["gain_bowl"]
    True
    """
    factor = float(factor)
    if not (np.isfinite(factor) and factor >= 0):
        raise ValueError(f"illumination scale must be finite and >= 0, got {factor}")
    if factor == 1.0:
        return dict(params)
    out = dict(params)
    out["beam_radius_frac"] = params["beam_radius_frac"] / np.sqrt(factor) if factor > 0 else float("inf")
    out["ramp_uv"] = [factor * v for v in params["ramp_uv"]]
    out["gain_bowl"] = factor * params["gain_bowl"]
    out["gain_wave_amplitude"] = factor * params["gain_wave_amplitude"]
    return out


def _uv(shape):
    ny, nx = shape
    v = ((np.arange(ny) + 0.5) / ny).astype(np.float32)[:, None]
    u = ((np.arange(nx) + 0.5) / nx).astype(np.float32)[None, :]
    return u, v


def illumination_field(params: dict, shape) -> np.ndarray:
    """Relative beam intensity over the frame (float32, mean 1)."""
    u, v = _uv(shape)
    cu, cv = params["beam_center_uv"]
    w = params["beam_radius_frac"]
    field = np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * w**2))
    field = field * (1 + params["ramp_uv"][0] * (u - 0.5) + params["ramp_uv"][1] * (v - 0.5))
    return (field / field.mean()).astype(np.float32)


def gain_error_field(params: dict, shape) -> np.ndarray:
    """Multiplicative gain-reference error over the frame (float32, mean 1)."""
    u, v = _uv(shape)
    cu, cv = params["gain_bowl_center_uv"]
    bowl = params["gain_bowl"] * ((u - cu) ** 2 + (v - cv) ** 2) / 0.25
    ku, kv = params["gain_wave_vector"]
    wave = params["gain_wave_amplitude"] * np.cos(2 * np.pi * (ku * u + kv * v) + params["gain_wave_phase"])
    field = 1 + bowl + wave
    return (field / field.mean()).astype(np.float32)
