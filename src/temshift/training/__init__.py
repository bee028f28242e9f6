"""The paper's training protocol: splits, dihedral expansion, augmentation, the loop, fold runs.

Importing this package imports torch.
"""

from temshift.training.fold import RunResult, train_fold
from temshift.training.runtime import resolve_device, set_threads
from temshift.training.segmenter import Segmenter
from temshift.training.settings import TrainSettings
from temshift.training.splits import Split, split_fold

__all__ = ["RunResult", "Segmenter", "Split", "TrainSettings", "resolve_device", "set_threads", "split_fold",
           "train_fold"]
