"""Benchmark: ``temshift predict`` on one 4096 x 4096 frame as a whole process, with a breakdown.

Two measurements per configuration (one model; a 5-model ensemble):

- whole process: ``python -m temshift predict MODEL FRAME.npy --pixel-scale 0.02 --out OUT``
  as a subprocess; wall time (``perf_counter`` around it) and peak RSS of that child
  (``os.wait4`` rusage). Nothing is wrapped or instrumented.
- breakdown: the same command run in a fresh process through ``temshift.cli.main`` with the
  library functions of each stage wrapped by timers (import, model load, read, preprocess,
  inference, statistics, outputs, other = the rest: rich tables, catalog, arg parsing).

The frame is :func:`temshift.simulate.toy.toy_frame` (4096 px, 40 particles, seed 1); the models are
randomly initialised paper U-Nets saved with :func:`temshift.models.save_checkpoint` (speed does
not depend on the weights). Medians of `--repeats` runs, configurations interleaved.

Usage::

    python benchmarks/predict_process.py [--repeats 3] [--size 4096] [--threads N]

Prints a markdown table (``benchmarks/predict.py --whole`` puts it into RESULTS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (label, module, attribute): functions whose cumulative time makes one stage
STAGES = [
    ("model load", "temshift.predict.pipeline", "load_predictor"),
    ("read", "temshift.io", "read_frame"),
    ("read", "temshift.predict.metadata", "catalog_metadata"),
    ("read", "temshift.predict.pipeline", "frame_metadata"),  # before the library API (baseline runs)
    ("preprocess", "temshift.preprocess.model_input", "model_input"),
    ("preprocess", "temshift.predict.pipeline", "model_input"),  # before it moved to preprocess (baseline runs)
    ("inference", "temshift.predict.pipeline", "predict_probabilities"),
    ("inference", "temshift.predict.uncertainty", "member_spread"),  # ensembles and TTA: inference + spread
    ("statistics", "temshift.predict.shift", "frame_statistics"),
    ("outputs", "temshift.io", "write_label_png"),
    ("outputs", "temshift.predict.outputs", "write_mask_tiff"),
    ("outputs", "temshift.predict.outputs", "write_overlay_png"),
    ("outputs", "temshift.predict.outputs", "write_risk_reports"),
    ("outputs", "temshift.predict.outputs", "write_prediction_record"),
    ("outputs", "temshift.predict.particles", "particle_table"),
    ("outputs", "temshift.predict.particles", "write_particle_csv"),
    ("outputs", "temshift.predict.particles", "size_histogram_png"),
    ("outputs", "temshift.predict.particles", "summary_and_histogram"),
    ("outputs", "temshift.predict.outputs", "encode_frame_pngs"),  # FrameWriter.prepare (writer thread)
]
ORDER = ["import", "model load", "read", "preprocess", "inference", "statistics", "outputs", "other", "background"]
"""Stages; "background" is time of wrapped calls on other threads (the frames' files, written while the
main thread goes on; the frame statistics, measured while the main thread makes the particle table):
not part of the wall time's sum, nor of "other". ``background_stages`` splits it by stage."""


