"""`study run --scheduler` on a real Dask cluster: scheduler and workers as separate processes.

Loopback only (127.0.0.1). Every process started here is ended in a `finally`, and every wait
is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
START_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    return env


def _dask(*args: str) -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    if exe.exists():
        return [str(exe), *args]
    return [sys.executable, "-m", f"distributed.cli.dask_{args[0]}", *args[1:]]


def _worker_cmd(address: str, workdir: Path) -> list[str]:
    return _dask(
        "worker",
        address,
        "--nthreads",
        "1",
        "--no-nanny",
        "--no-dashboard",
        "--host",
        "127.0.0.1",
        "--local-directory",
        str(workdir),
        "--death-timeout",
        "60",
    )


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def _wait_for_workers(address: str, n: int, timeout_s: float = START_TIMEOUT_S) -> None:
    from distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(n, timeout=timeout_s)


@contextmanager
def cluster(tmp_path: Path, n_workers: int = 2, worker_prefix: list[str] | None = None):
    """Scheduler and `n_workers` single-thread workers on 127.0.0.1; yields (address, worker procs)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "cluster-logs"
    logs.mkdir(exist_ok=True)
    procs: list[subprocess.Popen] = []
    try:
        with open(logs / "scheduler.log", "w") as log:  # the child keeps its own copy of the handle
            procs.append(
                subprocess.Popen(
                    _dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"),
                    env=_env(),
                    cwd=logs,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        workers = []
        for k in range(n_workers):
            wdir = logs / f"worker{k}"
            wdir.mkdir(exist_ok=True)
            cmd = (worker_prefix or []) + _worker_cmd(address, wdir) if k == 0 else _worker_cmd(address, wdir)
            with open(logs / f"worker{k}.log", "w") as log:
                workers.append(subprocess.Popen(cmd, env=_env(), cwd=wdir, stdout=log, stderr=subprocess.STDOUT))
        procs += workers
        _wait_for_workers(address, n_workers)
        yield address, workers
    finally:
        _stop(procs)


def _study_cli(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "temshift", "study", "run", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_scheduler_address_with_nothing_behind_it_is_a_one_line_error(tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    proc = _study_cli(
        "dose",
        "--scale",
        "ci",
        "--out",
        str(tmp_path / "s"),
        "--scheduler",
        address,
        "--connect-timeout",
        "2",
        "--no-progress",
        timeout=120,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and address in lines[0] and "error" in lines[0], proc.stderr
    assert elapsed < 30, elapsed


def test_connect_timeout_is_configurable_and_checked():
    from temshift.compute import ClusterError, connect

    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=address.replace(".", r"\.")):
        connect(address, timeout_s=1.0)
    assert time.monotonic() - t0 < 15


def _can_hide_folders() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
        capture_output=True,
        timeout=30,
    )
    return r.returncode == 0


def test_workers_check_the_study_folder(tmp_path):
    """The folder check itself, on real worker processes: a missing folder or read file is named."""
    from distributed import Client

    from temshift.compute import ClusterError, check_workers_see

    weights = tmp_path / "generalist.pt"
    weights.write_bytes(b"weights")
    with cluster(tmp_path, n_workers=1) as (address, _), Client(address, timeout="30s") as client:
        check_workers_see(client, [tmp_path], {weights: "weights of extra model 'generalist'"})  # visible: no error
        missing = tmp_path / "not-here" / "study"
        with pytest.raises(ClusterError, match=r"not-here/study.*not found"):
            check_workers_see(client, [missing])
        gone = tmp_path / "not-here" / "generalist.pt"
        with pytest.raises(ClusterError, match=r"extra model 'generalist' .*not-here/generalist\.pt.*not found"):
            check_workers_see(client, [tmp_path], {gone: "weights of extra model 'generalist'"})
        with pytest.raises(ClusterError, match=r"model .*not found"):  # a folder is not a weights file
            check_workers_see(client, [tmp_path], {tmp_path: "model"})


@pytest.mark.skipif(not _can_hide_folders(), reason="needs root and mount namespaces (unshare) to hide a folder")
def test_worker_without_the_study_folder_gets_a_clear_error(tmp_path):
    """A worker in its own mount namespace, with a tmpfs over the client's folder, stands in for a
    machine without the shared filesystem."""
    shared = tmp_path / "client-only"
    shared.mkdir()
    hide = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'mount -t tmpfs tmpfs "{shared}" && exec "$0" "$@"',
    ]
    with cluster(tmp_path, n_workers=1, worker_prefix=hide) as (address, _):
        out = shared / "study"
        proc = _study_cli(
            "dose", "--scale", "ci", "--out", str(out), "--scheduler", address, "--no-progress", timeout=300
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert str(out) in lines[0] and "not found" in lines[0] and "shared filesystem" in lines[0]


def _done_count(study: Path) -> int:
    return sum(1 for _ in (study / "tasks").glob("*/*/done.json")) if (study / "tasks").exists() else 0


@pytest.mark.slow
def test_ci_dose_study_on_a_cluster_survives_a_killed_worker_and_matches_local(tmp_path, ci_dose_study):
    """Two worker processes, one SIGKILLed mid-run: the study completes with the local results
    (the local run on 2 workers is the session's `ci_dose_study`, shared with test_study_e2e)."""
    study = tmp_path / "cluster"
    with cluster(tmp_path, n_workers=2) as (address, workers):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "temshift",
                "study",
                "run",
                "dose",
                "--scale",
                "ci",
                "--out",
                str(study),
                "--scheduler",
                address,
                "--no-progress",
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 900
            # kill one worker once some tasks finished and others are still to come (mid-run)
            while _done_count(study) < 4 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            assert proc.poll() is None, proc.communicate()
            workers[1].send_signal(signal.SIGKILL)
            workers[1].wait(timeout=30)
            stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert proc.returncode == 0, stdout + stderr
    assert "0 failed, 0 skipped" in stdout + stderr

    local, run = ci_dose_study
    assert run.outcome.ok, run.outcome.failed
    a = pd.read_parquet(study / "results.parquet")
    b = pd.read_parquet(local / "results.parquet")
    assert len(a) == len(b) == 3 * 3 * 2
    # everything but where the files are (task folders under each study directory) and timings
    paths = {
        c
        for c in a.columns
        if any(
            a[c].astype(str).str.startswith(str(d)).any() or b[c].astype(str).str.startswith(str(d)).any()
            for d in (tmp_path, local.parent)
        )
    }
    # task keys differ: local training keys record the torch threads (cores / workers), cluster ones do not
    cols = [
        c for c in a.columns if c not in paths and not any(w in c for w in ("key", "thread", "seconds", "host", "pid"))
    ]
    assert len(cols) > 10 and "hard_dice" in cols
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))
