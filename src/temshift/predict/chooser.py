"""The models for each frame of a batch: a fixed model or ensemble, or the zoo set nearest to the frame.

``zoo:auto`` ranks the released training sets by their distance to the frame's recorded
conditions (:func:`temshift.models.zoo.pick`) and loads the nearest set's fold models as an
ensemble; a fixed model is loaded once. :func:`temshift.predict.batch.model_chooser` builds one
for :func:`temshift.predict.predict_frames`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from temshift.models.zoo import AUTO, ZooError, explain, local_files, pick, training_sets, zoo_dir

if TYPE_CHECKING:
    from temshift.predict.shift import TrainingReference


@dataclass
class Choice:
    """The models for one frame: predictor, shift reference, and what was picked and why."""

    predictor: object
    reference: TrainingReference
    key: str
    note: str | None = None


class ModelChooser:
    """The predictor for each frame: a fixed model (or ensemble), or ``zoo:auto``.

    With ``zoo:auto`` each frame gets the training set nearest to its recorded conditions
    (:func:`temshift.models.zoo.pick`), whose fold models form an ensemble loaded from the local zoo folder
    (:func:`~temshift.models.zoo.zoo_dir`); the shift report then compares the frame with that set's training
    pixel scale and dose from the manifest (released weights carry no training statistics).

    Parameters
    ----------
    model : str or Path
        A model path, ``"zoo:auto"``, or a shipped model's name (``"generalist"``,
        `temshift.models.pretrained`).
    ensemble : list of Path, optional
        More models averaged with `model` (not with ``zoo:auto``).
    folder : str or Path, optional
        Local zoo folder (default :func:`zoo_dir`).
    train_dataset : str or Path, optional
        Training dataset for the shift statistics (fixed models only).
    """

    def __init__(self, model, ensemble=None, folder=None, train_dataset=None):
        self.auto = str(model).strip().lower() == AUTO
        self.folder = zoo_dir(folder)
        self._cache: dict[str, Choice] = {}
        if self.auto:
            if ensemble:
                raise ZooError(f"{AUTO} picks its own ensemble; --ensemble cannot be added to it")
            if not training_sets():
                raise ZooError("the zoo manifest lists no models")
        else:
            from temshift.models.pretrained import is_pretrained_name, pretrained_path
            from temshift.predict.pipeline import load_predictor

            if is_pretrained_name(model) and not Path(model).exists():  # "generalist": the shipped model
                model = pretrained_path(str(model))
            predictor = load_predictor([model, *(ensemble or [])])
            self._fixed = Choice(predictor, predictor.training_reference(train_dataset), str(model))

    def for_frame(
        self, *, pixel_scale_nm=None, dose_e_per_A2=None, material=None, diameter_nm=None, name: str = ""
    ) -> Choice:
        """The models for a frame with these recorded conditions."""
        if not self.auto:
            return self._fixed
        if pixel_scale_nm is None and dose_e_per_A2 is None:
            raise ZooError(
                f"{name or 'frame'}: {AUTO} needs the frame's pixel scale or dose to pick a training set "
                "(from the file, the catalog, --pixel-scale or --dose)"
            )
        ranked = pick(
            pixel_scale_nm=pixel_scale_nm, dose_e_per_A2=dose_e_per_A2, material=material, diameter_nm=diameter_nm
        )
        zset = ranked[0].set
        if zset.name not in self._cache:
            from temshift.predict.pipeline import load_predictor

            predictor = load_predictor(local_files(zset, self.folder))
            # the manifest is the authority on what the released models were trained on
            predictor.pixel_scale_nm, predictor.dose_e_per_A2 = zset.pixel_scale_nm, zset.dose_e_per_A2
            ref = replace(
                predictor.training_reference(), pixel_scale_nm=zset.pixel_scale_nm, dose_e_per_A2=zset.dose_e_per_A2
            )
            self._cache[zset.name] = Choice(predictor, ref, zset.name)
        base = self._cache[zset.name]
        return Choice(
            base.predictor,
            base.reference,
            base.key,
            f"{name}: {AUTO} picked {explain(ranked)}, {len(zset.models)} folds",
        )
