"""`temshift.Segmenter`: fit / predict / save / load in a few lines.

Examples
--------
>>> seg = temshift.Segmenter(epochs=20)          # doctest: +SKIP
>>> seg.fit(images, labels)                      # doctest: +SKIP
>>> masks = seg.predict(images)                  # doctest: +SKIP
>>> seg.save("model.pt")                         # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from temshift.models.records import CheckpointMeta


class Segmenter:
    """A residual U-Net nanoparticle segmenter trained with the paper's protocol.

    Parameters
    ----------
    settings : TrainSettings, optional
        Training settings (paper defaults).
    **overrides
        Fields of `TrainSettings` to override, e.g. ``epochs=20, noise_rho=0.5``.
    """

    def __init__(self, settings=None, **overrides):
        from temshift.training.settings import TrainSettings

        base = (settings or TrainSettings()).model_dump()
        base.update(overrides)
        self.settings = TrainSettings.model_validate(base)
        self.model = None
        self.meta = CheckpointMeta()
        self.history: list = []

    def fit(self, images, labels, val_images=None, val_labels=None, seed: int | None = None) -> Segmenter:
        """Train on patches (N, H, W) with 0/1 labels; returns self.

        Without a validation set, the last ``val_fraction`` of the patches (a contiguous
        block) is held out for choosing the best epoch.
        """
        from temshift.models.runtime import resolve_device, set_threads
        from temshift.models.unet import UNet
        from temshift.training.data import PatchSet, check_arrays, expand
        from temshift.training.trainer import fit, torch_generator

        s = self.settings
        set_threads(s.threads)
        images, labels = check_arrays(images, labels, s.model, "training images", s.patch_crop)
        if val_images is None:
            n_val = int(round(s.val_fraction * len(images))) if len(images) > 1 else 0
            cut = len(images) - n_val
            val_images, val_labels, images, labels = images[cut:], labels[cut:], images[:cut], labels[:cut]
        else:
            val_images, val_labels = check_arrays(val_images, val_labels, s.model, "validation images", s.patch_crop)
        seed = s.seed_for(0) if seed is None else seed
        device = resolve_device(s.device)
        self.model = UNet.from_config(s.model, generator=torch_generator(seed, 0, 0)).to(device)
        train = PatchSet(images, labels, expand(np.arange(len(images)), s.train_shuffle_seed, s.dihedral))
        val = PatchSet(val_images, val_labels, expand(np.arange(len(val_images)), s.val_shuffle_seed, s.dihedral))
        result = fit(self.model, train, val, s, seed, device, description="fit")
        self.model.load_state_dict(result.best_state)
        self.model.eval()
        self.history = result.history
        self.meta = CheckpointMeta(
            kind="segmenter",
            seed=seed,
            settings=s.fingerprint(),
            best_epoch=result.best_epoch,
            best_val_loss=result.best_val_loss,
            dataset_spec=None,
            trained_with=result.speed,
        )
        return self

    def _require(self):
        if self.model is None:
            raise RuntimeError("Segmenter is not fitted; call fit() or Segmenter.load()")

    def predict_proba(self, images, batch_size: int = 8, tta: bool = False) -> np.ndarray:
        """Nanoparticle probability per pixel, shape of `images` ((H, W) or (N, H, W))."""
        from temshift.models.inference import predict_proba

        self._require()
        return predict_proba(self.model, images, batch_size=batch_size, tta=tta)

    def predict(self, images, batch_size: int = 8, tta: bool = False) -> np.ndarray:
        """0/1 masks (uint8), shape of `images`; `tta` averages the 8 dihedral variants."""
        from temshift.models.inference import particle_mask

        return particle_mask(self.predict_proba(images, batch_size, tta))

    def save(self, path) -> Path:
        """Write a temshift checkpoint (usable by `load_model` and the CLI)."""
        from temshift.models.checkpoint import save_checkpoint

        self._require()
        return save_checkpoint(path, self.model.cpu(), self.meta)

    @classmethod
    def load(cls, path) -> Segmenter:
        """Load a temshift checkpoint or the authors' released weights."""
        from temshift.models.checkpoint import load_model
        from temshift.models.unet import ModelConfig

        model, meta = load_model(path)
        seg = cls(model=ModelConfig.model_validate(meta.config))
        seg.model, seg.meta = model, meta
        return seg
