"""Model architectures by name: how to build one from its config and fold its BatchNorms.

A checkpoint stores the architecture's name and config (:mod:`temshift.models.checkpoint`);
loading builds the network through :func:`get_architecture`, and fast inference folds the
BatchNorms with the entry's ``fold_batchnorm``. The residual U-Net is ``"unet"``, the
architecture of every checkpoint that names none. A new architecture needs one
:func:`register_architecture` call; training (:func:`temshift.training.trainer.fit`),
checkpoints and prediction then take it as it is.

Importing this module imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from temshift.errors import CheckpointError
from temshift.models.records import DEFAULT_ARCHITECTURE

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "architecture_of",
    "fold_batchnorm",
    "get_architecture",
    "register_architecture",
]


def _no_folding(model: nn.Module) -> None:
    """For architectures without BatchNorm (or that keep it): nothing to fold."""


@dataclass(frozen=True)
class Architecture:
    """A registered model architecture.

    Attributes
    ----------
    name : str
        Name stored in checkpoints.
    module_type : type
        The ``torch.nn.Module`` class the builder returns (how a model is recognised).
    build : callable
        ``build(config) -> nn.Module`` from the JSON config dict, weights initialised.
    config_of : callable
        ``config_of(model) -> dict``: the JSON-ready config that rebuilds `model`.
    fold_batchnorm : callable
        ``fold_batchnorm(model) -> None``: fold BatchNorms into the preceding convolutions
        of an eval-mode copy, in place (exact up to float rounding); a no-op by default.
    """

    name: str
    module_type: type[nn.Module]
    build: Callable[[Mapping[str, Any]], nn.Module]
    config_of: Callable[[nn.Module], dict[str, Any]]
    fold_batchnorm: Callable[[nn.Module], None] = _no_folding


ARCHITECTURES: dict[str, Architecture] = {}
"""Registered architectures by name."""


def register_architecture(arch: Architecture, *, replace: bool = False) -> Architecture:
    """Add `arch` to :data:`ARCHITECTURES` (an existing name only with `replace`)."""
    if not arch.name or not arch.name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"architecture name {arch.name!r}: use letters, digits, '-' and '_'")
    if arch.name in ARCHITECTURES and not replace:
        raise ValueError(f"architecture {arch.name!r} is registered already")
    ARCHITECTURES[arch.name] = arch
    return arch


def get_architecture(name: str | None) -> Architecture:
    """The architecture registered as `name` (None: ``"unet"``).

    Raises
    ------
    CheckpointError
        Unknown name (the message lists the registered ones).
    """
    name = name or DEFAULT_ARCHITECTURE
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise CheckpointError(
            f"unknown model architecture {name!r} (registered: {', '.join(sorted(ARCHITECTURES))})"
        ) from None


def architecture_of(model: nn.Module) -> Architecture:
    """The registered architecture `model` is an instance of (the most derived match).

    Raises
    ------
    CheckpointError
        `model` is of no registered architecture.
    """
    matches = [a for a in ARCHITECTURES.values() if isinstance(model, a.module_type)]
    if not matches:
        raise CheckpointError(
            f"{type(model).__name__} is not a registered model architecture "
            f"(see temshift.models.architectures.register_architecture)"
        )
    return max(matches, key=lambda a: len(a.module_type.__mro__))


def fold_batchnorm(model: nn.Module) -> None:
    """Fold the BatchNorms of an eval-mode copy, in place, as its registered architecture does.

    A module of no registered architecture (a bare network handed to prediction) is left
    as it is: folding is an optimisation, never needed for correct output.
    """
    matches = [a for a in ARCHITECTURES.values() if isinstance(model, a.module_type)]
    if matches:
        architecture_of(model).fold_batchnorm(model)


def _unet() -> Architecture:
    from temshift.models.unet import UNet, fold_batchnorm

    def build(config: Mapping[str, Any]) -> nn.Module:
        return UNet.from_config(dict(config))

    def config_of(model: nn.Module) -> dict[str, Any]:
        cfg: dict[str, Any] = model.config.model_dump()
        return cfg

    return Architecture("unet", UNet, build, config_of, fold_batchnorm)


register_architecture(_unet())
