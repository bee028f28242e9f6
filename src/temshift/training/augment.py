"""Training augmentation on batches: random flip + rotation, Gaussian noise, random crop.

All functions take explicit `torch.Generator`s so that a run is reproducible without
touching global random state. Images are ``(B, 1, H, W)`` float tensors, labels
``(B, H, W)`` integer tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def background_median(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample median of the background pixels (label 0); all pixels if there are none.

    Returns
    -------
    Tensor, shape (B,)
    """
    flat = images.reshape(images.shape[0], -1)
    background = labels.reshape(labels.shape[0], -1) == 0
    out = torch.empty(flat.shape[0], dtype=flat.dtype)
    for i in range(flat.shape[0]):  # 1-D median is a selection, far cheaper than a masked sort
        values = flat[i][background[i]]
        out[i] = (values if values.numel() else flat[i]).median()
    return out


def rotate(images: torch.Tensor, labels: torch.Tensor, angles_deg: torch.Tensor, fill: torch.Tensor):
    """Rotate each sample about its centre by `angles_deg` (counter-clockwise on screen).

    The image is interpolated bilinearly and filled with `fill` (per sample) outside the
    original field of view; the label is interpolated by nearest neighbour and filled with 0.

    Returns
    -------
    images, labels : Tensor
        Same shapes and dtypes as the inputs.
    """
    b, _, h, w = images.shape
    theta = torch.deg2rad(angles_deg.to(torch.float32))
    cos, sin = torch.cos(theta), torch.sin(theta)
    mat = torch.zeros(b, 2, 3, dtype=torch.float32)
    mat[:, 0, 0] = cos
    mat[:, 0, 1] = -sin * h / w
    mat[:, 1, 0] = sin * w / h
    mat[:, 1, 1] = cos
    grid = F.affine_grid(mat, [b, 1, h, w], align_corners=False).to(images.dtype)
    fill = fill.to(images.dtype).view(b, 1, 1, 1)
    out = F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    lab = F.grid_sample(
        labels.unsqueeze(1).to(images.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False
    )
    return out, lab.squeeze(1).round().to(labels.dtype)


def random_flip_rotate(images, labels, generator: torch.Generator, probability: float = 0.5):
    """The paper's training augmentation.

    Each sample, with `probability`, is flipped (up-down, left-right or neither, 1/3 each)
    and rotated by a uniform angle in [0, 360) degrees, the image filled with the median of
    its background pixels and the label with 0.

    Returns
    -------
    images, labels : Tensor
        New tensors; the inputs are not modified.
    """
    b = images.shape[0]
    chosen = torch.rand(b, generator=generator) < probability
    flips = torch.randint(0, 3, (b,), generator=generator)
    angles = torch.rand(b, generator=generator) * 360.0
    idx = torch.nonzero(chosen).flatten()
    if len(idx) == 0:
        return images, labels
    images, labels = images.clone(), labels.clone()
    sub_x, sub_y = images[idx], labels[idx]
    fill = background_median(sub_x, sub_y)
    for j, flip in enumerate(flips[idx].tolist()):
        if flip == 0:
            sub_x[j], sub_y[j] = sub_x[j].flip(-2), sub_y[j].flip(-2)
        elif flip == 1:
            sub_x[j], sub_y[j] = sub_x[j].flip(-1), sub_y[j].flip(-1)
    sub_x, sub_y = rotate(sub_x, sub_y, angles[idx], fill)
    images[idx], labels[idx] = sub_x, sub_y
    return images, labels


def sample_rho(
    batch: int, generator: torch.Generator, rho: float | None = None, rho_max: float | None = None
) -> torch.Tensor | None:
    """Noise scales for a batch: fixed `rho`, or uniform in [0, `rho_max`] per sample; None for no noise."""
    if rho is not None:
        return torch.full((batch,), float(rho))
    if rho_max is not None:
        return torch.rand(batch, generator=generator) * float(rho_max)
    return None


def add_noise(images: torch.Tensor, rho: torch.Tensor | float, generator: torch.Generator) -> torch.Tensor:
    """``x' = (x + N(0, rho^2)) / sqrt(1 + rho^2)`` per sample (keeps unit variance of standardized data)."""
    rho = torch.as_tensor(rho, dtype=images.dtype).reshape(-1, *([1] * (images.dim() - 1)))
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    return (images + rho * noise) / torch.sqrt(1.0 + rho * rho)


def crop_offsets(batch: int, size: int, crop: int, generator: torch.Generator | None) -> torch.Tensor:
    """Top-left offsets (B, 2) of `crop`-pixel crops in `size`-pixel patches; centred if no generator."""
    if crop > size:
        raise ValueError(f"patch crop {crop} is larger than the patch size {size}")
    if generator is None:
        return torch.full((batch, 2), (size - crop) // 2, dtype=torch.long)
    return torch.randint(0, size - crop + 1, (batch, 2), generator=generator)
