"""Per-frame preprocessing: x-rays, flat field, rescaling, patches (docs/protocol.md)."""

from temshift.preprocess.flatfield import (
    bernstein_basis,
    block_mean,
    divide_background,
    evaluate_background,
    fit_coefficients,
    fit_illumination,
    flatfield_correct,
)
from temshift.preprocess.patches import extract_patches, min_particle_pixels, tile_grid
from temshift.preprocess.pipeline import PreprocessSettings, preprocess_frame
from temshift.preprocess.rescale import (
    RESCALE_METHODS,
    RescaleMethod,
    mean_std,
    register_rescale,
    rescale,
    rescale_method,
)
from temshift.preprocess.xrays import find_outliers, remove_xrays

__all__ = [
    "RESCALE_METHODS",
    "PreprocessSettings",
    "RescaleMethod",
    "bernstein_basis",
    "block_mean",
    "divide_background",
    "evaluate_background",
    "extract_patches",
    "find_outliers",
    "fit_coefficients",
    "fit_illumination",
    "flatfield_correct",
    "mean_std",
    "min_particle_pixels",
    "preprocess_frame",
    "register_rescale",
    "remove_xrays",
    "rescale",
    "rescale_method",
    "tile_grid",
]
