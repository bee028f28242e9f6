"""Drawing library progress with rich: the CLI's `temshift.progress.Reporter`."""

from __future__ import annotations

from typing import Any, Literal

from temshift.progress import GraphStatus, format_seconds


def graph_table(status: GraphStatus) -> Any:
    """A task-graph snapshot as a rich table, one row per task kind."""
    from rich.table import Table

    title = f"{status.title}  elapsed {format_seconds(status.elapsed_s)}  ETA {format_seconds(status.eta_s)}"
    table = Table(title=title, title_justify="left")
    for col in ("stage", "total", "cached", "done", "running", "queued", "failed", "skipped"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for s in status.stages:
        table.add_row(
            s.stage,
            str(s.total),
            str(s.cached),
            str(s.done),
            str(s.running),
            str(s.queued),
            f"[red]{s.failed}[/]" if s.failed else "0",
            f"[yellow]{s.skipped}[/]" if s.skipped else "0",
        )
    if status.running:
        table.caption = "running: " + "; ".join(status.running[:4])
        table.caption_justify = "left"
    return table


def graph_line(status: GraphStatus) -> str:
    """A task-graph snapshot as one line: finished / total per kind and the elapsed time."""
    parts = [
        f"{s.stage} {s.cached + s.done}/{s.total}" + (f" ({s.running} running)" if s.running else "")
        for s in status.stages
    ]
    return f"{status.title}: " + ", ".join(parts) + f"  elapsed {format_seconds(status.elapsed_s)}"


class RichReporter:
    """Progress bars (one per job) and a live view of task-graph snapshots on a rich console.

    Parameters
    ----------
    console : rich.console.Console, optional
    graph : {"table", "line"}
        How task-graph snapshots are drawn (studies: a table; pretraining: one line).
    """

    def __init__(self, console: Any = None, graph: Literal["table", "line"] = "table"):
        self.console, self.graph = console, graph
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}
        self._live: Any = None
        self._live_job: str | None = None

    def _columns(self, unit: str) -> tuple:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        if unit == "bytes":
            return (
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
            )
        return (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
        )

    def start(self, job: str, total: float | None = None, *, completed: float = 0.0, unit: str = "") -> None:
        from rich.progress import Progress

        if self._bars is None:
            self._bars = Progress(*self._columns(unit), console=self.console, transient=False)
            self._bars.start()
        self._tasks[job] = self._bars.add_task(job, total=total, completed=completed, note="")

    def advance(self, job: str, amount: float = 1.0) -> None:
        if job in self._tasks:
            self._bars.advance(self._tasks[job], amount)

    def note(self, job: str, text: str) -> None:
        if job in self._tasks:
            self._bars.update(self._tasks[job], note=text)

    def snapshot(self, job: str, status: GraphStatus) -> None:
        view = graph_table(status) if self.graph == "table" else graph_line(status)
        if self._live is None:
            from rich.live import Live

            self._live = Live(
                view, console=self.console, refresh_per_second=2 if self.graph == "table" else 1, transient=False
            )
            self._live.start()
            self._live_job = job
        else:
            self._live.update(view)

    def stop(self, job: str) -> None:
        if job == self._live_job and self._live is not None:
            self._live.stop()
            self._live, self._live_job = None, None
        if job in self._tasks:
            self._bars.refresh()
            del self._tasks[job]
            if not self._tasks:
                self._bars.stop()
                self._bars = None
