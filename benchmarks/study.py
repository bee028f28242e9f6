"""Benchmark: wall time of the quick `dose` study with 1 and 2 workers, per-stage breakdown,
and the cost of a re-run with everything cached.

Usage::

    python benchmarks/study.py [--scale quick] [--preset dose] [--workers 1 2] [--no-write]

Writes the "## Study" section of benchmarks/RESULTS.md (only that section).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).with_name("RESULTS.md")


def run_once(preset: str, scale: str, workers: int, out: Path) -> dict:
    """One study run; wall seconds and per-stage task seconds."""
    from temshift.studies.runner import run_study

    t0 = time.perf_counter()
    run = run_study(preset, out, scale=scale, workers=workers)
    wall = time.perf_counter() - t0
    timing = pd.read_csv(out / "timings.csv")
    fresh = timing[~timing["cached"]]
    stages = fresh.groupby("kind")["seconds"].agg(["size", "sum", "mean"]).to_dict("index")
    return {
        "workers": workers,
        "wall_s": wall,
        "graph_s": run.outcome.seconds,
        "aggregate_s": run.aggregate_s,
        "tasks": len(run.plan.tasks),
        "cached": len(run.outcome.cached),
        "failed": len(run.outcome.failed),
        "skipped": len(run.outcome.skipped),
        "stages": stages,
    }


def _stage_table(stages: dict) -> list[str]:
    lines = ["| stage | tasks | task-seconds total | mean per task (s) |", "|---|---:|---:|---:|"]
    for kind in ("repo", "dataset", "stats", "train", "evaluate"):
        if kind in stages:
            s = stages[kind]
            lines.append(f"| {kind} | {int(s['size'])} | {s['sum']:.1f} | {s['mean']:.2f} |")
    return lines


def section(preset: str, scale: str, runs: list[dict], rerun: dict, command: str) -> str:
    lines = [
        "## Study (`benchmarks/study.py`)",
        "",
        f"{date.today().isoformat()}, `{command}`; {os.cpu_count()} cores, CPU only, "
        f"preset `{preset}` at scale `{scale}`, each run from an empty study directory "
        "(simulation included).",
        "",
        "| workers | wall (s) | task graph (s) | aggregation: results, figures, report (s) | tasks | failed |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['workers']} | {r['wall_s']:.1f} | {r['graph_s']:.1f} | {r['aggregate_s']:.1f} | "
            f"{r['tasks']} | {r['failed'] + r['skipped']} |"
        )
    by_w = {r["workers"]: r["wall_s"] for r in runs}
    if len(by_w) > 1:
        lo, hi = min(by_w), max(by_w)
        lines += ["", f"Speed-up {lo} -> {hi} workers: {by_w[lo] / by_w[hi]:.2f}x."]
    for r in runs:
        lines += ["", f"Per-stage task time, {r['workers']} worker(s) (sum of task durations):", ""]
        lines += _stage_table(r["stages"])
    lines += [
        "",
        f"Re-run with everything cached ({rerun['workers']} workers): {rerun['wall_s']:.1f} s wall "
        f"({rerun['cached']}/{rerun['tasks']} tasks reused; cluster start-up and the aggregation "
        f"of {rerun['aggregate_s']:.1f} s included).",
        "",
    ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace the "## Study" section of RESULTS.md (up to the next "## " heading)."""
    doc = RESULTS.read_text()
    pattern = re.compile(r"^## Study.*?(?=^## |\Z)", re.S | re.M)
    doc = pattern.sub(lambda m: text + "\n", doc, count=1) if pattern.search(doc) else doc + "\n" + text + "\n"
    RESULTS.write_text(doc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="dose")
    ap.add_argument("--scale", default="quick")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    ap.add_argument("--keep", type=Path, default=None, help="keep study directories under this folder")
    args = ap.parse_args(argv)
    base = args.keep or Path(tempfile.mkdtemp(prefix="temshift-bench-study-"))
    runs = []
    try:
        for w in args.workers:
            out = base / f"{args.preset}-{args.scale}-w{w}"
            shutil.rmtree(out, ignore_errors=True)
            runs.append(run_once(args.preset, args.scale, w, out))
            print(f"{w} worker(s): {runs[-1]['wall_s']:.1f} s", flush=True)
        rerun = run_once(args.preset, args.scale, args.workers[-1], out)
        print(f"cached re-run: {rerun['wall_s']:.1f} s", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    command = "python benchmarks/study.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = section(args.preset, args.scale, runs, rerun, command.strip())
    print(text)
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
