"""Batched inference on whole patches or images of any size (padded to the model's multiple)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def predict_logits(model, x: torch.Tensor) -> torch.Tensor:
    """Logits for a batch ``(B, C, H, W)`` of any H, W: reflect-pads to the model's size multiple, then crops."""
    multiple = model.config.size_multiple
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return model(x)[..., :h, :w]


@torch.no_grad()
def predict_proba(model, images, batch_size: int = 8, tta: bool = False, device=None) -> np.ndarray:
    """Class-1 probability for images ``(H, W)`` or ``(N, H, W)`` (float32, same shape).

    Parameters
    ----------
    model : UNet
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
    from temshift.training.dihedral import dihedral, inverse_dihedral

    model.eval()
    device = device or next(model.parameters()).device
    arr = np.asarray(images, dtype=np.float32)
    single = arr.ndim == 2
    arr = arr[None] if single else arr
    out = np.empty(arr.shape, dtype=np.float32)
    variants = range(8) if tta else (0,)
    for start in range(0, len(arr), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(arr[start:start + batch_size])).unsqueeze(1).to(device)
        acc = 0
        for k in variants:
            prob = torch.softmax(predict_logits(model, dihedral(x, k)).float(), dim=1)[:, 1]
            acc = acc + inverse_dihedral(prob, k)
        out[start:start + batch_size] = (acc / len(variants)).cpu().numpy()
    return out[0] if single else out
