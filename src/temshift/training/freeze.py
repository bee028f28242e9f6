"""Freezing parts of a residual U-Net for transfer learning.

``decoder`` freezes the up path and the final 1x1 convolution (Rangel DaCosta, Oill & Scott
found a pretrained model fine-tuned with a frozen decoder does about as well as full
fine-tuning); ``encoder`` freezes the down path and the bottleneck; ``none`` trains all.
Frozen parameters stop requiring gradients (Adam then never touches them) and the
BatchNorm layers of frozen parts stay in eval mode, so their running statistics do not
drift with the few new frames either.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

FreezeMode = Literal["encoder", "decoder", "none"]
FREEZE_MODES = ("encoder", "decoder", "none")

#: top-level UNet attributes of each part (pools and upsamplings have no parameters)
PARTS = {"encoder": ("downs", "bottleneck"), "decoder": ("ups", "final_conv")}


class EvalBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d that stays in eval mode: normalizes with, and keeps, its running statistics.

    Its state dict is that of a plain BatchNorm2d, so a checkpoint of a partly frozen model
    loads into an ordinary `UNet`.
    """

    def train(self, mode: bool = True):
        return super().train(False)


def _eval_batchnorms(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, EvalBatchNorm2d):
            frozen = EvalBatchNorm2d(
                child.num_features,
                eps=child.eps,
                momentum=child.momentum,
                affine=child.affine,
                track_running_stats=child.track_running_stats,
            )
            frozen.load_state_dict(child.state_dict())
            frozen.to(next(child.buffers()).device)
            setattr(module, name, frozen.eval())
        else:
            _eval_batchnorms(child)


def frozen_prefixes(mode: str) -> tuple[str, ...]:
    """State-dict prefixes (``"downs."``, ...) frozen by `mode`.

    Raises
    ------
    ValueError
        Unknown mode.
    """
    if mode not in FREEZE_MODES:
        raise ValueError(f"freeze mode must be one of {', '.join(FREEZE_MODES)}, got {mode!r}")
    return tuple(f"{p}." for p in PARTS.get(mode, ()))


def freeze(model: nn.Module, mode: str) -> dict:
    """Freeze part of `model` in place.

    Parameters
    ----------
    model : UNet
    mode : {"encoder", "decoder", "none"}

    Returns
    -------
    dict
        ``mode``, ``frozen_parameters``, ``trainable_parameters`` (counts of scalars) and
        ``frozen`` (the frozen top-level parts).
    """
    frozen_prefixes(mode)  # validates
    for part in PARTS.get(mode, ()):
        sub = getattr(model, part)
        _eval_batchnorms(sub)  # first: the replacement BatchNorms bring new parameter objects
        for p in sub.parameters():
            p.requires_grad_(False)
    n_frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "mode": mode,
        "frozen": list(PARTS.get(mode, ())),
        "frozen_parameters": int(n_frozen),
        "trainable_parameters": int(n_train),
    }
