"""Segmentation metrics of the paper and a few more, defined once for training, evaluation and prediction.

Per patch, with ``p`` the softmax probability of class 1 (nanoparticle) and ``t`` the label:
soft dice ``(2 sum(p t) + 1) / (sum p + sum t + 1)``; hard dice the same with ``round(p)``
(``p > 0.5``, :data:`temshift.models.inference.THRESHOLD`; counted as ``logit_1 > logit_0`` for two
classes); both averaged over patches. Pooled over a test set: hard dice
``2 TP / (2 TP + FP + FN)``, false-positive rate ``FP / (FP + TN)``, false-negative rate
``FN / (FN + TP)`` and over-segmentation share ``FP / (FP + FN)``. Cross-entropy is the mean
per pixel (natural log).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SMOOTH = 1.0
METRICS = ("ce", "soft_dice", "hard_dice", "pooled_dice", "fp_rate", "fn_rate", "overseg_share")


def dice_per_patch(pred: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """Dice of class 1 for each patch: ``(2 sum(pred target) + s) / (sum pred + sum target + s)``.

    Parameters
    ----------
    pred : Tensor, shape (B, H, W)
        Probabilities (soft dice) or 0/1 predictions (hard dice).
    target : Tensor, shape (B, H, W)
        Labels 0/1.
    smooth : float
        Smoothing term (1 in the paper).

    Returns
    -------
    Tensor, shape (B,)
    """
    pred = pred.reshape(pred.shape[0], -1).to(torch.float32)
    target = target.reshape(target.shape[0], -1).to(torch.float32)
    inter = (pred * target).sum(1, dtype=torch.float64)
    return (2 * inter + smooth) / (pred.sum(1, dtype=torch.float64) + target.sum(1, dtype=torch.float64) + smooth)


def mask_dice(mask: np.ndarray, label: np.ndarray, smooth: float = SMOOTH) -> float:
    """Hard dice of one binary mask against its label (:func:`dice_per_patch` of a single patch).

    Parameters
    ----------
    mask, label : numpy.ndarray
        (H, W) arrays; nonzero = particle.
    smooth : float
        Smoothing term (1 in the paper).
    """
    p = torch.from_numpy(np.ascontiguousarray(np.asarray(mask) != 0))[None]
    t = torch.from_numpy(np.ascontiguousarray(np.asarray(label) != 0))[None]
    return float(dice_per_patch(p, t, smooth)[0])


def pooled_rates(tp: float, fp: float, fn: float, tn: float) -> dict:
    """Pooled hard dice, FP and FN rates and over-segmentation share from confusion counts (nan if undefined)."""

    def ratio(a, b):
        return a / b if b > 0 else math.nan

    return {
        "pooled_dice": ratio(2 * tp, 2 * tp + fp + fn) if (tp + fp + fn) > 0 else 1.0,
        "fp_rate": ratio(fp, fp + tn),
        "fn_rate": ratio(fn, fn + tp),
        "overseg_share": ratio(fp, fp + fn),
    }


class MetricSums:
    """Accumulates the metrics batch by batch.

    Examples
    --------
    >>> sums = MetricSums()
    >>> sums.update(logits, labels)       # doctest: +SKIP
    >>> sums.result()["hard_dice"]        # doctest: +SKIP
    """

    def __init__(self):
        self.ce_sum = 0.0
        self.pixels = 0
        self.soft_sum = 0.0
        self.hard_sum = 0.0
        self.patches = 0
        self.tp = self.fp = self.fn = self.tn = 0

    def update(self, logits: torch.Tensor, labels: torch.Tensor, ce_mean: torch.Tensor | None = None) -> None:
        """Add a batch: `logits` (B, C, H, W), `labels` (B, H, W) integers; `ce_mean` if already computed."""
        logits = logits.detach().float()
        labels = labels.detach()
        if ce_mean is None:
            ce_mean = F.cross_entropy(logits, labels.long())
        n = labels.numel()
        self.ce_sum += float(ce_mean.detach()) * n
        self.pixels += n
        if logits.shape[1] == 2:  # softmax of two classes = sigmoid of the logit difference
            diff = logits[:, 1] - logits[:, 0]
            prob, hard = torch.sigmoid(diff), diff > 0
        else:
            prob = torch.softmax(logits, dim=1)[:, 1]
            hard = prob > 0.5
        target = labels == 1
        self.soft_sum += float(dice_per_patch(prob, target).sum())
        self.hard_sum += float(dice_per_patch(hard, target).sum())
        self.patches += labels.shape[0]
        tp = int((hard & target).sum())
        fp = int((hard & ~target).sum())
        fn = int((~hard & target).sum())
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.tn += n - tp - fp - fn

    def result(self) -> dict:
        """Metrics so far: ``ce, soft_dice, hard_dice, pooled_dice, fp_rate, fn_rate, overseg_share, n_patches``."""
        if self.patches == 0:
            return {**dict.fromkeys(METRICS, math.nan), "n_patches": 0}
        out = {
            "ce": self.ce_sum / self.pixels,
            "soft_dice": self.soft_sum / self.patches,
            "hard_dice": self.hard_sum / self.patches,
        }
        out.update(pooled_rates(self.tp, self.fp, self.fn, self.tn))
        out["n_patches"] = self.patches
        return out


def segmentation_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """All metrics of one set of logits (B, C, H, W) against labels (B, H, W)."""
    sums = MetricSums()
    sums.update(logits, labels)
    return sums.result()


def generalization_gaps(
    train_loss: float, val_loss: float, own_test_loss: float | None = None, other_loss: float | None = None
) -> dict:
    """In-distribution gap (validation minus training loss) and out-of-distribution gap
    (loss on another dataset minus loss on the model's own test set)."""
    ood = (other_loss - own_test_loss) if other_loss is not None and own_test_loss is not None else math.nan
    return {"id_gap": val_loss - train_loss, "ood_gap": ood}
