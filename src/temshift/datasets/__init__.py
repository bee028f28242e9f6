"""Datasets: spec, builder (catalog + raw frames -> HDF5 patches), loader, import of published pairs."""

from temshift.datasets.build import build_dataset, shuffled_rows
from temshift.datasets.spec import DatasetSpec
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
    "build_dataset",
    "content_hash",
    "dataset_summary",
    "import_published",
    "load_dataset",
    "published_pair",
    "shuffled_rows",
]
