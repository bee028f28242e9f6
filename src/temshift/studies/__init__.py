"""Generalization studies: the paper's experiments as a content-addressed Dask task graph.

A study spec (TOML, :mod:`temshift.studies.spec`; packaged presets in ``presets/``) is
resolved at a scale (:mod:`~temshift.studies.scales`) into tasks
(:mod:`~temshift.studies.plan`): simulate or read raw frames -> build dataset -> train
fold -> evaluate (model, dataset); :mod:`~temshift.studies.graph` runs them on Dask,
:mod:`~temshift.studies.results`, :mod:`~temshift.studies.figures` and
:mod:`~temshift.studies.report` aggregate, :mod:`~temshift.studies.check` tests the
paper's findings. Entry point: :func:`run_study`. Built on the same graph:
:mod:`~temshift.studies.pretrain` (the generalist on domain-randomized frames); and
:mod:`~temshift.studies.acceptance` scores prediction on a finished study.
"""

from temshift._lazy import lazy_exports
from temshift.studies.spec import StudySpec, load_spec, parse_spec, preset_names

_EXPORTS = {
    "run_study": "temshift.studies.runner",
    "plan_study": "temshift.studies.runner",
    "check_study": "temshift.studies.check",
    **dict.fromkeys(
        ("TaskRecord", "SimulateResult", "BuildResult", "TrainResult", "EvaluateResult", "DatasetStatistics"),
        "temshift.studies.records",
    ),
}

__all__ = ["StudySpec", "load_spec", "parse_spec", "preset_names", *_EXPORTS]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
