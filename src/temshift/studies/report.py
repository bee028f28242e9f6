"""A self-contained ``report.html``: figures embedded, spec, provenance, timings, readings."""

from __future__ import annotations

import base64
import contextlib
import html
import json
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from temshift.studies.results import matrix


def read_matrix(mean: pd.DataFrame, labels: dict) -> str:
    """A short automatic reading of a confusion matrix: diagonal vs off-diagonal, asymmetry."""
    diag = [mean.loc[d, d] for d in mean.index if d in mean.columns]
    off = [(r, c, mean.loc[r, c]) for r in mean.index for c in mean.columns if r != c and np.isfinite(mean.loc[r, c])]
    if not diag:
        return "No dataset is both trained and tested on."
    parts = [f"Mean in-distribution (diagonal) dice {np.nanmean(diag):.3f}"]
    if off:
        parts[0] += f", mean cross-dataset (off-diagonal) dice {np.mean([v for *_, v in off]):.3f}"
        rows_ok = [
            r
            for r in mean.index
            if r in mean.columns and all(mean.loc[r, r] > mean.loc[r, c] for c in mean.columns if c != r)
        ]
        parts.append(f"the diagonal beats every off-diagonal cell in {len(rows_ok)} of {len(diag)} rows")
        worst = min(off, key=lambda t: t[2])
        parts.append(
            f"hardest transfer {labels.get(worst[0], worst[0])} → {labels.get(worst[1], worst[1])} ({worst[2]:.3f})"
        )
        pairs = [
            (r, c, mean.loc[r, c] - mean.loc[c, r])
            for r, c, _ in off
            if c in mean.index and r in mean.columns and np.isfinite(mean.loc[c, r]) and str(r) < str(c)
        ]
        if pairs:
            r, c, d = max(pairs, key=lambda t: abs(t[2]))
            a, b = (r, c) if d > 0 else (c, r)
            parts.append(
                f"mean asymmetry |M - Mᵀ| {np.mean([abs(p[2]) for p in pairs]):.3f}; largest: "
                f"{labels.get(a, a)} → {labels.get(b, b)} beats the reverse by {abs(d):.3f}"
            )
    return "; ".join(parts) + "."


#: hard dice an extra (shipped) model should reach on every dataset (issue 11's target)
EXTRA_TARGET_DICE = 0.85


def read_extra_rows(results: pd.DataFrame, experiment: str, labels: dict, order=None) -> str:
    """One sentence per extra (shipped) model of a matrix: its worst and mean dataset, against the
    per-dataset models' worst cell of each column."""
    from temshift.studies.results import extra_rows

    names = extra_rows(results, experiment)
    if not names:
        return ""
    mean, _ = matrix(results, experiment, order=order, extra=True)
    trained = mean.drop(index=names)
    parts = []
    for n in names:
        row = mean.loc[n].dropna()
        if not len(row):
            continue
        worst = row.idxmin()
        ok = int((row >= EXTRA_TARGET_DICE).sum())
        text = (
            f"{labels.get(n, n)} (trained elsewhere, scored through the prediction path): mean dice "
            f"{row.mean():.3f}, lowest {row.min():.3f} on {labels.get(worst, worst)}; at least "
            f"{EXTRA_TARGET_DICE:g} on {ok} of {len(row)} datasets"
        )
        cols = [c for c in row.index if c in trained.columns and trained[c].notna().any()]
        if cols:
            beats = sum(row[c] > trained[c].min() for c in cols)
            text += f"; above the worst per-dataset model in {beats} of {len(cols)} columns"
        parts.append(text)
    return "; ".join(parts) + "." if parts else ""


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).stem)}">'


