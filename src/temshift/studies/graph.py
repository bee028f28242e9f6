"""Run a study plan as a Dask distributed task graph with a content-addressed cache.

Each task writes into its own folder ``<root>/<kind>/<hash>`` and marks success with
``done.json`` (written atomically, last). A task whose marker exists is not submitted
again, so a study killed at any point resumes where it stopped. A failing task is
retried once (Dask ``retries=1``); if it fails again it is reported, the tasks that
need its output are reported as skipped, and every other task still runs.

The callables that do the work come from a registry (kind -> function) so that tests
can inject fast fakes; the default is :data:`temshift.studies.tasks.REGISTRY`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temshift.io.atomic import atomic_write_text

DONE = "done.json"
DEFAULT_REGISTRY = "temshift.studies.tasks:REGISTRY"


def read_done(out_dir) -> dict | None:
    """The completion record of a task folder, or None when it has not finished."""
    path = Path(out_dir) / DONE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _registry(registry):
    if isinstance(registry, str):
        module, _, attr = registry.partition(":")
        return getattr(importlib.import_module(module), attr)
    return registry


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def execute(
    kind: str, key: str, inputs: dict, out_dir: str, deps: dict, runtime: dict, registry=DEFAULT_REGISTRY
) -> dict:
    """Run one task on a worker (or return its record when it already finished).

    Parameters
    ----------
    kind, key : str
        Task kind and content key.
    inputs : dict
        The task's hashed inputs.
    out_dir : str
        The task's output folder.
    deps : dict
        Role -> completion record of each dependency.
    runtime : dict
        Settings that do not change the result (threads, workers).
    registry : str or dict
        Kind -> callable ``fn(inputs, out_dir, deps, runtime) -> dict``; ``deps`` maps
        each role to the dependency's output folder.

    Returns
    -------
    dict
        The completion record written to ``done.json``.
    """
    out = Path(out_dir)
    record = read_done(out)
    if record is not None:
        return record
    out.mkdir(parents=True, exist_ok=True)
    fn = _registry(registry)[kind]
    started, t0 = _now(), time.perf_counter()
    result = fn(inputs=inputs, out_dir=out, deps={r: Path(d["dir"]) for r, d in deps.items()}, runtime=runtime)
    record = {
        "key": key,
        "kind": kind,
        "dir": str(out),
        "inputs": inputs,
        "deps": {r: d["key"] for r, d in deps.items()},
        "result": result or {},
        "seconds": time.perf_counter() - t0,
        "started": started,
        "finished": _now(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    atomic_write_text(out / DONE, json.dumps(record, indent=1, default=str))
    return record


@dataclass
class RunOutcome:
    """What happened to every task of a plan in one run."""

    records: dict = field(default_factory=dict)  # key -> completion record (cached or new)
    cached: set = field(default_factory=set)
    failed: dict = field(default_factory=dict)  # key -> error text
    skipped: dict = field(default_factory=dict)  # key -> key of the failed upstream task
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


def _error_text(future) -> str:
    exc = future.exception()
    tb = future.traceback()
    lines = traceback.format_exception(type(exc), exc, tb) if tb is not None else [repr(exc)]
    return f"{type(exc).__name__}: {exc}\n" + "".join(lines[-6:])


def run_plan(
    plan, client, registry=DEFAULT_REGISTRY, runtime=None, progress=None, retries: int = 1, poll_s: float = 0.25
) -> RunOutcome:
    """Submit the unfinished tasks of `plan` to `client` and wait for all of them.

    Parameters
    ----------
    plan : Plan
        The resolved study (tasks in dependency order).
    client : distributed.Client
        Where the tasks run.
    registry : str or dict
        Task callables (see :func:`execute`).
    runtime : dict, optional
        Kind -> runtime settings passed to the task callables.
    progress : temshift.studies.progress.PlanProgress, optional
        Told ``start(cached)``, ``update(outcome, running)`` while waiting and ``stop(outcome)``.
    retries : int
        Extra attempts of a failing task.

    Returns
    -------
    RunOutcome
    """
    t0 = time.perf_counter()
    runtime = runtime or {}
    out = RunOutcome()
    for key, task in plan.tasks.items():
        rec = read_done(task.out_dir)
        if rec is not None:
            out.records[key] = rec
            out.cached.add(key)
    futures: dict[str, Any] = {}
    for key, task in plan.tasks.items():
        if key in out.cached:
            continue
        deps = {role: futures.get(dk, out.records.get(dk)) for role, dk in task.deps.items()}
        futures[key] = client.submit(
            execute,
            task.kind,
            key,
            task.inputs,
            str(task.out_dir),
            deps,
            {**runtime.get(task.kind, {}), **task.meta},
            registry,
            key=key,
            retries=retries,
            pure=False,
        )
    if progress is not None:
        progress.start(out.cached)
    pending = list(futures)  # dependency order
    try:
        while pending:
            still = []
            for key in pending:
                fut = futures[key]
                if fut.status == "finished":
                    out.records[key] = fut.result()
                elif fut.status in ("error", "cancelled"):
                    upstream = [dk for dk in plan.tasks[key].deps.values() if dk in out.failed or dk in out.skipped]
                    if upstream:
                        out.skipped[key] = upstream[0]
                    else:
                        out.failed[key] = _error_text(fut) if fut.status == "error" else fut.status
                else:
                    # "lost": a dead worker held the result; the scheduler recomputes it
                    # (execute() returns the record already on disk), so it is still pending
                    still.append(key)
            pending = still
            if progress is not None:
                running = set()
                with contextlib.suppress(Exception):
                    running = {k for keys in client.processing().values() for k in keys}
                progress.update(out, running & set(pending))
            if pending:
                time.sleep(poll_s)
    finally:
        if progress is not None:
            progress.stop(out)
        for fut in futures.values():
            fut.release()
    out.seconds = time.perf_counter() - t0
    return out