def make_inputs(folder: Path, size: int, n_models: int) -> tuple[Path, list[Path]]:
    """The synthetic frame (.npy) and `n_models` random checkpoints in `folder` (made once)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    frame = folder / f"frame{size}.npy"
    if not frame.exists():
        from temshift.simulate.toy import toy_frame

        data, _ = toy_frame(size, n_particles=40, seed=1)
        np.save(frame, data)
    models = [folder / f"model{k}.pt" for k in range(n_models)]
    if not all(m.exists() for m in models):
        import torch

        from temshift.models import CheckpointMeta, UNet, save_checkpoint

        spec = {"preprocess": {}, "pixel_scale_nm": 0.02, "dose_e_per_A2": 423.0, "patch_size": 512}
        for k, m in enumerate(models):
            torch.manual_seed(k)
            save_checkpoint(m, UNet(), CheckpointMeta.model_validate({"dataset_spec": spec}))
    return frame, models


def trained_models(folder: Path, n_models: int) -> list[Path]:
    """`n_models` checkpoints below `folder` (e.g. a finished ci study's ``tasks/train``), sorted."""
    found = sorted(Path(folder).rglob("model.pt"))[:n_models]
    if len(found) < n_models:
        raise SystemExit(f"{folder}: {len(found)} model.pt found, {n_models} needed")
    return found


def predict_args(frame: Path, models: list[Path], out: Path, threads: int) -> list[str]:
    args = ["predict", str(models[0]), str(frame), "--pixel-scale", "0.02", "--out", str(out)]
    for m in models[1:]:
        args += ["--ensemble", str(m)]
    if threads:
        args += ["--threads", str(threads)]
    return args


def _env(src: str | None) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def whole_process(args: list[str], src: str | None = None) -> dict:
    """Wall seconds, CPU seconds (user + system, all threads) and peak RSS (MB) of
    ``python -m temshift ARGS`` in a fresh child process.

    `src` (a ``src`` folder) goes first on PYTHONPATH: another version of temshift to compare with.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "temshift", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(src)
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"predict failed ({proc.returncode}): {err[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024.0}


def breakdown_worker(args: list[str]) -> dict:
    """Run the predict command in this process with the stage functions wrapped by timers."""
    import functools
    import importlib

    t0 = time.perf_counter()
    import torch  # noqa: F401  (the import cost the CLI pays on the predict path)

    import temshift.cli as cli
    from temshift.cli import predict_cmd  # noqa: F401

    for _, mod, _ in STAGES:
        with contextlib.suppress(ImportError):  # a module of another version (--baseline-src)
            importlib.import_module(mod)
    import threading

    spent = {"import": time.perf_counter() - t0, "background": 0.0}
    background_stages: dict[str, float] = {}
    local = threading.local()  # count only the outermost wrapped call of each thread
    main_thread = threading.main_thread()

    def wrap(label, fn):
        @functools.wraps(fn)
        def timed(*a, **k):
            depth = getattr(local, "depth", 0)
            local.depth = depth + 1
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                local.depth = depth
                if depth == 0:
                    dt = time.perf_counter() - t
                    if threading.current_thread() is main_thread:
                        spent[label] = spent.get(label, 0.0) + dt
                    else:
                        spent["background"] += dt
                        background_stages[label] = background_stages.get(label, 0.0) + dt

        return timed

    missing = []
    for label, mod, attr in STAGES:
        try:
            m = importlib.import_module(mod)
        except ImportError:
            missing.append(f"{mod}.{attr}")
            continue
        if not hasattr(m, attr):
            missing.append(f"{mod}.{attr}")
            continue
        setattr(m, attr, wrap(label, getattr(m, attr)))
    sys.argv = ["temshift", *args]
    t1 = time.perf_counter()
    try:
        cli.main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    total = time.perf_counter() - t1
    spent["other"] = total - sum(v for k, v in spent.items() if k not in ("import", "background"))
    spent["total"] = spent["import"] + total
    spent["missing"] = missing
    spent["background_stages"] = background_stages
    spent["cpu_s"] = time.process_time()
    return spent


def _breakdown(args: list[str], src: str | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(args)],
        check=True,
        capture_output=True,
        text=True,
        env=_env(src),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(
    repeats: int,
    size: int,
    threads: int,
    ensemble: int,
    workdir: Path | None = None,
    models_from: Path | None = None,
    baseline_src: str | None = None,
    breakdowns: int = 1,
    with_ensemble: bool = True,
) -> list[dict]:
    """Whole-process and breakdown medians for one model and an `ensemble`-model ensemble.

    With `baseline_src`, the single model (and the ensemble) also run with that version of
    temshift, interleaved with this one, so that both see the same machine load.
    """
    import numpy as np

    root = workdir or Path(tempfile.gettempdir()) / "temshift_bench_predict"
    frame, models = make_inputs(root, size, ensemble)
    if models_from:
        models = trained_models(models_from, ensemble)
    configs = [("1 model", models[:1], None)] + (
        [(f"{ensemble}-model ensemble", models, None)] if with_ensemble else []
    )
    if baseline_src:
        configs.insert(1, ("1 model, baseline", models[:1], baseline_src))
        if with_ensemble:
            configs.append((f"{ensemble}-model ensemble, baseline", models, baseline_src))
    runs = {name: {"whole": [], "parts": []} for name, _, _ in configs}
    for r in range(repeats):
        for name, ms, src in configs:  # interleaved, so that load changes hit all alike
            with tempfile.TemporaryDirectory(dir=root) as out:
                runs[name]["whole"].append(whole_process(predict_args(frame, ms, Path(out) / "o", threads), src))
            print(name, f"{runs[name]['whole'][-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
            if r < breakdowns:
                with tempfile.TemporaryDirectory(dir=root) as out:
                    runs[name]["parts"].append(_breakdown(predict_args(frame, ms, Path(out) / "o", threads), src))
    rows = []
    for name, ms, src in configs:
        w, p = runs[name]["whole"], runs[name]["parts"]
        med = lambda v: float(np.median(v)) if len(v) else float("nan")  # noqa: E731
        rows.append(
            {
                "config": name,
                "models": len(ms),
                "size": size,
                "repeats": repeats,
                "threads": threads,
                "src": src,
                "wall_s": med([x["wall_s"] for x in w]),
                "all_wall_s": [x["wall_s"] for x in w],
                "cpu_s": med([x.get("cpu_s", float("nan")) for x in w]),
                "all_cpu_s": [x.get("cpu_s", float("nan")) for x in w],
                "peak_rss_mb": max(x["peak_rss_mb"] for x in w),
                "breakdowns": len(p),
                "parts": {k: med([x.get(k, 0.0) for x in p]) for k in [*ORDER, "total"]},
                "missing": p[0].get("missing", []) if p else [],
                "background_stages": p[0].get("background_stages", {}) if p else {},
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| configuration | whole process s (median) | all runs s | CPU s (median) | peak RSS MB | "
        + " | ".join(ORDER)
        + " | sum (in-process, without background) |",
        "|---|---|---|---|---|" + "---|" * len(ORDER) + "---|",
    ]
    for r in rows:
        p = r["parts"]
        parts = (
            " | ".join(f"{p[k]:.2f}" for k in ORDER) + f" | {p['total']:.1f}"
            if r["breakdowns"]
            else " | ".join("-" for _ in ORDER) + " | -"
        )
        lines.append(
            f"| {r['config']} | **{r['wall_s']:.1f}** | {', '.join(f'{t:.1f}' for t in r['all_wall_s'])} | "
            f"{r.get('cpu_s', float('nan')):.1f} | {r['peak_rss_mb']:.0f} | {parts} |"
        )
    return "\n".join(lines)


RESULTS = Path(__file__).with_name("RESULTS.md")
SUBSECTION = "### Whole process (`benchmarks/predict_process.py`)"


def write_subsection(text: str) -> None:
    """Put `text` (starting with :data:`SUBSECTION`) at the end of the '## Prediction' section of
    RESULTS.md, replacing an earlier one; nothing else in the file changes."""
    import re

    content = RESULTS.read_text()
    section = re.compile(r"^## Prediction.*?(?=^## |\Z)", re.S | re.M)
    m = section.search(content)
    if not m:
        raise SystemExit(f"{RESULTS}: no '## Prediction' section")
    body = m.group(0)
    body = body.split("\n" + SUBSECTION)[0].rstrip("\n") if SUBSECTION in body else body.rstrip("\n")
    content = content[: m.start()] + body + "\n\n" + text.rstrip("\n") + "\n\n" + content[m.end() :].lstrip("\n")
    RESULTS.write_text(content.rstrip("\n") + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=0, help="--threads for temshift predict (0: torch's default).")
    ap.add_argument("--ensemble", type=int, default=5)
    ap.add_argument("--json", type=Path, help="Also write the rows as JSON.")
    ap.add_argument("--models-from", type=Path, help="Use model.pt files below this folder instead of random ones.")
    ap.add_argument("--baseline-src", help="A src folder of another temshift version to time alongside.")
    ap.add_argument("--no-ensemble", action="store_true", help="Only the single model.")
    ap.add_argument("--breakdowns", type=int, default=1, help="Runs with the stage breakdown per configuration.")
    ap.add_argument("--from-json", type=Path, help="Print the table of earlier --json rows (no measuring).")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(breakdown_worker(json.loads(args.worker))))
        return
    if args.from_json:
        print(table(json.loads(args.from_json.read_text())))
        return
    rows = measure(
        args.repeats,
        args.size,
        args.threads,
        args.ensemble,
        models_from=args.models_from,
        baseline_src=args.baseline_src,
        breakdowns=args.breakdowns,
        with_ensemble=not args.no_ensemble,
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
