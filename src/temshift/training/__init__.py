"""The paper's training protocol: splits, dihedral expansion, augmentation, the loop, fold runs.

Threads, device and the speed policy are `temshift.models.runtime`.

Importing this package imports torch.
"""

from temshift.training.fold import RunResult, train_fold
from temshift.training.segmenter import Segmenter
from temshift.training.settings import TrainSettings
from temshift.training.splits import Split, split_fold

__all__ = ["RunResult", "Segmenter", "Split", "TrainSettings", "split_fold", "train_fold"]
