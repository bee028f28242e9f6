"""Per-frame preprocessing: x-rays, flat field, rescaling, patches (docs/protocol.md), pixel-scale matching
and estimation (from lattice fringes, :mod:`temshift.preprocess.scale_estimate`).

A raw frame as a trained model's input (all of it, in order): :mod:`temshift.preprocess.model_input`.
"""

from temshift.preprocess.flatfield import (
    bernstein_basis,
    block_mean,
    divide_background,
    evaluate_background,
    fit_coefficients,
    fit_illumination,
    flatfield_correct,
)
from temshift.preprocess.noise import noise_sd
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
from temshift.preprocess.scale import SCALE_TOLERANCE, resample_image, resample_to_shape, restore_noise, zoom_factor
from temshift.preprocess.scale_estimate import ScaleEstimate, estimate_pixel_scale
from temshift.preprocess.xrays import find_outliers, remove_xrays

__all__ = [
    "RESCALE_METHODS",
    "SCALE_TOLERANCE",
    "PreprocessSettings",
    "RescaleMethod",
    "ScaleEstimate",
    "bernstein_basis",
    "block_mean",
    "divide_background",
    "estimate_pixel_scale",
    "evaluate_background",
    "extract_patches",
    "find_outliers",
    "fit_coefficients",
    "fit_illumination",
    "flatfield_correct",
    "mean_std",
    "min_particle_pixels",
    "noise_sd",
    "preprocess_frame",
    "register_rescale",
    "remove_xrays",
    "resample_image",
    "resample_to_shape",
    "rescale",
    "rescale_method",
    "restore_noise",
    "tile_grid",
    "zoom_factor",
]
