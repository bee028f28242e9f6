"""The per-frame preprocessing pipeline and its settings."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from temshift.preprocess.flatfield import divide_background, fit_coefficients
from temshift.preprocess.rescale import mean_std_from_moments, rescale, standardize_inplace
from temshift.preprocess.xrays import remove_xrays


class PreprocessSettings(BaseModel):
    """Per-frame preprocessing; the defaults are the paper's.

    Attributes
    ----------
    xray_threshold : float or None
        Counts above the frame median that mark an x-ray spike; None skips the step.
    flatfield : bool
        Divide by a fitted Bernstein background.
    flatfield_degree : (int, int)
        Background polynomial degree along (y, x).
    flatfield_downscale : int
        Block-mean factor of the fitting grid.
    flatfield_iterations : int
        Weighted least-squares solves.
    rescale : {"standardize", "normalize", "histogram", "none"}
        Final intensity scaling.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    xray_threshold: float | None = Field(1500.0, ge=0)
    flatfield: bool = True
    flatfield_degree: tuple[int, int] = (2, 2)
    flatfield_downscale: int = Field(4, ge=1)
    flatfield_iterations: int = Field(2, ge=1)
    rescale: Literal["standardize", "normalize", "histogram", "none"] = "standardize"


def preprocess_frame(img, settings: PreprocessSettings | None = None) -> np.ndarray:
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
    if not s.flatfield:
        return rescale(out, s.rescale, copy=False)
    coef = fit_coefficients(out, s.flatfield_degree, s.flatfield_downscale, s.flatfield_iterations)
    if s.rescale != "standardize":
        return rescale(divide_background(out, coef, out=out), s.rescale, copy=False)
    # standardize: collect the moments while dividing (saves one sweep over the frame)
    moments: list = []
    divide_background(out, coef, out=out, moments=moments)
    return standardize_inplace(out, *mean_std_from_moments(moments))
