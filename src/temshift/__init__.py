"""temshift: how HRTEM nanoparticle segmentation models generalize across imaging and sample parameters.

Pipeline stages, one sub-package each, data flowing one way:
io -> catalog -> preprocess -> simulate -> datasets -> models -> training
-> evaluation -> predict -> studies -> cli (tests/test_import_direction.py). The names below are the
top-level API; each is imported from its stage on first use, so `import temshift` imports no numpy or torch.
"""

from temshift._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "TemshiftError": "temshift.errors",
    "Catalog": "temshift.catalog",
    "Frame": "temshift.io",
    "read_frame": "temshift.io",
    "PreprocessSettings": "temshift.preprocess",
    "preprocess_frame": "temshift.preprocess",
    "simulate_repository": "temshift.simulate",
    "DatasetSpec": "temshift.datasets",
    "build_dataset": "temshift.datasets",
    "load_dataset": "temshift.datasets",
    "pretrained": "temshift.models",
    "TrainSettings": "temshift.training",
    "train_fold": "temshift.training",
    "Segmenter": "temshift.training",
    "evaluate_runs": "temshift.evaluation",
    "load_spec": "temshift.studies",
    "run_study": "temshift.studies",
    "run_realism": "temshift.realism",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
