"""How library functions report progress: a small `Reporter` interface, no drawing.

Long-running functions (`simulate_repository`, `build_dataset`, training, `fetch`, study
and pretraining task graphs) take ``reporter: Reporter | None``. They call

* ``start(job, total, unit=...)`` once per job (a bar: frames, epochs' samples, bytes),
* ``advance(job, amount)`` as work completes and ``note(job, text)`` for a status line
  (the last epoch's loss, a failed frame),
* ``snapshot(job, status)`` with a :class:`GraphStatus` while a task graph runs,
* ``stop(job)`` at the end (also after an error).

The CLI passes a rich reporter (`temshift.cli.progress.RichReporter`) that draws bars and
tables; without one (``reporter=None``) progress goes to the ``temshift.progress`` logger
(:class:`LogReporter`), which prints nothing unless logging is configured.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["GraphStatus", "LogReporter", "Reporter", "StageCounts", "format_seconds", "reporter_or_log"]

LOGGER = logging.getLogger("temshift.progress")


@dataclass(frozen=True)
class StageCounts:
    """Tasks of one kind in a task-graph run (``done`` counts tasks finished in this run)."""

    stage: str
    total: int
    cached: int = 0
    done: int = 0
    running: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def queued(self) -> int:
        return self.total - self.cached - self.done - self.failed - self.skipped - self.running


@dataclass(frozen=True)
class GraphStatus:
    """A snapshot of a task-graph run (a study, a pretraining run, a realism benchmark).

    Attributes
    ----------
    title : str
        What runs, e.g. ``"study dose (ci)"``.
    stages : tuple of StageCounts
        Per task kind, in plan order.
    running : tuple of str
        Labels of the tasks running now.
    elapsed_s : float
        Seconds since the run started.
    eta_s : float or None
        Estimated seconds left (None when there is no cost model).
    """

    title: str
    stages: tuple[StageCounts, ...] = ()
    running: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    eta_s: float | None = None


@runtime_checkable
class Reporter(Protocol):
    """Receives progress from library functions (see the module docstring)."""

    def start(self, job: str, total: float | None = None, *, completed: float = 0.0, unit: str = "") -> None: ...

    def advance(self, job: str, amount: float = 1.0) -> None: ...

    def note(self, job: str, text: str) -> None: ...

    def snapshot(self, job: str, status: GraphStatus) -> None: ...

    def stop(self, job: str) -> None: ...


@dataclass
class LogReporter:
    """A `Reporter` that logs: start, notes and the end at INFO, graph snapshots at DEBUG."""

    logger: logging.Logger = LOGGER
    _jobs: dict[str, list[float]] = field(default_factory=dict)  # job -> [t0, completed, total]

    def start(self, job: str, total: float | None = None, *, completed: float = 0.0, unit: str = "") -> None:
        self._jobs[job] = [time.perf_counter(), completed, float("nan") if total is None else total]
        self.logger.info(
            "%s: started%s", job, "" if total is None else f" ({completed:g} of {total:g} {unit})".rstrip()
        )

    def advance(self, job: str, amount: float = 1.0) -> None:
        if job in self._jobs:
            self._jobs[job][1] += amount

    def note(self, job: str, text: str) -> None:
        if text:
            self.logger.info("%s: %s", job, text)

    def snapshot(self, job: str, status: GraphStatus) -> None:
        self.logger.debug("%s: %s", job, ", ".join(f"{s.stage} {s.cached + s.done}/{s.total}" for s in status.stages))

    def stop(self, job: str) -> None:
        t0, done, total = self._jobs.pop(job, [time.perf_counter(), 0.0, float("nan")])
        self.logger.info("%s: finished (%g of %g) in %s", job, done, total, format_seconds(time.perf_counter() - t0))


def reporter_or_log(reporter: Reporter | None) -> Reporter:
    """`reporter`, or a :class:`LogReporter` when None."""
    return LogReporter() if reporter is None else reporter


def format_seconds(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``12s`` or ``-``."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
