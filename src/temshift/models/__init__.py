"""Residual U-Net, temshift checkpoints and the authors' released weights.

Importing this package imports torch.
"""

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
from temshift.models.pretrained import pretrained
from temshift.models.published import load_published
from temshift.models.records import CheckpointMeta, TrainedDataset
from temshift.models.unet import ModelConfig, ResidualBlock, UNet, count_parameters

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
