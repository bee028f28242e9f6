"""Using trained models on new micrographs.

The library form of ``temshift predict`` / ``temshift check``:

>>> from temshift.predict import predict_frames, write_predictions
>>> preds = predict_frames("run/model.pt", ["a.dm4", "b.dm4"], pixel_scale_nm=0.02)  # doctest: +SKIP
>>> write_predictions(preds, "out")                                                   # doctest: +SKIP

Batches (:mod:`~temshift.predict.batch`: metadata flag > file > catalog, model choice,
segmentation, shift assessment, strict mode, particles, one bad frame does not stop the
batch), whole-frame prediction with blended tiles (``pipeline``, ``tiling``; frames are prepared
by :mod:`temshift.preprocess.model_input`, pixel-scale matching included), dataset-shift
warnings (``shift``), particle statistics (``particles``), files and ``prediction.json``
(``outputs``), the model for each frame (``chooser``: a fixed model or ``zoo:auto`` over the
released models of :mod:`temshift.models.zoo`); downloads from the published raw-data
repository are :mod:`temshift.catalog.fetch`. Importing this package imports neither torch
nor pandas: the names below are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it (imported on first access): in temshift.predict, or a full module path
_EXPORTS = {
    "predict_frames": "batch",
    "check_frames": "batch",
    "assess_batches": "batch",
    "batch_findings": "batch",
    "FramePrediction": "batch",
    "PredictSettings": "batch",
    "model_chooser": "batch",
    "FrameMetadata": "metadata",
    "read_frame_metadata": "metadata",
    "catalog_metadata": "metadata",
    "Predictor": "pipeline",
    "Segmentation": "pipeline",
    "load_predictor": "pipeline",
    "predict_frame": "pipeline",
    "model_input": "temshift.preprocess.model_input",  # the frame preparation training shares
    "predict_probabilities": "pipeline",
    "ShiftReport": "shift",
    "Finding": "shift",
    "assess_shift": "shift",
    "assess_batch": "shift",
    "frame_statistics": "shift",
    "write_predictions": "outputs",
    "write_frame_outputs": "outputs",
    "write_batch_outputs": "outputs",
    "prediction_record": "outputs",
    "particle_table": "particles",
    "particle_summary": "particles",
    "size_histogram_table": "particles",
    "unique_frame_names": "naming",
    "ModelChooser": "chooser",
    "blend_window": "tiling",
    "predict_tiled": "tiling",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'temshift.predict' has no attribute {name!r}")
    value = getattr(importlib.import_module(module if "." in module else f"temshift.predict.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
