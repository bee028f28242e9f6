"""What a trained model was trained on, which its input has to match.

A temshift checkpoint records its training dataset's spec (preprocessing, pixel scale, dose,
patch size). Released weights record none of it: their pixel scale and dose come from the zoo
manifest (:mod:`temshift.models.zoo`), and for a file it does not list, from the file name
(``..._330kX_..._423e_...``: the dose, and the magnification looked up in the published
catalog); they were trained with the paper's preprocessing. Prediction
(:func:`temshift.predict.load_predictor`) and fine-tuning (:mod:`temshift.training.finetune`)
prepare frames by these conditions (:func:`temshift.preprocess.model_input.model_input`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from temshift.datasets.records import StoredSpec
from temshift.models.records import CheckpointMeta
from temshift.preprocess.pipeline import PreprocessSettings


@dataclass(frozen=True)
class TrainingConditions:
    """The training data's conditions of one model.

    Attributes
    ----------
    preprocess : PreprocessSettings
        Preprocessing of the training dataset.
    pixel_scale_nm : float or None
        Training pixel scale, nm/pixel (None: unknown, frames are not resampled).
    dose_e_per_A2 : float or None
        Training dose, e/A^2 (None: unknown).
    patch_size_px : int
        Training patch edge, pixels.
    """

    preprocess: PreprocessSettings
    pixel_scale_nm: float | None = None
    dose_e_per_A2: float | None = None
    patch_size_px: int = 512


def _published_reference(meta: CheckpointMeta) -> dict[str, float]:
    """Training dose and pixel scale of released weights from their file name (``..330kX423e..``)."""
    import numpy as np

    name = meta.file or ""
    out = {}
    m = re.search(r"(\d+)e(?:[A-Z_]|$)", name)
    if m:
        out["dose_e_per_A2"] = float(m.group(1))
    m = re.search(r"(\d+)kX", name, re.IGNORECASE)
    if m:
        from temshift.catalog import Catalog

        df = Catalog.published().df
        rows = df[df["file"].str.contains(f"_{m.group(1)}kX_", case=False, regex=False)]
        if len(rows):
            out["pixel_scale_nm"] = float(np.median(rows["pixel_scale_nm"].astype(float)))
    return out


def _zoo_reference(meta: CheckpointMeta) -> dict[str, float | None]:
    """Training pixel scale and dose of released weights listed in the zoo manifest."""
    from temshift.models.zoo import lookup_file

    entry = lookup_file(meta.file or "")
    return {"pixel_scale_nm": entry.pixel_scale_nm, "dose_e_per_A2": entry.dose_e_per_A2} if entry else {}


def training_conditions(meta: CheckpointMeta) -> TrainingConditions:
    """The conditions of a model's training data, from its metadata (:func:`temshift.models.load_model`).

    The spec's values count first; for released weights (``source="published"``) the zoo
    manifest, then the file name fill in what the spec lacks. Unknown (or zero) scale and
    dose are None.
    """
    spec = meta.dataset_spec or StoredSpec()
    settings = spec.preprocess or PreprocessSettings()
    ref: dict[str, float | None] = {"pixel_scale_nm": spec.pixel_scale_nm, "dose_e_per_A2": spec.dose_e_per_A2}
    if meta.source == "published":
        ref = {**_published_reference(meta), **_zoo_reference(meta), **{k: v for k, v in ref.items() if v}}
    scale, dose = ref.get("pixel_scale_nm"), ref.get("dose_e_per_A2")
    return TrainingConditions(
        settings, float(scale) if scale else None, float(dose) if dose else None, spec.patch_size_px or 512
    )
