"""A raw frame as a trained model's input: its training preprocessing, then its pixel scale.

The one frame preparation of everything that feeds a trained model raw frames: prediction
(:func:`temshift.predict.predict_frame`), fine-tuning (:mod:`temshift.training.finetune`) and
pretraining (:mod:`temshift.studies.pretrain`). Order (counts): the training dataset's
preprocessing at the frame's own resolution (x-ray spikes are single pixels: removed before
any resampling); resampling to the training pixel scale (:mod:`temshift.preprocess.scale`) with
the pixel noise of that scale restored; then the rescaling step once more, so that the model
input has exactly the trained intensity statistics.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np

from temshift.errors import PreprocessError
from temshift.preprocess.pipeline import PreprocessSettings, preprocess_frame
from temshift.preprocess.rescale import rescale as rescale_values
from temshift.preprocess.scale import resample_image, restore_noise, zoom_factor
from temshift.units import check_pixel_scale_nm

#: largest model input (pixels) a frame is resampled to: 16384^2, 1 GiB per float32 copy
MAX_MODEL_INPUT_PIXELS = 16384**2


def check_resampled_size(
    shape: tuple[int, ...], zoom: float, pixel_scale_nm: float | None, model_pixel_scale_nm: float | None
) -> None:
    """Refuse pixel scales that would resample a frame to an absurd size (a unit slip, mostly).

    Raises
    ------
    PreprocessError
        A pixel scale outside the accepted range, or more than :data:`MAX_MODEL_INPUT_PIXELS` after resampling.
    """
    if pixel_scale_nm:
        check_pixel_scale_nm(pixel_scale_nm, "frame pixel scale")
    h, w = (int(round(n * zoom)) for n in shape)
    if h * w > MAX_MODEL_INPUT_PIXELS:
        raise PreprocessError(
            f"at {pixel_scale_nm:g} nm/px for a model trained at {model_pixel_scale_nm:g} nm/px the "
            f"{shape[0]}x{shape[1]} frame would be resampled {zoom:.3g}x to {h}x{w} pixels (at most "
            f"{MAX_MODEL_INPUT_PIXELS:.3g}): is the pixel scale in nm/px (not Å)? Or turn resampling off"
        )


@overload
def model_input(
    raw: np.ndarray,
    settings: PreprocessSettings | None = ...,
    pixel_scale_nm: float | None = ...,
    model_pixel_scale_nm: float | None = ...,
    rescale: bool = ...,
    return_native: Literal[False] = ...,
    match_noise: bool = ...,
) -> tuple[np.ndarray, float]: ...


@overload
def model_input(
    raw: np.ndarray,
    settings: PreprocessSettings | None = ...,
    pixel_scale_nm: float | None = ...,
    model_pixel_scale_nm: float | None = ...,
    rescale: bool = ...,
    *,
    return_native: Literal[True],
    match_noise: bool = ...,
) -> tuple[np.ndarray, float, np.ndarray]: ...


def model_input(
    raw: np.ndarray,
    settings: PreprocessSettings | None = None,
    pixel_scale_nm: float | None = None,
    model_pixel_scale_nm: float | None = None,
    rescale: bool = True,
    return_native: bool = False,
    match_noise: bool = True,
) -> tuple[np.ndarray, float] | tuple[np.ndarray, float, np.ndarray]:
    """Preprocess a raw frame as the model's training data and match the pixel scale.

    Parameters
    ----------
    raw : numpy.ndarray
        (H, W) raw frame, counts.
    settings : PreprocessSettings, optional
        The training dataset's preprocessing (default: the paper's).
    pixel_scale_nm, model_pixel_scale_nm : float, optional
        Frame and training pixel scales, nm/pixel.
    rescale : bool
        Resample to the training pixel scale (when both scales are known).
    match_noise : bool
        After resampling, restore the pixel noise of the training scale
        (:func:`temshift.preprocess.scale.restore_noise`).
    return_native : bool
        Also return the preprocessed frame before resampling.

    Returns
    -------
    image : numpy.ndarray
        float32 model input.
    zoom : float
        Pixels per frame pixel along each axis (1.0 when not resampled).
    native : numpy.ndarray
        Only with `return_native`: the preprocessed frame on its own grid.

    Raises
    ------
    PreprocessError
        A pixel scale that would resample the frame to an absurd size (:func:`check_resampled_size`).
    """
    settings = settings or PreprocessSettings()
    zoom = zoom_factor(pixel_scale_nm, model_pixel_scale_nm) if rescale else 1.0
    check_resampled_size(raw.shape, zoom, pixel_scale_nm, model_pixel_scale_nm)
    native = preprocess_frame(raw, settings)
    image = native
    if zoom != 1.0:
        image = resample_image(native, zoom)
        if match_noise:
            image = restore_noise(image, native, zoom)
        if settings.rescale != "none":
            image = rescale_values(image, settings.rescale, copy=False)
    image = np.ascontiguousarray(image, dtype=np.float32)
    return (image, zoom, native) if return_native else (image, zoom)
