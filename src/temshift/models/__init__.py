"""Residual U-Net, temshift checkpoints and the authors' released weights.

Importing this package imports torch.
"""

from temshift.models.architectures import Architecture, architecture_of, get_architecture, register_architecture
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
from temshift.models.checkpoint import load_checkpoint, load_model, save_checkpoint
from temshift.models.pretrained import pretrained
from temshift.models.published import load_published
from temshift.models.records import CheckpointMeta, TrainedDataset
from temshift.models.unet import ModelConfig, ResidualBlock, UNet, count_parameters

__all__ = ["METRICS", "N_VARIANTS", "THRESHOLD", "MetricSums", "batch_fn", "dihedral", "forward", "inference_model",
           "inverse_dihedral", "mask_dice", "particle_mask", "particle_probability", "predict_proba",
           "Architecture", "CheckpointMeta", "ModelConfig", "TrainedDataset", "architecture_of", "get_architecture",
           "register_architecture", "ResidualBlock", "UNet", "count_parameters", "load_checkpoint", "load_model",
           "load_published", "pretrained", "save_checkpoint"]
