"""Progress of a running task graph: tasks done / running / failed per kind, with a time estimate.

:class:`PlanProgress` is what :func:`temshift.studies.graph.run_plan` calls while it waits; it
turns the run's state into :class:`temshift.progress.GraphStatus` snapshots for a
`temshift.progress.Reporter` (the CLI draws them as a live table or line). Nothing is drawn here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from temshift.progress import GraphStatus, Reporter, StageCounts, reporter_or_log
from temshift.studies.plan import KINDS


class PlanProgress:
    """Snapshots of a plan's run for a reporter.

    Parameters
    ----------
    plan : Plan
        The plan being run (its tasks; ``plan.scale.cost_s`` when present gives the estimate).
    slots : int
        Tasks that can run at once (for the time estimate).
    reporter : Reporter, optional
        Receives ``snapshot(job, GraphStatus)`` on every update and ``stop(job)`` at the end
        (default: the ``temshift.progress`` logger).
    job : str
        Job name given to the reporter.
    title : str, optional
        Status title (default ``"study NAME (SCALE)"``).
    kinds : sequence of str, optional
        Task kinds in display order (default ``plan.kinds`` or the study kinds).
    """

    def __init__(
        self,
        plan: Any,
        slots: int,
        reporter: Reporter | None = None,
        job: str = "study",
        title: str | None = None,
        kinds: Sequence[str] | None = None,
    ):
        self.plan, self.slots = plan, max(1, slots)
        self.reporter = reporter_or_log(reporter)
        self.job = job
        self.title = title or f"study {plan.spec.name} ({plan.scale.name})"
        self.kinds: tuple[str, ...] = tuple(kinds) if kinds else tuple(getattr(plan, "kinds", KINDS))
        self.t0 = time.perf_counter()
        self.cached: set = set()
        self.outcome: Any = None
        self.running: set = set()

    def _cost(self, key: str) -> float:
        cost = getattr(self.plan.scale, "cost_s", None) or {}
        return cost.get(self.plan.tasks[key].kind, 1.0)

    def eta_s(self) -> float | None:
        """Remaining seconds: remaining estimated cost, corrected by the observed/estimated ratio."""
        if self.outcome is None or getattr(self.plan.scale, "cost_s", None) is None:
            return None
        new = [k for k in self.outcome.records if k not in self.cached]
        est_done = sum(self._cost(k) for k in new)
        real_done = sum(self.outcome.records[k].get("seconds", 0.0) for k in new)
        ratio = real_done / est_done if est_done > 0 and real_done > 0 else 1.0
        finished = set(self.outcome.records) | set(self.outcome.failed) | set(self.outcome.skipped)
        remaining = sum(
            self._cost(k) * (0.5 if k in self.running else 1.0) for k in self.plan.tasks if k not in finished
        )
        return remaining * ratio / self.slots

    def status(self) -> GraphStatus:
        """The run's state now."""
        out = self.outcome
        stages = []
        for kind in self.kinds:
            keys = [k for k, t in self.plan.tasks.items() if t.kind == kind]
            if not keys:
                continue
            cached = sum(k in self.cached for k in keys)
            stages.append(
                StageCounts(
                    kind,
                    len(keys),
                    cached,
                    done=sum(k in out.records for k in keys) - cached if out else 0,
                    running=sum(k in self.running for k in keys),
                    failed=sum(k in out.failed for k in keys) if out else 0,
                    skipped=sum(k in out.skipped for k in keys) if out else 0,
                )
            )
        labels = tuple(self.plan.tasks[k].label for k in sorted(self.running))
        return GraphStatus(self.title, tuple(stages), labels, time.perf_counter() - self.t0, self.eta_s())

    # called by run_plan
    def start(self, cached: Iterable[str]) -> None:
        self.cached = set(cached)
        self.t0 = time.perf_counter()
        self.reporter.snapshot(self.job, self.status())

    def update(self, outcome: Any, running: Iterable[str]) -> None:
        self.outcome, self.running = outcome, set(running)
        self.reporter.snapshot(self.job, self.status())

    def stop(self, outcome: Any) -> None:
        self.outcome, self.running = outcome, set()
        self.reporter.snapshot(self.job, self.status())
        self.reporter.stop(self.job)
