"""The paper's residual U-Net (docs/protocol.md, "Model").

Attribute names (`downs`, `ups`, `pools`, `upsamples`, `bottleneck`, `final_conv`,
`num_blocks`; blocks `conv1`, `bn1`, `relu1`, `conv2`, `bn2`, `relu2`, `conv_add`) match the
authors' released modules so that their state dicts load without renaming.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn


class ModelConfig(BaseModel):
    """Shape of a residual U-Net.

    Attributes
    ----------
    in_channels : int
        Image channels (1 for HRTEM patches).
    num_classes : int
        Output classes (2: background, nanoparticle).
    filters : tuple of int
        Filters of the down blocks, shallowest first; depth = ``len(filters)``.
    bottleneck : int
        Filters of the bottleneck block.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    in_channels: int = Field(1, ge=1)
    num_classes: int = Field(2, ge=2)
    filters: tuple[int, ...] = (4, 8, 16, 32)
    bottleneck: int = Field(64, ge=1)

    @field_validator("filters")
    @classmethod
    def _positive(cls, value):
        if not value or any(f < 1 for f in value):
            raise ValueError("filters must be a non-empty tuple of positive integers")
        return tuple(value)

    @property
    def size_multiple(self) -> int:
        """Patch height and width must be multiples of this (2 ** depth)."""
        return 2 ** len(self.filters)


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus a 1x1 conv of the input, then ReLU.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.conv_add = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.conv_add(x))


class UNet(nn.Module):
    """Residual U-Net returning per-pixel class logits ``(B, num_classes, H, W)``.

    Parameters
    ----------
    in_channels : int
        Input channels.
    num_classes : int
        Output classes.
    filters : sequence of int
        Down-block filters; 4-8-16-32 in the paper.
    bottleneck : int
        Bottleneck filters; 64 in the paper.
    generator : torch.Generator, optional
        Random source for the initialization (Kaiming-normal conv weights, PyTorch's
        default uniform conv biases, BN weight 1 and bias 0); global RNG if None.

    Notes
    -----
    H and W must be multiples of ``2 ** len(filters)``. Defaults give 130,682 parameters.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        filters=(4, 8, 16, 32),
        bottleneck: int = 64,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.config = ModelConfig(
            in_channels=in_channels, num_classes=num_classes, filters=tuple(filters), bottleneck=bottleneck
        )
        filters = self.config.filters
        self.num_blocks = len(filters)
        self.downs = nn.ModuleList()
        self.pools = nn.ModuleList()
        channels = in_channels
        for f in filters:
            self.downs.append(ResidualBlock(channels, f))
            self.pools.append(nn.MaxPool2d(2, 2))
            channels = f
        self.bottleneck = ResidualBlock(channels, bottleneck)
        self.ups = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        below = bottleneck
        for f in reversed(filters):
            self.upsamples.append(nn.Upsample(scale_factor=2, mode="nearest"))
            self.ups.append(ResidualBlock(f + below, f))
            below = f
        self.final_conv = nn.Conv2d(filters[0], num_classes, 1)
        self.reset_parameters(generator)

    @classmethod
    def from_config(cls, config: ModelConfig | dict, generator: torch.Generator | None = None) -> UNet:
        """Build a U-Net from a `ModelConfig` or its dict."""
        config = ModelConfig.model_validate(config)
        return cls(**config.model_dump(), generator=generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialize as published: Kaiming-normal conv weights, BN weight 1 and bias 0."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, generator=generator)
                    fan_in = module.weight[0].numel()
                    bound = 1.0 / math.sqrt(fan_in)
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiple = self.config.size_multiple
        if x.shape[-1] % multiple or x.shape[-2] % multiple:
            raise ValueError(f"input height and width {tuple(x.shape[-2:])} must be multiples of {multiple}")
        skips = []
        for down, pool in zip(self.downs, self.pools):
            x = down(x)
            skips.append(x)
            x = pool(x)
        x = self.bottleneck(x)
        for up, upsample, skip in zip(self.ups, self.upsamples, reversed(skips)):
            x = up(torch.cat([skip, upsample(x)], dim=1))
        return self.final_conv(x)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fold_batchnorm(model: nn.Module) -> None:
    """Fold each ``convN`` followed by a ``bnN`` BatchNorm (the residual blocks) into one conv, in place.

    Exact in eval mode, up to float rounding; call it on an eval-mode copy (the folded
    model no longer trains its BatchNorm statistics).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for mod in model.modules():
        for k in (1, 2, 3):
            conv, bn = getattr(mod, f"conv{k}", None), getattr(mod, f"bn{k}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(mod, f"conv{k}", fuse_conv_bn_eval(conv, bn))
                setattr(mod, f"bn{k}", nn.Identity())
