"""The realism benchmark: the synthetic repository held against real data.

Released models trained on real frames (`training_sets`) are run on synthetic datasets
simulated like their training sets (`plan`, `tasks`, on the studies' task graph); their
scores, image statistics and label statistics are set beside the real ones (`summary`,
`report`). Entry point: :func:`temshift.realism.runner.run_realism`, or `temshift realism`; over several
repository seeds :func:`temshift.realism.runner.run_realism_seeds` (`seeds`).
"""

from temshift._lazy import lazy_exports

_EXPORTS = {
    "run_realism": "temshift.realism.runner",
    "RealismRun": "temshift.realism.runner",
    "run_realism_seeds": "temshift.realism.runner",
    "combine_seeds": "temshift.realism.seeds",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
