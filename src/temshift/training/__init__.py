"""The paper's training protocol: dihedral expansion, augmentation, the loop, fold runs.

Splits are `temshift.datasets.splits`; threads and device `temshift.models.runtime`.

Importing this package imports torch.
"""

from temshift.training.fold import RunResult, train_fold
from temshift.training.segmenter import Segmenter
from temshift.training.settings import TrainSettings

__all__ = ["RunResult", "Segmenter", "TrainSettings", "train_fold"]
