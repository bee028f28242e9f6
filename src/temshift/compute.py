"""Where work runs: in this process, on local threads, or on Dask (a local cluster or a scheduler).

One place for what the stages that fan work out share:

* :func:`open_client` -- a Dask client on a new local cluster (one thread per worker) or on an
  existing scheduler (:func:`connect`, which waits for a worker), closed on exit;
* :func:`fan_out` -- independent items through a function, in this process (1 worker) or on
  local worker processes, results in completion order; a lost worker becomes a result of the
  caller's choosing, so one bad item does not lose the rest (`temshift simulate`);
* :func:`map_ordered` -- the same on local threads, results in input order with a bounded
  number in flight (`datasets.build_dataset`);
* :func:`local_threads` -- the torch/FFT threads each of `n` local workers gets;
* :func:`check_workers_see` -- that remote workers see a folder (and files tasks read) at the same path.

Task graphs with caching and retries (`temshift.studies.graph.run_plan`) submit to the client of
:func:`open_client`. Dask is imported on use.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from temshift.errors import TemshiftError

__all__ = [
    "CONNECT_TIMEOUT_S",
    "ClusterError",
    "check_workers_see",
    "connect",
    "fan_out",
    "local_threads",
    "map_ordered",
    "open_client",
]

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT_S = 10.0
"""Default wait for an external scheduler to answer (and for its first worker), seconds."""


class ClusterError(TemshiftError):
    """An external Dask scheduler cannot be reached, has no workers, or its workers cannot
    see the study folder."""


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


def _probe_file(path: str) -> str:
    """On a worker: why `path` is unreadable there ("" when it is a readable file)."""
    p = Path(path)
    if not p.is_file():
        return "not found"
    try:
        with p.open("rb") as f:
            f.read(1)
    except OSError as exc:
        return f"not readable ({exc.strerror or exc})"
    return ""


def check_workers_see(
    client: Any, folders: Iterable[str | Path], files: Mapping[str | Path, str] | None = None
) -> None:
    """Check that every worker of `client` sees each folder, writable, and each file, readable, at the same path.

    Workers on other machines need the study folder on a shared filesystem; without it a
    task would write its output on the worker's own disk, where no other task finds it.
    Files that tasks read by the client's path (a shipped model's weights) must be there too.

    Parameters
    ----------
    client : distributed.Client
    folders : iterable of path
        Folders tasks write to.
    files : mapping, optional
        Files tasks read -> what each is (named in the error, e.g. ``"weights of extra model 'generalist'"``).

    Raises
    ------
    ClusterError
        Naming the folder or file, the workers and what they found.
    """
    shared = "workers need it at the same path on a shared filesystem"
    checks: list[tuple[Callable[[str], str], str, str, str]] = [
        (_probe_folder, f, f"study folder {f} is not usable", shared) for f in dict.fromkeys(str(f) for f in folders)
    ]
    installed = "workers read it at the same path (a shared filesystem, or temshift installed at that path)"
    checks += [(_probe_file, str(f), f"{what} {f} is not readable", installed) for f, what in (files or {}).items()]
    for probe, path, problem, need in checks:
        try:
            found = client.run(probe, path)
        except Exception as exc:  # noqa: BLE001 (whatever the worker raised, e.g. temshift not importable)
            raise ClusterError(
                f"the workers cannot run temshift's path check for {path}: {type(exc).__name__}: {exc}"
            ) from None
        bad = {addr: why for addr, why in found.items() if why}
        if bad:
            why = "; ".join(f"{addr}: {w}" for addr, w in sorted(bad.items()))
            raise ClusterError(f"{problem} on {len(bad)} of {len(found)} worker(s) ({why}): {need}")


def connect(scheduler: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
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
        raise ClusterError(
            f"no Dask scheduler answers at {scheduler} within {timeout_s:g} s "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no reply'}); "
            "start one with `dask scheduler` or check the address"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise ClusterError(
            f"the Dask scheduler at {scheduler} has no workers (waited {timeout_s:g} s); "
            "start some with `dask worker " + scheduler + "`"
        ) from exc
    return client


@contextlib.contextmanager
def open_client(
    workers: int | None = None,
    scheduler: str | None = None,
    processes: bool = True,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    silence_logs: int = logging.CRITICAL,
) -> Iterator[tuple[Any, int | None]]:
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
    silence_logs : int
        Logging level below which the local cluster's messages are dropped.

    Yields
    ------
    (client, threads_per_task)
        `threads_per_task` is the torch thread count for each task (cores divided among
        local workers; None on an external cluster, where each worker decides).
    """
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
        n_workers=n,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=":0",
        silence_logs=silence_logs,
    )
    client = Client(cluster)
    try:
        yield client, threads
    finally:
        client.close()
        cluster.close()


def fan_out(
    fn: Callable[[T], R], items: Sequence[T], workers: int, lost: Callable[[T, BaseException], R] | None = None
) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` for every item, in this process or on `workers` local processes.

    Parameters
    ----------
    fn : callable
        Picklable (module-level) function of one item; it should report its own failures in
        its result so that the others go on.
    items : sequence
        Independent work items.
    workers : int
        1 (or fewer): a plain loop here, in item order. More: a local Dask cluster of that many
        single-threaded processes, started with every thread-count variable set to 1
        (`temshift.threads.thread_env`) so that the processes do not oversubscribe the cores;
        results in completion order.
    lost : callable, optional
        ``lost(item, exc)`` gives the result of an item whose worker died (e.g. out of memory);
        without it the exception propagates.

    Yields
    ------
    (item, result)
    """
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    from distributed import as_completed

    from temshift.threads import thread_env

    with thread_env(1), open_client(workers, processes=True, silence_logs=logging.ERROR) as (client, _):
        futures = {client.submit(fn, item, pure=False): item for item in items}
        for fut in as_completed(futures):
            item = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:
                if lost is None:
                    raise
                result = lost(item, exc)
            yield item, result


def map_ordered(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Generator[R, None, None]:
    """``map(fn, items)`` on `workers` local threads, in order, with at most 2 * workers results in flight.

    For work that releases the GIL (numpy, h5py); the bound keeps memory flat when results are
    large and consumed one by one. Closing the generator early cancels what has not started.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    items = list(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, it) for it in items[: 2 * workers]]
        nxt = len(futures)
        try:
            for i in range(len(items)):
                yield futures[i].result()
                futures[i] = None  # type: ignore[call-overload]  # drop the reference: the caller has it
                if nxt < len(items):
                    futures.append(pool.submit(fn, items[nxt]))
                    nxt += 1
        finally:
            for fut in futures:
                if fut is not None:
                    fut.cancel()
