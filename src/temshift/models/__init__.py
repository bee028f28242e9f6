"""Residual U-Net, temshift checkpoints, the authors' released weights and their zoo manifest.

The names below are imported from their module on first use: importing the package (or the
torch-free `temshift.models.zoo`, for ``temshift zoo list``) does not import torch.
"""

from typing import TYPE_CHECKING

from temshift._lazy import lazy_exports

# Bound eagerly (the module is torch-free): a lazy `pretrained` would be shadowed by the
# submodule of the same name as soon as anything imports `temshift.models.pretrained`.
from temshift.models.pretrained import pretrained

if TYPE_CHECKING:  # the names as mypy sees them; at run time they come lazily from _EXPORTS
    from temshift.models.architectures import Architecture, architecture_of, get_architecture, register_architecture
    from temshift.models.checkpoint import load_checkpoint, load_model, save_checkpoint
    from temshift.models.dihedral import N_VARIANTS, dihedral, inverse_dihedral
    from temshift.models.inference import (
        THRESHOLD,
        batch_fn,
        forward,
        inference_model,
        particle_mask,
        particle_probability,
        predict_proba,
    )
    from temshift.models.metrics import METRICS, MetricSums, mask_dice
    from temshift.models.published import load_published
    from temshift.models.records import CheckpointMeta, TrainedDataset
    from temshift.models.unet import ModelConfig, ResidualBlock, UNet, count_parameters

_EXPORTS = {
    **dict.fromkeys(
        ("Architecture", "architecture_of", "get_architecture", "register_architecture"),
        "temshift.models.architectures",
    ),
    **dict.fromkeys(("load_checkpoint", "load_model", "save_checkpoint"), "temshift.models.checkpoint"),
    **dict.fromkeys(("N_VARIANTS", "dihedral", "inverse_dihedral"), "temshift.models.dihedral"),
    **dict.fromkeys(
        (
            "THRESHOLD",
            "batch_fn",
            "forward",
            "inference_model",
            "particle_mask",
            "particle_probability",
            "predict_proba",
        ),
        "temshift.models.inference",
    ),
    **dict.fromkeys(("METRICS", "MetricSums", "mask_dice"), "temshift.models.metrics"),
    "load_published": "temshift.models.published",
    **dict.fromkeys(("CheckpointMeta", "TrainedDataset"), "temshift.models.records"),
    **dict.fromkeys(("ModelConfig", "ResidualBlock", "UNet", "count_parameters"), "temshift.models.unet"),
}

__all__ = [
    "METRICS",
    "N_VARIANTS",
    "THRESHOLD",
    "Architecture",
    "CheckpointMeta",
    "MetricSums",
    "ModelConfig",
    "ResidualBlock",
    "TrainedDataset",
    "UNet",
    "architecture_of",
    "batch_fn",
    "count_parameters",
    "dihedral",
    "forward",
    "get_architecture",
    "inference_model",
    "inverse_dihedral",
    "load_checkpoint",
    "load_model",
    "load_published",
    "mask_dice",
    "particle_mask",
    "particle_probability",
    "predict_proba",
    "pretrained",
    "register_architecture",
    "save_checkpoint",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