def _provenance(plan) -> dict:
    import temshift

    out = {
        "temshift": temshift.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "study_dir": str(plan.study_dir),
        "repository": plan.spec.repository.source,
        "labels": plan.spec.repository.labeling.simulation_options() or "exact",
        "specimen": plan.spec.repository.specimen.simulation_options() or "simulator draws",
        "scale": plan.scale.name,
    }
    for mod in ("torch", "dask", "distributed", "numpy", "pandas"):
        with contextlib.suppress(Exception):  # a missing or broken package is just not listed
            out[mod] = __import__(mod).__version__
    try:
        root = Path(__file__).resolve().parents[3]
        out["git_commit"] = (
            subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
    except Exception:  # noqa: BLE001
        pass
    return out


def _table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    return df.to_html(index=False, border=0, classes="t", float_format=lambda v: floatfmt.format(v), na_rep="–")


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
img{max-width:100%;margin:.5em 0}pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}
table.t{border-collapse:collapse;font-size:.85em}table.t td,table.t th{padding:.2em .6em;border-bottom:1px solid #eee}
.ok{color:#2a7}.bad{color:#c33}.muted{color:#888}"""


def write_report(
    plan, results: pd.DataFrame, datasets: pd.DataFrame, timing: pd.DataFrame, outcome, figs: dict, path
) -> Path:
    """Write the report and return its path."""
    from temshift.io.atomic import atomic_write_text
    from temshift.studies.check import run_checks

    spec = plan.spec
    body = [
        f"<h1>Study {html.escape(spec.name)} <span class='muted'>({plan.scale.name} scale)</span></h1>",
        f"<p>{html.escape(spec.description)}</p>",
    ]
    n_fail = len(outcome.failed) + len(outcome.skipped)
    body.append(
        f"<p>{len(plan.tasks)} tasks: {len(outcome.cached)} reused from cache, "
        f"{len(outcome.records) - len(outcome.cached)} run, "
        f"<span class='{'bad' if n_fail else 'ok'}'>{len(outcome.failed)} failed, "
        f"{len(outcome.skipped)} skipped</span>; {len(results)} result rows.</p>"
    )
    if spec.repository.synthetic:
        body.append(f"<p><b>Labels.</b> {html.escape(spec.repository.labeling.describe())}.</p>")
        body.append(f"<p><b>Specimen.</b> {html.escape(spec.repository.specimen.describe())}.</p>")
    body.append(
        "<h2>Findings</h2><table class='t'><tr><th>finding</th><th>claim</th><th>status</th><th>detail</th></tr>"
    )
    for f in run_checks(spec, results, datasets):
        cls = {"reproduced": "ok", "not reproduced": "bad"}.get(f.status, "muted")
        body.append(
            f"<tr><td>{f.name}</td><td>{html.escape(f.claim)}</td><td class='{cls}'>{f.status}</td>"
            f"<td>{html.escape(f.detail)}</td></tr>"
        )
    body.append("</table>")
    labels = {n: (d.label or n) for n, d in spec.datasets.items()}
    for name, exp in spec.experiments.items():
        keys = [k for k in figs if k.endswith(f"_{name}") or k.endswith(f"_{name}_normalized")]
        if not keys:
            continue
        body.append(f"<h2>{html.escape(exp.title or name)}</h2>")
        if exp.kind == "matrix":
            order = list(dict.fromkeys(exp.train + exp.test_sets)) if exp.order == "spec" else None
            mean, _ = matrix(results, name, order=order)
            body.append(f"<p><b>Reading.</b> {html.escape(read_matrix(mean, {**labels, **exp.labels}))}</p>")
            extra = read_extra_rows(results, name, {**labels, **exp.labels}, order)
            if extra:
                body.append(f"<p><b>Extra models.</b> {html.escape(extra)}</p>")
        for k in keys:
            body.append(_img(figs[k]))
    if "datasets" in figs:
        body.append("<h2>Datasets</h2>" + _img(figs["datasets"]))
    body.append(_table(datasets.drop(columns=[c for c in ("dataset_key",) if c in datasets])))
    body.append("<h2>Timings</h2>")
    if len(timing):
        t = (
            timing.groupby("kind")
            .agg(
                tasks=("seconds", "size"),
                total_s=("seconds", "sum"),
                mean_s=("seconds", "mean"),
                max_s=("seconds", "max"),
            )
            .reset_index()
        )
        body.append(_table(t, "{:.1f}"))
    if n_fail:
        body.append(
            "<h2>Failures</h2><pre>"
            + html.escape(
                json.dumps(
                    {
                        **{plan.tasks[k].label: e for k, e in outcome.failed.items()},
                        **{plan.tasks[k].label: f"skipped (needs {u})" for k, u in outcome.skipped.items()},
                    },
                    indent=1,
                )
            )
            + "</pre>"
        )
    body.append(
        "<h2>Specification</h2><pre>" + html.escape(spec.model_dump_json(indent=1, exclude_defaults=True)) + "</pre>"
    )
    body.append("<h2>Scale</h2><pre>" + html.escape(plan.scale.model_dump_json(indent=1)) + "</pre>")
    body.append("<h2>Provenance</h2><pre>" + html.escape(json.dumps(_provenance(plan), indent=1)) + "</pre>")
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>temshift study {html.escape(spec.name)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>"
    )
    path = Path(path)
    atomic_write_text(path, doc)
    return path
