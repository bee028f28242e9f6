"""Metrics on hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from temshift.models.metrics import dice_per_patch, generalization_gaps, mask_dice, pooled_rates, segmentation_metrics


def logits_for(prob):
    """Two-class logits whose softmax class-1 probability is `prob` (B, H, W)."""
    prob = torch.as_tensor(prob, dtype=torch.float64)
    return torch.stack([torch.zeros_like(prob), torch.log(prob / (1 - prob))], dim=1)


def test_dice_with_smoothing_by_hand():
    pred = torch.tensor([[[1, 1], [0, 0]]])
    target = torch.tensor([[[1, 0], [0, 0]]])
    # (2*1 + 1) / (2 + 1 + 1)
    assert dice_per_patch(pred, target).item() == pytest.approx(3 / 4)
    # empty prediction and label: perfect thanks to smoothing
    assert dice_per_patch(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)).item() == 1.0


def test_segmentation_metrics_by_hand():
    # patch 1: p = [.9 .8 / .2 .1], t = [1 0 / 0 0] -> hard P = [1 1 / 0 0]
    # patch 2: p = [.3 .6 / .7 .4], t = [1 1 / 0 0] -> hard P = [0 1 / 1 0]
    prob = torch.tensor([[[0.9, 0.8], [0.2, 0.1]], [[0.3, 0.6], [0.7, 0.4]]])
    labels = torch.tensor([[[1, 0], [0, 0]], [[1, 1], [0, 0]]])
    m = segmentation_metrics(logits_for(prob), labels)
    soft1 = (2 * 0.9 + 1) / (2.0 + 1 + 1)
    soft2 = (2 * 0.9 + 1) / (2.0 + 2 + 1)
    hard1 = (2 * 1 + 1) / (2 + 1 + 1)
    hard2 = (2 * 1 + 1) / (2 + 2 + 1)
    assert m["soft_dice"] == pytest.approx((soft1 + soft2) / 2)
    assert m["hard_dice"] == pytest.approx((hard1 + hard2) / 2)
    tp, fp, fn, tn = 2, 2, 1, 3
    assert m["pooled_dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["fp_rate"] == pytest.approx(fp / (fp + tn))
    assert m["fn_rate"] == pytest.approx(fn / (fn + tp))
    assert m["overseg_share"] == pytest.approx(fp / (fp + fn))
    ce = -sum(math.log(p if t else 1 - p) for p, t in zip(prob.flatten().tolist(), labels.flatten().tolist())) / 8
    assert m["ce"] == pytest.approx(ce)
    assert m["n_patches"] == 2


def test_pooled_rates_edge_cases_and_gaps():
    assert pooled_rates(0, 0, 0, 10)["pooled_dice"] == 1.0
    assert math.isnan(pooled_rates(0, 0, 0, 10)["overseg_share"])
    gaps = generalization_gaps(train_loss=0.1, val_loss=0.15, own_test_loss=0.2, other_loss=0.5)
    assert gaps["id_gap"] == pytest.approx(0.05) and gaps["ood_gap"] == pytest.approx(0.3)


def test_mask_dice_of_whole_frames():
    a = np.zeros((10, 10), bool)
    a[:5] = True
    assert mask_dice(a, a) == 1.0
    assert mask_dice(a, ~a) == pytest.approx(1 / 101)
    assert mask_dice(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
