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
from datetime import datetime, timezone
from pathlib import Path

from temshift.errors import TemshiftError
from temshift.io.atomic import atomic_write_text

DONE = "done.json"
DEFAULT_REGISTRY = "temshift.studies.tasks:REGISTRY"
CONNECT_TIMEOUT_S = 10.0
"""Default wait for an external scheduler to answer (and for its first worker), seconds."""


class ClusterError(TemshiftError):
    """An external Dask scheduler cannot be reached, has no workers, or its workers cannot
    see the study folder."""


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
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def execute(kind: str, key: str, inputs: dict, out_dir: str, deps: dict, runtime: dict, registry=DEFAULT_REGISTRY) -> dict:
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


def run_plan(plan, client, registry=DEFAULT_REGISTRY, runtime=None, progress=None, retries: int = 1,
             poll_s: float = 0.25) -> RunOutcome:
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
    progress : StudyProgress, optional
        Live view updated while waiting.
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
    futures = {}
    for key, task in plan.tasks.items():
        if key in out.cached:
            continue
        deps = {role: futures.get(dk, out.records.get(dk)) for role, dk in task.deps.items()}
        futures[key] = client.submit(
            execute, task.kind, key, task.inputs, str(task.out_dir), deps, {**runtime.get(task.kind, {}), **task.meta},
            registry,
            key=key, retries=retries, pure=False,
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
                elif fut.status in ("error", "cancelled", "lost"):
                    upstream = [dk for dk in plan.tasks[key].deps.values() if dk in out.failed or dk in out.skipped]
                    if upstream:
                        out.skipped[key] = upstream[0]
                    else:
                        out.failed[key] = _error_text(fut) if fut.status == "error" else fut.status
                else:
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


def local_threads(workers: int | None) -> int:
    """Torch threads per task for `workers` local workers: the cores divided among them."""
    cores = os.cpu_count() or 1
    return max(1, cores // (workers or cores))


def _probe_folder(path: str) -> str:
    """On a worker: why `path` is unusable there ("" when it is a writable folder)."""
    import tempfile

    p = Path(path)
    if not p.is_dir():
        return "not found"
    try:
        with tempfile.NamedTemporaryFile(dir=p, prefix=".worker-probe-"):
            pass
    except OSError as exc:
        return f"not writable ({exc.strerror or exc})"
    return ""


def check_workers_see(client, folders) -> None:
    """Check that every worker of `client` sees each folder, writable, at the same path.

    Workers on other machines need the study folder on a shared filesystem; without it a
    task would write its output on the worker's own disk, where no other task finds it.

    Raises
    ------
    ClusterError
        Naming the folder, the workers and what they found.
    """
    for folder in dict.fromkeys(str(f) for f in folders):
        try:
            found = client.run(_probe_folder, folder)
        except Exception as exc:  # noqa: BLE001 (whatever the worker raised, e.g. temshift not importable)
            raise ClusterError(f"the workers cannot run temshift's folder check for {folder}: "
                               f"{type(exc).__name__}: {exc}") from None
        bad = {addr: why for addr, why in found.items() if why}
        if bad:
            why = "; ".join(f"{addr}: {w}" for addr, w in sorted(bad.items()))
            raise ClusterError(f"study folder {folder} is not usable on {len(bad)} of {len(found)} worker(s) ({why}): "
                               "workers need it at the same path on a shared filesystem")


def connect(scheduler: str, timeout_s: float = CONNECT_TIMEOUT_S):
    """A client of the Dask scheduler at `scheduler` that has at least one worker.

    Raises
    ------
    ClusterError
        Nothing answers at the address within `timeout_s` seconds, the address is malformed,
        or no worker joins within `timeout_s`.
    """
    from distributed import Client

    try:
        client = Client(scheduler, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"no Dask scheduler answers at {scheduler} within {timeout_s:g} s "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no reply'}); "
                           "start one with `dask scheduler` or check the address") from None
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise ClusterError(f"the Dask scheduler at {scheduler} has no workers (waited {timeout_s:g} s); "
                           "start some with `dask worker " + scheduler + "`") from exc
    return client


@contextlib.contextmanager
def open_client(workers: int | None = None, scheduler: str | None = None, processes: bool = True,
                connect_timeout_s: float = CONNECT_TIMEOUT_S):
    """A Dask client on an existing scheduler or on a new local cluster.

    Parameters
    ----------
    workers : int, optional
        Local workers, one thread each (default: one per core).
    scheduler : str, optional
        Address ``tcp://HOST:PORT`` of a running scheduler; `workers` is then ignored.
    processes : bool
        Local workers as processes (True) or threads in this process (tests).
    connect_timeout_s : float
        How long to wait for the external `scheduler` to answer and to have a worker, seconds.

    Yields
    ------
    (client, threads_per_task)
        `threads_per_task` is the torch thread count for each task (cores divided among
        local workers; None on an external cluster, where each worker decides).
    """
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        client = connect(scheduler, connect_timeout_s)
        try:
            yield client, None
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    threads = local_threads(n)
    cluster = LocalCluster(
        n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    )
    client = Client(cluster)
    try:
        yield client, threads
    finally:
        client.close()
        cluster.close()
