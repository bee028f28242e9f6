"""Whole-frame prediction: preprocessing as recorded, pixel-scale matching, tiling, ensembles.

Order of operations for a raw frame (counts):

1. the training dataset's preprocessing (x-rays, flat field, rescaling) at the frame's own
   resolution (x-ray spikes are single pixels: remove them before any resampling);
2. resampling to the model's training pixel scale (:mod:`temshift.preprocess.scale`) with the
   pixel noise a detector at that scale would have recorded restored, then the rescaling
   step once more so the model input has exactly the trained intensity statistics;
3. blended tiled inference (:mod:`temshift.predict.tiling` over
   :func:`temshift.models.inference.batch_fn`), softmax probabilities averaged
   over the ensemble members (and, with TTA, the 8 dihedral variants; their spread is kept,
   :mod:`temshift.predict.uncertainty`);
4. probabilities resampled back to the frame grid; mask = probability > 0.5 (the argmax of
   the softmax, :func:`temshift.models.inference.particle_mask`, as in training and evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from temshift.errors import CheckpointError

if TYPE_CHECKING:
    from temshift.datasets.records import TrainingStatistics
    from temshift.models.records import CheckpointMeta
    from temshift.predict.shift import TrainingReference


@dataclass
class Predictor:
    """Models that share preprocessing and training pixel scale (one model or an ensemble).

    Attributes
    ----------
    models : list of torch.nn.Module
        Eval-mode networks returning class logits.
    metas : list of CheckpointMeta
        Their metadata (see :func:`temshift.models.load_model`).
    preprocess : PreprocessSettings
        Preprocessing of the training dataset.
    pixel_scale_nm : float or None
        Training pixel scale, nm/pixel.
    dose_e_per_A2 : float or None
        Training dose, e/A^2.
    paths : list of Path
        Model files.
    patch_size : int
        Training patch size, pixels (tile size for shift statistics).
    train_stats : TrainingStatistics or None
        Training-data statistics (:func:`temshift.predict.shift.training_statistics`), filled
        by :meth:`training_reference`.
    """

    models: list
    metas: list[CheckpointMeta]
    preprocess: object
    pixel_scale_nm: float | None = None
    dose_e_per_A2: float | None = None
    paths: list[Path] = field(default_factory=list)
    patch_size: int = 512
    train_stats: TrainingStatistics | None = None
    _stats_done: bool = False

    def training_reference(self, dataset_path: str | Path | None = None) -> TrainingReference:
        """Training statistics for shift warnings (computed once, lazily), with scale and dose."""
        from temshift.predict.shift import model_training_statistics, train_reference

        if not self._stats_done:
            self.train_stats = model_training_statistics(self.metas[0], dataset_path)
            self._stats_done = True
        ref = train_reference(self.metas[0], self.train_stats)
        return replace(
            ref,
            pixel_scale_nm=ref.pixel_scale_nm or self.pixel_scale_nm,
            dose_e_per_A2=ref.dose_e_per_A2 or self.dose_e_per_A2,
        )


def load_predictor(paths) -> Predictor:
    """Load one model or an ensemble from files or run directories.

    Parameters
    ----------
    paths : path or list of paths
        temshift checkpoints, released ``*_model.h5`` weights, or run directories (every
        ``model.pt`` below a directory is an ensemble member).

    Raises
    ------
    CheckpointError
        Unreadable model, or members with different preprocessing or pixel scale.
    """
    from temshift.models import load_model
    from temshift.models.checkpoint import model_files
    from temshift.models.conditions import training_conditions

    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = [f for p in paths for f in model_files(p)]
    models, metas, conditions = [], [], []
    for f in files:
        model, meta = load_model(f)
        models.append(model.eval())
        metas.append(meta)
        conditions.append(training_conditions(meta))
    first = conditions[0]
    for f, c in zip(files[1:], conditions[1:]):
        if c.preprocess != first.preprocess:
            raise CheckpointError(f"{f}: ensemble member was trained with other preprocessing than {files[0]}")
        a, b = c.pixel_scale_nm, first.pixel_scale_nm
        if a and b and abs(a / b - 1) > 0.02:
            raise CheckpointError(f"{f}: ensemble member trained at {a} nm/px, {files[0]} at {b} nm/px")
    return Predictor(
        models, metas, first.preprocess, first.pixel_scale_nm, first.dose_e_per_A2, files, first.patch_size_px
    )


@dataclass
class Segmentation:
    """Result of :func:`predict_frame`: the arrays of one segmented frame.

    Attributes
    ----------
    probabilities : numpy.ndarray
        (H, W) float32 particle probability on the frame grid (ensemble mean).
    mask : numpy.ndarray
        (H, W) uint8 {0, 1}, probability > threshold.
    zoom : float
        Resampling factor applied before inference (1.0 = none).
    input_pixel_scale_nm : float or None
        Pixel scale of the model input, nm/pixel.
    model_input : numpy.ndarray
        Preprocessed, resampled frame as fed to the network.
    input_mask : numpy.ndarray
        Mask on the model-input grid.
    native_input : numpy.ndarray
        Preprocessed frame on its own grid (the same array as `model_input` when not resampled).
    std : numpy.ndarray or None
        (H, W) float32 standard deviation of the particle probability across the members
        (ensemble models x dihedral variants with TTA) on the frame grid; None for one model
        without TTA (see :mod:`temshift.predict.uncertainty`).
    members : MemberMasks or None
        Each member's own mask on the frame grid (with `std`).
    """

    probabilities: np.ndarray
    mask: np.ndarray
    zoom: float
    input_pixel_scale_nm: float | None
    model_input: np.ndarray
    input_mask: np.ndarray
    native_input: np.ndarray | None = None
    std: np.ndarray | None = None
    members: object | None = None


def predict_probabilities(
    models,
    image: np.ndarray,
    *,
    tile: int = 2048,
    overlap: int = 128,
    margin: int = 32,
    batch_size: int = 1,
    device: str = "cpu",
    bf16: bool | None = None,
) -> np.ndarray:
    """Particle probability of a model input, averaged over models (blended tiles).

    Parameters
    ----------
    models : torch.nn.Module or list of them
        Networks returning class logits; one model or an ensemble.
    image : numpy.ndarray
        (H, W) model input.
    tile, overlap, margin, batch_size : int
        See :func:`temshift.predict.tiling.predict_tiled`.
    device : str
        Torch device.
    bf16 : bool or None
        bfloat16 autocast for the convolutions; None = on for CPUs with native bf16
        (probabilities then differ from float32 by ~1e-2 at most, masks by a few edge pixels).

    Returns
    -------
    numpy.ndarray
        (H, W) float32 mean probability of the particle class.
    """
    from temshift.predict.uncertainty import member_probabilities

    if not isinstance(models, (list, tuple)):
        models = [models]
    total: np.ndarray | None = None
    for p in member_probabilities(
        models, image, tile=tile, overlap=overlap, margin=margin, batch_size=batch_size, device=device, bf16=bf16
    ):
        total = p if total is None else total + p
    if total is None:
        raise ValueError("no models")
    return total / len(models)


def predict_frame(
    models,
    frame,
    pixel_scale_nm: float | None = None,
    *,
    preprocess=None,
    model_pixel_scale_nm: float | None = None,
    rescale: bool = True,
    match_noise: bool = True,
    threshold: float | None = None,
    tile: int = 2048,
    overlap: int = 128,
    margin: int = 32,
    batch_size: int = 1,
    device: str = "cpu",
    tta: bool = False,
) -> Segmentation:
    """Segment one raw frame.

    Parameters
    ----------
    models : Predictor, torch.nn.Module or list of modules
        A :class:`Predictor` brings its preprocessing and training pixel scale; bare modules
        use `preprocess` and `model_pixel_scale_nm`.
    frame : numpy.ndarray or temshift.io.Frame
        Raw frame in counts (a `Frame` also brings its recorded pixel scale).
    pixel_scale_nm : float, optional
        Frame pixel scale, nm/pixel; overrides the one recorded in `frame`.
    preprocess : PreprocessSettings, optional
        Overrides the predictor's preprocessing.
    model_pixel_scale_nm : float, optional
        Training pixel scale, nm/pixel; overrides the predictor's.
    rescale : bool
        Pixel-scale matching (on by default).
    match_noise : bool
        Restore the training scale's pixel noise after resampling (on by default).
    threshold : float, optional
        Probability above which a pixel is particle (default
        :data:`temshift.models.inference.THRESHOLD`).
    tile, overlap, margin, batch_size : int
        Tiling (pixels) and tiles per forward pass.
    device : str
        Torch device.
    tta : bool
        Test-time augmentation: average every model over the 8 dihedral variants of the
        frame. With TTA or more than one model the result also carries the members' spread
        (`std`, `members`); one model without TTA gives exactly the plain prediction.

    Returns
    -------
    Segmentation
    """
    from temshift.models.inference import THRESHOLD, particle_mask
    from temshift.models.runtime import release_freed_memory
    from temshift.preprocess.model_input import model_input
    from temshift.preprocess.scale import resample_to_shape

    threshold = THRESHOLD if threshold is None else threshold
    raw = getattr(frame, "data", frame)
    pixel_scale_nm = pixel_scale_nm or getattr(frame, "pixel_scale_nm", None)
    if isinstance(models, Predictor):
        preprocess = preprocess or models.preprocess
        model_pixel_scale_nm = model_pixel_scale_nm or models.pixel_scale_nm
        nets: list[Any] | tuple[Any, ...] = models.models
    else:
        nets = models if isinstance(models, (list, tuple)) else [models]
    image, zoom, native = model_input(
        raw, preprocess, pixel_scale_nm, model_pixel_scale_nm, rescale, return_native=True, match_noise=match_noise
    )
    std = members = None
    if tta or len(nets) > 1:
        from temshift.predict.uncertainty import member_probabilities, member_spread

        spread = member_spread(
            member_probabilities(
                nets, image, tta=tta, tile=tile, overlap=overlap, margin=margin, batch_size=batch_size, device=device
            ),
            threshold,
            out_shape=raw.shape,
        )
        prob_in, members = spread.mean, spread.members
        std = resample_to_shape(spread.std, raw.shape) if zoom != 1.0 else spread.std
        np.clip(std, 0.0, 0.5, out=std)
    else:
        prob_in = predict_probabilities(
            nets, image, tile=tile, overlap=overlap, margin=margin, batch_size=batch_size, device=device
        )
    release_freed_memory()  # the activations' memory, before the frame's statistics and outputs
    prob = resample_to_shape(prob_in, raw.shape) if zoom != 1.0 else prob_in
    np.clip(prob, 0.0, 1.0, out=prob)
    in_scale = (pixel_scale_nm / zoom) if pixel_scale_nm else model_pixel_scale_nm
    return Segmentation(
        prob,
        particle_mask(prob, threshold),
        zoom,
        in_scale,
        image,
        particle_mask(prob_in, threshold),
        native,
        std,
        members,
    )
