"""temshift: how HRTEM nanoparticle segmentation models generalize across imaging and sample parameters.

Pipeline stages, one sub-package each, data flowing one way:
io -> catalog -> preprocess -> simulate -> datasets -> models -> training
-> evaluation -> studies -> predict -> cli (tests/test_import_direction.py). Heavy dependencies (torch, abTEM, dask)
are imported lazily so that light commands stay fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "Catalog", "Segmenter"]


def __getattr__(name):
    # lazy: `import temshift` must not import torch
    if name == "Catalog":
        from temshift.catalog import Catalog

        return Catalog
    if name == "Segmenter":
        from temshift.training.segmenter import Segmenter

        return Segmenter
    raise AttributeError(f"module 'temshift' has no attribute {name!r}")
