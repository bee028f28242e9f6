"""The realism benchmark: the synthetic repository held against real data.

Released models trained on real frames (`training_sets`) are run on synthetic datasets
simulated like their training sets (`plan`, `tasks`, on the studies' task graph); their
scores, image statistics and label statistics are set beside the real ones (`summary`,
`report`). Entry point: :func:`temshift.realism.runner.run_realism`, or `temshift realism`.
"""

from __future__ import annotations

__all__ = ["run_realism"]


def __getattr__(name):
    if name == "run_realism":
        from temshift.realism.runner import run_realism

        return run_realism
    raise AttributeError(f"module 'temshift.realism' has no attribute {name!r}")
