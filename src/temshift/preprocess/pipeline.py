"""The per-frame preprocessing pipeline and its settings."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field, field_validator

from temshift.preprocess.flatfield import divide_background, fit_coefficients
from temshift.preprocess.rescale import RESCALE_METHODS, rescale_method
from temshift.preprocess.xrays import remove_xrays


class PreprocessSettings(BaseModel):
    """Per-frame preprocessing; the defaults are the paper's.

    Attributes
    ----------
    xray_threshold : float or None
        Counts above the frame median that mark an x-ray spike; None (or ``false``, which
        TOML can write) skips the step.
    flatfield : bool
        Divide by a fitted Bernstein background.
    flatfield_degree : (int, int)
        Background polynomial degree along (y, x).
    flatfield_downscale : int
        Block-mean factor of the fitting grid.
    flatfield_iterations : int
        Weighted least-squares solves.
    rescale : str
        Final intensity scaling: a name in `temshift.preprocess.RESCALE_METHODS`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    xray_threshold: float | None = Field(1500.0, ge=0)
    flatfield: bool = True
    flatfield_degree: tuple[int, int] = (2, 2)
    flatfield_downscale: int = Field(4, ge=1)
    flatfield_iterations: int = Field(2, ge=1)
    rescale: str = "standardize"

    @field_validator("xray_threshold", mode="before")
    @classmethod
    def _false_is_off(cls, value: Any) -> Any:
        # TOML has no null: `xray_threshold = false` switches the step off
        return None if value is False else value

    @field_validator("rescale")
    @classmethod
    def _known_rescale(cls, value: str) -> str:
        if value not in RESCALE_METHODS:
            raise ValueError(f"unknown rescale method {value!r} (use one of {', '.join(RESCALE_METHODS)})")
        return value


def preprocess_frame(img: ArrayLike, settings: PreprocessSettings | None = None) -> np.ndarray:
    """Run x-ray removal, flat-field correction and rescaling on one frame.

    Parameters
    ----------
    img : (H, W) array_like
        Raw frame in counts; not modified.
    settings : PreprocessSettings, optional
        Defaults to the paper's settings.

    Returns
    -------
    (H, W) float32 array
        Works on one float32 buffer in place where it can (peak ~ input + 2 frames).
    """
    s = settings or PreprocessSettings()
    if s.xray_threshold is not None:
        out = remove_xrays(img, s.xray_threshold)
    else:
        out = np.array(img, dtype=np.float32, copy=True)
    method = rescale_method(s.rescale)
    if not s.flatfield:
        return method.apply(out)
    coef = fit_coefficients(out, s.flatfield_degree, s.flatfield_downscale, s.flatfield_iterations)
    if method.from_moments is None:
        return method.apply(divide_background(out, coef, out=out))
    # collect the moments while dividing (saves one sweep over the frame)
    moments: list[tuple[int, float, float, float]] = []
    divide_background(out, coef, out=out, moments=moments)
    return method.from_moments(out, moments)
