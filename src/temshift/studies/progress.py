"""One live view of a running study: tasks done / running / failed, with time estimates."""

from __future__ import annotations

import time

from temshift.studies.plan import KINDS


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


class StudyProgress:
    """A rich live table, one row per task kind, refreshed by :func:`run_plan`.

    Parameters
    ----------
    plan : Plan
        The study being run (task kinds and the scale's cost model).
    slots : int
        Tasks that can run at once (for the time estimate).
    enabled : bool
        False: no live view (summary still available through :meth:`table`).
    console : rich.console.Console, optional
    """

    def __init__(self, plan, slots: int, enabled: bool = True, console=None):
        self.plan, self.slots, self.enabled = plan, max(1, slots), enabled
        self.console = console
        self.live = None
        self.t0 = time.perf_counter()
        self.cached: set = set()
        self.outcome = None
        self.running: set = set()

    # estimates
    def _cost(self, key) -> float:
        return self.plan.scale.cost_s.get(self.plan.tasks[key].kind, 1.0)

    def eta_s(self) -> float | None:
        """Remaining seconds: remaining estimated cost, corrected by the observed/estimated ratio."""
        if self.outcome is None:
            return None
        new = [k for k in self.outcome.records if k not in self.cached]
        est_done = sum(self._cost(k) for k in new)
        real_done = sum(self.outcome.records[k].get("seconds", 0.0) for k in new)
        ratio = real_done / est_done if est_done > 0 and real_done > 0 else 1.0
        finished = set(self.outcome.records) | set(self.outcome.failed) | set(self.outcome.skipped)
        remaining = sum(self._cost(k) * (0.5 if k in self.running else 1.0) for k in self.plan.tasks if k not in finished)
        return remaining * ratio / self.slots

    # view
    def table(self):
        from rich.table import Table

        out = self.outcome
        elapsed = time.perf_counter() - self.t0
        eta = self.eta_s()
        title = f"study {self.plan.spec.name} ({self.plan.scale.name})  elapsed {format_seconds(elapsed)}  ETA {format_seconds(eta)}"
        table = Table(title=title, title_justify="left")
        for col in ("stage", "total", "cached", "done", "running", "queued", "failed", "skipped"):
            table.add_column(col, justify="left" if col == "stage" else "right")
        for kind in getattr(self.plan, "kinds", KINDS):
            keys = [k for k, t in self.plan.tasks.items() if t.kind == kind]
            if not keys:
                continue
            cached = sum(k in self.cached for k in keys)
            done = sum(k in out.records for k in keys) - cached if out else 0
            failed = sum(k in out.failed for k in keys) if out else 0
            skipped = sum(k in out.skipped for k in keys) if out else 0
            running = sum(k in self.running for k in keys)
            queued = len(keys) - cached - done - failed - skipped - running
            table.add_row(kind, str(len(keys)), str(cached), str(done), str(running), str(queued),
                          f"[red]{failed}[/]" if failed else "0", f"[yellow]{skipped}[/]" if skipped else "0")
        labels = [self.plan.tasks[k].label for k in sorted(self.running)][:4]
        if labels:
            table.caption = "running: " + "; ".join(labels)
            table.caption_justify = "left"
        return table

    def start(self, cached) -> None:
        self.cached = set(cached)
        self.t0 = time.perf_counter()
        if not self.enabled:
            return
        from rich.live import Live

        self.live = Live(self.table(), console=self.console, refresh_per_second=2, transient=False)
        self.live.start()

    def update(self, outcome, running) -> None:
        self.outcome, self.running = outcome, set(running)
        if self.live is not None:
            self.live.update(self.table())

    def stop(self, outcome) -> None:
        self.outcome, self.running = outcome, set()
        if self.live is not None:
            self.live.update(self.table())
            self.live.stop()
            self.live = None
