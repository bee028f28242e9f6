"""The realism benchmark over several repository seeds: how much of a gap is sampling noise.

A quick-scale synthetic dataset holds a handful of frames (3 per catalog group, so 5-18
patches per set), and one seed's cell can move by 0.3 hard dice when only the seed changes
(benchmarks/RESULTS.md, "Realism across seeds"). A gap is only worth chasing with the
simulator's physics when it outlasts that. :func:`combine_seeds` sets the runs of several
seeds side by side: per known cell each seed's score, their mean and standard deviation,
and the gap of the mean; per training set the particle contrast of each seed.

Two summary numbers are kept apart, because they answer different questions:

- ``mean_abs_gap_of_seed_means``: mean over the known cells of ``|mean over seeds - real|``,
  the systematic part (the noise of one seed averages out as seeds are added);
- ``mean_over_seeds_of_mean_abs_gap``: what a single run reports, averaged over seeds (it
  contains each seed's noise, so it is never below the first).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["combine_seeds", "seeds_markdown"]


def _stats(values: Sequence[float]) -> dict:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return {"mean": None, "sd": None, "min": None, "max": None}
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
        "min": float(v.min()),
        "max": float(v.max()),
    }


def combine_seeds(summaries: Sequence[dict]) -> dict:
    """Combine the ``realism.json`` summaries of runs that differ only in their seed.

    Parameters
    ----------
    summaries : sequence of dict
        One summary per seed (:func:`temshift.realism.summary.summarize`), same scale and
        simulator.

    Returns
    -------
    dict
        ``seeds``, ``scale``, ``cells`` (known cells: ``train``, ``test``, ``real``, per-seed
        ``hard_dice``, their mean/sd/min/max, ``gap_of_mean``), ``mean_abs_gap_of_seed_means``,
        ``worst_gap_of_seed_means``, ``mean_over_seeds_of_mean_abs_gap``, ``per_seed_mean_abs_gap``,
        ``contrast`` (per training set with a real value: per-seed contrast, mean/sd, real, ratio
        of the mean).

    Raises
    ------
    ValueError
        No summaries, or summaries of another scale or simulator than the first.
    """
    if not summaries:
        raise ValueError("no realism runs to combine")
    first = summaries[0]
    for s in summaries[1:]:
        for key in ("scale", "simulator_fingerprint", "specimen"):
            if s.get(key) != first.get(key):
                raise ValueError(
                    f"realism runs differ in {key}: {first.get(key)!r} (seed {first.get('seed')}) and "
                    f"{s.get(key)!r} (seed {s.get('seed')}); combine runs of one scale and simulator only"
                )
    cells: dict[tuple[str, str], dict] = {}
    for s in summaries:
        for row in s["matrix"]:
            real = row.get("real_hard_dice")
            if real is None or not math.isfinite(real):
                continue
            cell = cells.setdefault((row["train"], row["test"]), {"real": float(real), "hard_dice": []})
            cell["hard_dice"].append(row["hard_dice_mean"])
    rows = []
    for (train, test), cell in cells.items():
        st = _stats(cell["hard_dice"])
        gap = None if st["mean"] is None else st["mean"] - cell["real"]
        rows.append({"train": train, "test": test, **cell, **st, "gap_of_mean": gap})
    gaps = [r["gap_of_mean"] for r in rows if r["gap_of_mean"] is not None]
    per_seed = [s["gaps"]["mean_abs_gap"] for s in summaries]
    worst = max(rows, key=lambda r: abs(r["gap_of_mean"]) if r["gap_of_mean"] is not None else -1, default=None)
    contrast = {}
    for key in first["image_statistics"]:
        real = first["image_statistics"][key].get("real_particle_contrast")
        if not real:
            continue
        values = [s["image_statistics"].get(key, {}).get("particle_contrast") for s in summaries]
        st = _stats(values)
        contrast[key] = {
            "per_seed": values,
            **st,
            "real": real,
            "ratio_of_mean": None if st["mean"] is None else st["mean"] / real,
        }
    return {
        "seeds": [s.get("seed") for s in summaries],
        "scale": first.get("scale"),
        "simulator_fingerprint": first.get("simulator_fingerprint"),
        "cells": rows,
        "mean_abs_gap_of_seed_means": float(np.mean(np.abs(gaps))) if gaps else None,
        "worst_gap_of_seed_means": None if worst is None or worst["gap_of_mean"] is None else worst,
        "per_seed_mean_abs_gap": per_seed,
        "mean_over_seeds_of_mean_abs_gap": _stats(per_seed)["mean"],
        "contrast": contrast,
    }


def _f(v, fmt: str = "{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def seeds_markdown(combined: dict, labels: dict | None = None) -> str:
    """Markdown tables of :func:`combine_seeds` (cells, then contrast); `labels` maps set keys to names."""
    labels = labels or {}
    seeds = combined["seeds"]
    name = lambda k: labels.get(k, k)  # noqa: E731
    head = "| released model | synthetic set | " + " | ".join(f"seed {s}" for s in seeds)
    lines = [
        head + " | mean ± SD | real | gap of mean |",
        "|---|---|" + "---:|" * (len(seeds) + 3),
    ]
    for r in combined["cells"]:
        per = " | ".join(_f(v) for v in r["hard_dice"])
        lines.append(
            f"| {name(r['train'])} | {name(r['test'])} | {per} | {_f(r['mean'])} ± {_f(r['sd'])} | "
            f"{r['real']:.3f} | {_f(r['gap_of_mean'], '{:+.3f}')} |"
        )
    lines += [
        "",
        f"mean |gap| of the seed means: **{_f(combined['mean_abs_gap_of_seed_means'])}**; "
        f"one run's mean |gap| per seed: {', '.join(_f(v) for v in combined['per_seed_mean_abs_gap'])} "
        f"(mean {_f(combined['mean_over_seeds_of_mean_abs_gap'])})",
        "",
        "| training set | " + " | ".join(f"contrast, seed {s}" for s in seeds) + " | mean ± SD | real | ratio |",
        "|---|" + "---:|" * (len(seeds) + 3),
    ]
    for key, c in combined["contrast"].items():
        per = " | ".join(_f(v) for v in c["per_seed"])
        lines.append(
            f"| {name(key)} | {per} | {_f(c['mean'])} ± {_f(c['sd'])} | {c['real']:.3f} | "
            f"{_f(c['ratio_of_mean'], '{:.2f}')} |"
        )
    return "\n".join(lines) + "\n"
