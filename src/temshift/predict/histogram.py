"""The size-histogram PNG of ``temshift predict``, drawn in this process or in a helper process.

:func:`histogram_inputs` reduces a particle table to the few arrays the plot needs (no pandas
below it) and :func:`draw_size_histogram` draws them with matplotlib; together they are
:func:`temshift.predict.particles.size_histogram_png`.

:class:`HistogramProcess` draws the same PNG in a child Python process (``python -m
temshift.predict.histogram``) started at the beginning of ``temshift predict``: the child
imports matplotlib (~0.7-1.1 s of CPU) on the second core while the command imports torch and
runs on the first, and draws (~0.4 s) while the command writes its other files. The command
itself never imports matplotlib. The file is the same byte for byte (same code, same
matplotlib); if the child cannot start or fails, the PNG is drawn in this process instead.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

CI_COLUMNS = ("bin_low", "bin_high", "ci_low", "ci_high")
"""Columns of :func:`temshift.predict.particles.size_histogram_table` the plot uses."""


def histogram_inputs(table: Any, *, exclude_border: bool = True, ci: Any = None) -> dict[str, Any]:
    """The arguments of :func:`draw_size_histogram` for a particle table.

    Parameters
    ----------
    table : pandas.DataFrame
        Particle table (one frame or combined).
    exclude_border : bool
        Leave out particles cut by the frame edge (their size is a lower bound).
    ci : pandas.DataFrame, optional
        :func:`temshift.predict.particles.size_histogram_table` of the same table.

    Returns
    -------
    dict
        ``diameters`` (finite equivalent diameters, nm, or pixels without a pixel scale),
        ``unit``, ``exclude_border`` and ``ci`` (the columns :data:`CI_COLUMNS` as float
        arrays, or None).
    """
    t = table[~table["touches_border"].astype(bool)] if exclude_border and len(table) else table
    d = t["equivalent_diameter_nm"].to_numpy(dtype=float)
    unit = "nm"
    if len(d) and np.isnan(d).all():
        d, unit = np.sqrt(4.0 * t["area_px"].to_numpy(dtype=float) / np.pi), "pixels"
    d = d[np.isfinite(d)]
    bars = None if ci is None else {c: ci[c].to_numpy(float) for c in CI_COLUMNS}
    return {"diameters": d, "unit": unit, "exclude_border": exclude_border, "ci": bars}


def draw_size_histogram(
    path: str | Path,
    diameters: np.ndarray,
    unit: str,
    *,
    exclude_border: bool = True,
    bins: Any = "auto",
    title: str | None = None,
    ci: dict[str, np.ndarray] | None = None,
) -> Path:
    """Draw the histogram of `diameters` (in `unit`) as a PNG at `path`, atomically.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    diameters : numpy.ndarray
        Finite equivalent diameters (:func:`histogram_inputs`).
    unit : str
        Their unit, ``"nm"`` or ``"pixels"``.
    exclude_border : bool
        Whether border particles were left out (said in the default title).
    bins : int or str
        Passed to :func:`numpy.histogram_bin_edges` (when `ci` gives no bins).
    title : str, optional
        Plot title.
    ci : dict of numpy.ndarray, optional
        Bins and bootstrap intervals (:data:`CI_COLUMNS`): those bins are used and the
        intervals drawn as error bars.
    """
    # a bare Figure renders with Agg and skips pyplot's import and backend set-up (~0.5-1 s)
    from matplotlib.figure import Figure

    from temshift.io.atomic import atomic_path

    d = diameters
    fig = Figure(figsize=(5, 3.5), dpi=120)
    ax = fig.subplots()
    if len(d):
        edges = np.histogram_bin_edges(d, bins=bins)
        if ci is not None and len(ci["bin_low"]):
            edges = np.append(ci["bin_low"], ci["bin_high"][-1])
        counts, _, _ = ax.hist(d, bins=edges, color="tab:orange", edgecolor="black")  # type: ignore[arg-type]  # stubs omit arrays
        if ci is not None and len(ci["bin_low"]) == len(counts):
            centers = 0.5 * (edges[:-1] + edges[1:])
            err = np.vstack([counts - ci["ci_low"], ci["ci_high"] - counts])
            ax.errorbar(
                centers,
                counts,
                yerr=np.clip(err, 0, None),
                fmt="none",
                ecolor="black",
                elinewidth=1,
                capsize=2,
                label="95 % bootstrap interval",
            )
        ax.axvline(np.median(d), color="black", ls="--", lw=1, label=f"median {np.median(d):.3g} {unit}")
        ax.legend(frameon=False)
    else:
        ax.text(0.5, 0.5, "no particles", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"equivalent diameter ({unit})")
    ax.set_ylabel("particles")
    ax.set_title(title or f"{len(d)} particles" + (" (border particles excluded)" if exclude_border else ""))
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


class HistogramProcess:
    """A child process that imports matplotlib now and draws one size histogram later.

    Start it before the slow imports of the parent; :meth:`size_histogram_png` hands it the
    plot (returns at once), :meth:`wait` waits for the file. Use as a context manager: on
    leaving, a child that got no plot is stopped.

    The PNG is always written by :meth:`wait`: if the child could not be started, or failed,
    it is drawn in this process (then with the errors this process would give). The child's
    own messages (matplotlib warnings) go to this process's stderr.
    """

    def __init__(self) -> None:
        import temshift

        root = str(Path(temshift.__file__).resolve().parents[1])  # this temshift, not another installed one
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        self._job: dict[str, Any] | None = None
        self._proc: subprocess.Popen[bytes] | None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "temshift.predict.histogram"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError:
            self._proc = None

    def size_histogram_png(
        self, table: Any, path: str | Path, *, exclude_border: bool = True, title: str | None = None, ci: Any = None
    ) -> Path:
        """As :func:`temshift.predict.particles.size_histogram_png` (default bins), drawn by the child.

        The file exists once :meth:`wait` returned.
        """
        if self._job is not None:
            raise RuntimeError("HistogramProcess draws one histogram")
        self._job = {"path": str(path), "title": title, **histogram_inputs(table, exclude_border=exclude_border, ci=ci)}
        if self._proc is not None and self._proc.stdin is not None:
            try:
                self._proc.stdin.write(pickle.dumps(self._job))
                self._proc.stdin.close()  # the end of the job: the child draws now
            except OSError:  # the child is gone (it failed to start up): drawn here in wait()
                self._stop()
        return Path(path)

    def wait(self) -> None:
        """Wait until the histogram handed over is written (drawn here if the child failed)."""
        if self._job is None:
            return
        job, self._job = self._job, {}
        if job and not self._finish():
            draw_size_histogram(job.pop("path"), job.pop("diameters"), job.pop("unit"), **job)

    def _finish(self) -> bool:
        """Wait for the child; True when it wrote the file (its messages shown)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return False
        err = self._end(proc)
        ok = proc.returncode == 0
        if ok and err:
            sys.stderr.write(err.decode(errors="replace"))
        return ok

    @staticmethod
    def _end(proc: subprocess.Popen[bytes], kill: bool = False) -> bytes:
        """Close the child's input (end of its job, or: nothing to draw), read its stderr, reap it."""
        if kill:
            proc.kill()
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):  # a broken pipe: the child is gone already
                proc.stdin.close()
        err = proc.stderr.read() if proc.stderr is not None else b""
        if proc.stderr is not None:
            proc.stderr.close()
        proc.wait()
        return err

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            self._end(proc, kill=True)

    def close(self) -> None:
        """Wait for a handed-over histogram; stop a child that got none."""
        try:
            self.wait()
        finally:
            proc, self._proc = self._proc, None
            if proc is not None:  # no plot handed over: nothing for the child to write
                self._end(proc, kill=True)

    def __enter__(self) -> HistogramProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve() -> int:
    """The child: import matplotlib, then draw the plot read from stdin (nothing to draw: exit 0)."""
    import matplotlib.figure  # noqa: F401  (the slow import, made while the parent imports torch)

    data = sys.stdin.buffer.read()
    if not data:
        return 0
    job = pickle.loads(data)
    draw_size_histogram(job.pop("path"), job.pop("diameters"), job.pop("unit"), **job)
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
