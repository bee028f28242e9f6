"""Datasets: spec, builder (catalog + raw frames -> HDF5 patches), loader, import of published pairs,
fold splits, patches checked for a model."""

from temshift.datasets.build import build_dataset, shuffled_rows
from temshift.datasets.spec import DatasetSpec
from temshift.datasets.splits import Split, split_fold, test_block
from temshift.datasets.store import (
    Dataset,
    content_hash,
    dataset_summary,
    import_published,
    load_dataset,
    published_pair,
)

__all__ = [
    "Dataset",
    "DatasetSpec",
    "Split",
    "build_dataset",
    "content_hash",
    "dataset_summary",
    "import_published",
    "load_dataset",
    "published_pair",
    "shuffled_rows",
    "split_fold",
    "test_block",
]
