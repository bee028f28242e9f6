"""Residual U-Net, temshift checkpoints and the authors' released weights.

Importing this package imports torch.
"""

from temshift.models.architectures import Architecture, architecture_of, get_architecture, register_architecture
from temshift.models.checkpoint import load_checkpoint, load_model, save_checkpoint
from temshift.models.pretrained import pretrained
from temshift.models.published import load_published
from temshift.models.records import CheckpointMeta, TrainedDataset
from temshift.models.unet import ModelConfig, ResidualBlock, UNet, count_parameters

__all__ = ["Architecture", "CheckpointMeta", "ModelConfig", "TrainedDataset", "architecture_of", "get_architecture",
           "register_architecture", "ResidualBlock", "UNet", "count_parameters", "load_checkpoint", "load_model",
           "load_published", "pretrained", "save_checkpoint"]
