"""Same-/cross-dataset evaluation of fold models, with the metrics of `temshift.models.metrics`.

Importing this imports torch.
"""

from temshift.evaluation.evaluate import evaluate_model, evaluate_runs, summarize
from temshift.models.metrics import MetricSums, dice_per_patch, generalization_gaps, pooled_rates, segmentation_metrics

__all__ = [
    "MetricSums",
    "dice_per_patch",
    "evaluate_model",
    "evaluate_runs",
    "generalization_gaps",
    "pooled_rates",
    "segmentation_metrics",
    "summarize",
]
