"""Benchmark of the HRTEM simulator: seconds and peak memory per frame, and a quick repository.

Each frame case runs in a fresh Python process (so its peak resident memory is its own):
a small warm-up frame first (numba/FFTW set-up, ~5-10 s once per process, not counted),
then the timed frame(s). The case is a 5 nm Au frame at 0.02 nm/pixel and 423 e/A2 on
ultrathin carbon with the default particle density of its frame size (4096: ~8
particles; 1024: raised density, ~4 particles). The quick repository is the 5 nm Au,
0.02 nm/pixel subset of the published catalog at the study runner's "quick" scale
(1024 px frames, at most 4 frames per group, projection mode, 2 workers).

Usage::

    python benchmarks/simulate.py            # all cases, updates benchmarks/RESULTS.md
    python benchmarks/simulate.py --no-write # print only
    python benchmarks/simulate.py --skip-4096
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION = "## Simulation (`benchmarks/simulate.py`)"

CASE_CODE = r"""
import json, resource, sys, time
import numpy as np
from temshift.simulate.micrograph import FrameRequest, simulate_frame
size, mode, repeats = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def req(n, key):
    return FrameRequest("Au", 5.0, 423.0, 0.02, frame_size_px=n, mode=mode, seed=11, frame_key=key,
                        session_key="bench | session")
simulate_frame(req(256, "warmup"))
base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
times, cpu, parts = [], [], []
for i in range(repeats):
    t, c = time.perf_counter(), time.process_time()
    f = simulate_frame(req(size, "frame"))
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
    parts.append(f.params["seconds"])
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"size": size, "mode": mode, "seconds": sorted(times)[len(times) // 2], "all": times,
                  "cpu_seconds": sorted(cpu)[len(cpu) // 2],
                  "peak_rss_mb": peak_mb, "warm_rss_mb": base_mb, "n_particles": f.params["n_particles"],
                  "parts": parts[-1]}))
"""


def run_case(size: int, mode: str, repeats: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CASE_CODE, str(size), mode, str(repeats)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def quick_repository(workers: int = 2) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "temshift",
            "simulate",
            "--out",
            str(Path(tmp) / "repo"),
            "--where",
            "material=Au",
            "--where",
            "diameter_nm=5",
            "--where",
            "pixel_scale_nm=0.02",
            "--frames-per-group",
            "4",
            "--frame-size",
            "1024",
            "--mode",
            "projection",
            "--workers",
            str(workers),
            "--seed",
            "0",
        ]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        import pandas as pd

        n = len(pd.read_csv(Path(tmp) / "repo" / "catalog.csv"))
    shown = ["temshift"] + [("REPO" if c == str(Path(tmp) / "repo") else c) for c in cmd[3:]]
    return {"frames": n, "seconds": seconds, "command": " ".join(shown)}


def write_section(text: str) -> None:
    content = RESULTS.read_text()
    start = content.index(SECTION)
    nxt = content.find("\n## ", start + len(SECTION))
    end = len(content) if nxt < 0 else nxt + 1
    RESULTS.write_text(content[:start] + text.rstrip() + "\n\n" + content[end:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--skip-4096", action="store_true")
    ap.add_argument("--skip-repo", action="store_true")
    args = ap.parse_args()

    cases = [(1024, "projection", 3), (1024, "multislice", 3)]
    if not args.skip_4096:
        cases += [(4096, "projection", 1), (4096, "multislice", 1)]
    targets = {(1024, "projection"): 3, (1024, "multislice"): 10, (4096, "multislice"): 60}
    rows = []
    for size, mode, repeats in cases:
        r = run_case(size, mode, repeats)
        rows.append(r)
        print(json.dumps(r), flush=True)
    repo = None if args.skip_repo else quick_repository()
    if repo:
        print(json.dumps(repo), flush=True)

    load = os.getloadavg()[0]
    lines = [
        SECTION,
        "",
        f"{dt.date.today().isoformat()}, `python benchmarks/simulate.py` (2 cores, shared with other jobs; "
        "median of repeats for 1024 px, one frame at 4096 px; warm process, numba/FFTW set-up excluded).",
        "Frame: 5 nm Au, 0.02 nm/px, 423 e/A2, UT carbon, default density. Peak = process peak RSS. "
        f"Load average at the end: {load:.1f} on 2 cores (other jobs running), so wall times are inflated; "
        "CPU s is the process CPU time (both cores count).",
        "",
        "| frame | mode | particles | wall s / frame | CPU s / frame | target | peak RSS (MB) "
        "| support / particles / imaging (wall s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = targets.get((r["size"], r["mode"]))
        p = r["parts"]
        lines.append(
            f"| {r['size']}^2 | {r['mode']} | {r['n_particles']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
            f"{f'<= {t:d} s' if t else '-'} | {r['peak_rss_mb']:.0f} | "
            f"{p['support']:.1f} / {p['particles']:.1f} / {p['imaging']:.1f} |"
        )
    if repo:
        lines += [
            "",
            f"Quick repository ({repo['frames']} frames of 1024^2, projection, 2 Dask workers, "
            f"including start-up): **{repo['seconds']:.0f} s** = {repo['seconds'] / max(repo['frames'], 1):.1f} s "
            f"per frame. Command: `{repo['command']}`",
        ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
