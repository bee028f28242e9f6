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
from temshift.preprocess.rescale import METHODS, mean_std, rescale
from temshift.preprocess.xrays import find_outliers, remove_xrays

__all__ = [
    "METHODS",
    "PreprocessSettings",
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
    "remove_xrays",
    "rescale",
    "tile_grid",
]
