"""The one inference path: forward passes, particle probability and mask, the fast inference copy.

Every stage that runs a segmentation network goes through this module: training validation
(`temshift.training.trainer.validate`), evaluation (`temshift.evaluation.evaluate_model`),
`temshift.Segmenter.predict`, the studies (through those two) and whole-frame prediction
(`temshift.predict.uncertainty.member_probabilities`, which tiles a frame and calls
:func:`batch_fn`). What they share:

- :func:`forward`: float32 logits of a batch of any height and width (reflect-padded to the
  model's size multiple, then cropped), channels-last and bfloat16 autocast as the caller's
  speed policy says (:func:`temshift.models.runtime.resolve_speed`);
- :func:`particle_probability`: the softmax probability of class 1 (nanoparticle);
- :data:`THRESHOLD` and :func:`particle_mask`: a pixel is particle when its probability is
  *above* 0.5, the argmax of the two-class softmax (the metrics count ``logit_1 > logit_0``,
  the same decision);
- dihedral variants from :mod:`temshift.models.dihedral`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from temshift.models.dihedral import N_VARIANTS, dihedral, inverse_dihedral
from temshift.models.runtime import autocast, native_bf16

THRESHOLD = 0.5
"""Particle probability above which a pixel is particle (argmax of the two-class softmax)."""


def particle_mask(probability: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """uint8 {0, 1} mask of the pixels whose particle probability is above `threshold`."""
    return (np.asarray(probability) > threshold).astype(np.uint8)


def size_multiple(model: nn.Module) -> int:
    """Input height and width must be multiples of this (16 for the paper's U-Net)."""
    cfg = getattr(model, "config", None)
    return int(getattr(cfg, "size_multiple", 16) or 16)


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def forward(
    model: nn.Module, x: torch.Tensor, *, device: Any = None, channels_last: bool = False, bf16: bool = False
) -> torch.Tensor:
    """float32 logits ``(B, C, H, W)`` of a batch ``(B, C_in, H, W)`` of any H, W, without gradients.

    The batch is moved to `device` (default: the model's), reflect-padded at the bottom and
    right to the model's size multiple (replicate-padded when it is too small to reflect),
    laid out channels-last when asked, and run under bfloat16 autocast when `bf16`; the
    logits are cropped back to H, W. The model's mode is left as it is (callers switch it to
    eval mode).
    """
    device = device if device is not None else _device_of(model)
    multiple = size_multiple(model)
    h, w = x.shape[-2:]
    x = x.to(device, non_blocking=True)
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    x = x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    with torch.no_grad(), autocast(device, bf16):
        logits = model(x)
    return logits[..., :h, :w].float()


def particle_probability(logits: torch.Tensor) -> torch.Tensor:
    """Softmax probability of class 1 ``(B, 1, H, W)`` from logits ``(B, C, H, W)`` (float32)."""
    return torch.softmax(logits.float(), dim=1)[:, 1:2]


@torch.no_grad()
def predict_proba(
    model: nn.Module, images: Any, batch_size: int = 8, tta: bool = False, device: Any = None
) -> np.ndarray:
    """Class-1 probability for images ``(H, W)`` or ``(N, H, W)`` (float32, same shape).

    Parameters
    ----------
    model : torch.nn.Module
        Switched to eval mode.
    images : array
        Preprocessed images (as in training).
    batch_size : int
        Images per forward pass.
    tta : bool
        Average the probabilities over the 8 dihedral variants.
    device : torch.device, optional
        Defaults to the model's device.
    """
    model.eval()
    device = device or _device_of(model)
    arr = np.asarray(images, dtype=np.float32)
    single = arr.ndim == 2
    arr = arr[None] if single else arr
    out = np.empty(arr.shape, dtype=np.float32)
    variants = range(N_VARIANTS) if tta else (0,)
    for start in range(0, len(arr), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(arr[start : start + batch_size])).unsqueeze(1).to(device)
        acc: Any = 0
        for k in variants:
            prob = particle_probability(forward(model, dihedral(x, k), device=device))[:, 0]
            acc = acc + inverse_dihedral(prob, k)
        out[start : start + batch_size] = (acc / len(variants)).cpu().numpy()
    return out[0] if single else out


class StridedMaxPool2d(nn.Module):
    """2 x 2 max pooling with stride 2 as the maximum of four strided views.

    Equals ``nn.MaxPool2d(2, 2)`` exactly (the same maxima, NaN propagated alike) and is about
    4x faster on CPU for the thin, large activations of whole-frame tiles (no index tensor).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        x = x[..., :h, :w]
        return torch.maximum(
            torch.maximum(x[..., 0::2, 0::2], x[..., 1::2, 0::2]), torch.maximum(x[..., 0::2, 1::2], x[..., 1::2, 1::2])
        )


class ConvReLU(nn.Module):
    """``relu(conv(x))`` of an eval-mode convolution, as one oneDNN kernel under bfloat16 autocast.

    oneDNN applies the ReLU to the float32 accumulator before rounding to bfloat16; the ReLU
    commutes with that rounding, so the output equals the two separate ops bit for bit (checked
    in tests/test_predict_pipeline.py), and one pass over the activation is saved. Other dtypes,
    devices and CPUs without native bfloat16 kernels run the two ops as they are.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self._bf16: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def _fusable(self, x: torch.Tensor) -> bool:
        c = self.conv
        return (
            x.device.type == "cpu"
            and torch.is_autocast_enabled("cpu")
            and native_bf16()
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
            and not torch.is_grad_enabled()
            and c.padding_mode == "zeros"
            and isinstance(c.padding, tuple)
            and x.dim() == 4
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._fusable(x):
            return torch.relu(self.conv(x))
        c = self.conv
        if self._bf16 is None:  # the cast autocast would make on every call, made once
            w = c.weight.detach().to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
            self._bf16 = (w, None if c.bias is None else c.bias.detach().to(torch.bfloat16))
        w, b = self._bf16
        x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        return torch.ops.mkldnn._convolution_pointwise(
            x, w, b, list(c.padding), list(c.stride), list(c.dilation), c.groups, "relu", [], ""
        )


class ChannelsLastOutput(nn.Module):
    """A module whose 4-D output is laid out channels-last (an exact copy when it is not already).

    A convolution of a one-channel input (the first residual block's 1x1 shortcut) returns the
    contiguous layout, since channels-last and contiguous cannot be told apart for one channel;
    adding it to the channels-last main branch then runs a strided add about 3x slower than
    copying it into the same layout first.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        return out.contiguous(memory_format=torch.channels_last) if out.dim() == 4 else out


def _is_plain_pool(mod: nn.Module) -> bool:
    def pair(v: Any) -> tuple:
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    return (
        isinstance(mod, nn.MaxPool2d)
        and pair(mod.kernel_size) == (2, 2)
        and pair(mod.stride) == (2, 2)
        and pair(mod.padding) == (0, 0)
        and pair(mod.dilation) == (1, 1)
        and not mod.ceil_mode
        and not mod.return_indices
    )


def _fuse_for_cpu(model: nn.Module, channels_last: bool) -> None:
    """The bit-identical CPU speed-ups of :func:`inference_model`, in place (after BatchNorm folding)."""
    from temshift.models.unet import ResidualBlock

    for mod in list(model.modules()):
        if isinstance(mod, ResidualBlock):
            if isinstance(mod.bn1, nn.Identity) and isinstance(mod.relu1, nn.ReLU):
                mod.conv1 = ConvReLU(mod.conv1)
                mod.relu1 = nn.Identity()
            if isinstance(mod.relu2, nn.ReLU):
                mod.relu2.inplace = True
            if channels_last and isinstance(mod.conv_add, nn.Conv2d) and mod.conv_add.in_channels == 1:
                mod.conv_add = ChannelsLastOutput(mod.conv_add)
        for name, child in list(mod.named_children()):
            if _is_plain_pool(child):
                setattr(mod, name, StridedMaxPool2d())


def inference_model(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """A copy of `model` for fast CPU inference; the original is left untouched.

    Changes that give the same outputs as the eval-mode model (up to float rounding of the
    folded weights):

    - BatchNorms are folded into the preceding convolutions by the model's registered
      architecture (:mod:`temshift.models.architectures`; exact in eval mode, up to float rounding);
    - the first convolution of each residual block and its ReLU run as one kernel
      (:class:`ConvReLU`, bit-identical), the block's last ReLU works in place (its input is a
      fresh tensor); a one-channel shortcut convolution returns channels-last like the main
      branch (:class:`ChannelsLastOutput`), so that their sum is not a strided add;
    - 2 x 2 max pooling is :class:`StridedMaxPool2d` (bit-identical, no index tensor);
    - weights use the channels-last memory layout, which oneDNN runs ~1.6x faster for these
      thin layers on CPU.
    """
    import copy

    from temshift.models.architectures import fold_batchnorm

    fast = copy.deepcopy(model).eval()
    fold_batchnorm(fast)  # by the model's registered architecture (unregistered modules: not folded)
    _fuse_for_cpu(fast, channels_last)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    return fast


def batch_fn(
    model: nn.Module, device: Any = "cpu", channels_last: bool = False, bf16: bool = False
) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a network as ``(B, h, w) float32 -> (B, 1, h, w)`` particle probabilities (softmax class 1).

    With `bf16` the convolutions run under bfloat16 autocast (CPU with native bf16 only);
    the softmax is taken in float32. Used by the tiled whole-frame prediction
    (:func:`temshift.predict.tiling.predict_tiled`).
    """

    def apply(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch[:, None]))
            p = particle_probability(forward(model, x, device=device, channels_last=channels_last, bf16=bf16))
            return p.contiguous().cpu().numpy()

    return apply
