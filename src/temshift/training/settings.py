"""Training settings; the defaults are the paper's protocol (docs/protocol.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from temshift.models.unet import ModelConfig

# fields that change speed or placement but not the result (not part of a run's fingerprint)
RUNTIME_FIELDS = ("device", "threads", "progress")


class TrainSettings(BaseModel):
    """How one fold model is trained.

    Attributes
    ----------
    epochs : int
        Training epochs (250).
    batch_size : int
        Samples per optimizer step (32).
    learning_rate : float
        Adam learning rate (1e-4); default betas (0.9, 0.999).
    n_folds, val_fraction : int, float
        Contiguous folds (5) and validation share of the non-test patches (0.125).
    fold_seeds : tuple of int
        Seed of each fold (962, 1662, 621, 72115, 45521): initialization, batch order,
        augmentation and noise.
    seed : int or None
        Overrides the fold seed when set.
    train_shuffle_seed, val_shuffle_seed, test_shuffle_seed : int
        Shuffles of the dihedral-expanded sets (9201, 6274, 7427).
    dihedral : bool
        Expand train/validation/test sets with the 8 dihedral variants.
    shuffle_each_epoch : bool
        Reshuffle the training samples every epoch (seeded by seed and epoch).
    rotate_probability : float
        Share of training samples flipped and rotated (0.5); 0 disables.
    noise_rho, noise_rho_max : float or None
        Additive Gaussian noise, fixed scale or uniform in [0, rho_max] per sample; at most one.
    noise_on_validation : bool
        Apply the noise to validation samples too (the paper); validation noise is the same
        every epoch.
    samples_per_epoch : int or None
        At most this many training samples per epoch: a fresh random subset every epoch,
        so the cost of an epoch stops growing with the dataset (None = all samples).
    patch_crop : int or None
        Train on random crops of this size (validation on centre crops) to save time.
    early_stopping_patience : int or None
        Stop after this many epochs without a lower validation loss; None trains all epochs.
    model : ModelConfig
        Network shape (the paper's 4-8-16-32 / 64 residual U-Net).
    channels_last, bf16 : bool or None
        Speed options: channels-last memory format, bfloat16 autocast (accuracy unchanged in
        benchmarks/train.py). None = auto: both on for CPU training when the CPU has native
        bfloat16 kernels; the choice made is recorded in the checkpoint meta.
    device : str
        "auto" (GPU when present), "cpu", "cuda", ... (not part of the fingerprint).
    threads : int or None
        torch threads for this run (not part of the fingerprint).
    progress : bool
        Report training progress to the reporter given to `train_fold` / `fit` (not part of the fingerprint).
    """

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(250, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    n_folds: int = Field(5, ge=2)
    val_fraction: float = Field(0.125, ge=0, lt=1)
    fold_seeds: tuple[int, ...] = (962, 1662, 621, 72115, 45521)
    seed: int | None = None
    train_shuffle_seed: int = 9201
    val_shuffle_seed: int = 6274
    test_shuffle_seed: int = 7427
    dihedral: bool = True
    shuffle_each_epoch: bool = True
    rotate_probability: float = Field(0.5, ge=0, le=1)
    noise_rho: float | None = Field(None, ge=0)
    noise_rho_max: float | None = Field(None, ge=0)
    noise_on_validation: bool = True
    samples_per_epoch: int | None = Field(None, ge=1)
    patch_crop: int | None = Field(None, ge=8)
    early_stopping_patience: int | None = Field(None, ge=1)
    model: ModelConfig = ModelConfig()
    channels_last: bool | None = None
    bf16: bool | None = None
    device: str = "auto"
    threads: int | None = Field(None, ge=1)
    progress: bool = True

    @model_validator(mode="after")
    def _check(self):
        if self.noise_rho is not None and self.noise_rho_max is not None:
            raise ValueError("set at most one of noise_rho and noise_rho_max")
        if self.patch_crop is not None and self.patch_crop % self.model.size_multiple:
            raise ValueError(f"patch_crop must be a multiple of {self.model.size_multiple}")
        return self

    def seed_for(self, fold: int) -> int:
        """The seed of `fold`: `seed` if set, else ``fold_seeds[fold]`` (cycled past the list)."""
        if self.seed is not None:
            return self.seed
        return self.fold_seeds[fold % len(self.fold_seeds)]

    def fingerprint(self) -> dict:
        """Settings that determine the result (runtime-only fields removed)."""
        return self.model_dump(mode="json", exclude=set(RUNTIME_FIELDS))
