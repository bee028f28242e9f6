"""The study task graph with fast fake tasks: caching, resume, retry, failure isolation, aggregation."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pandas as pd
import pytest

from temshift.studies.graph import read_done
from temshift.studies.plan import resolve, where_from_json
from temshift.studies.runner import run_study
from temshift.studies.spec import load_spec

CALLS: list = []
LOCK = threading.Lock()
FAIL: dict = {}  # dataset marker substring -> number of remaining failures of its train tasks


def _log(kind, out_dir):
    with LOCK:
        CALLS.append((kind, Path(out_dir).name))


def fake_repo(inputs, out_dir, deps, runtime):
    _log("repo", out_dir)
    (out_dir / "rows.json").write_text(json.dumps([r["file"] for r in inputs["rows"]]))
    return {"frames": len(inputs["rows"])}


def fake_dataset(inputs, out_dir, deps, runtime):
    _log("dataset", out_dir)
    where = where_from_json(inputs["where"])
    dose = where.get("dose_e_per_A2")
    meta = {
        "name": runtime.get("name"),
        "dose": dose[0] if isinstance(dose, tuple) else dose,
        "rescale": inputs["preprocess"].get("rescale"),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta))
    return meta


def fake_stats(inputs, out_dir, deps, runtime):
    _log("stats", out_dir)
    meta = json.loads((Path(deps["dataset"]) / "meta.json").read_text())
    return {"histogram_median": 0.1, "roughness": 0.5, "particle_contrast": 1.0, "dose_e_per_A2": meta["dose"]}


def fake_train(inputs, out_dir, deps, runtime):
    _log("train", out_dir)
    meta = json.loads((Path(deps["dataset"]) / "meta.json").read_text())
    with LOCK:
        if FAIL.get(meta["name"], 0) > 0:
            FAIL[meta["name"]] -= 1
            raise RuntimeError(f"planted failure for {meta['name']}")
    (out_dir / "model.json").write_text(json.dumps({**meta, "fold": inputs["fold"]}))
    return {"train_hard_dice": 0.95}


def fake_evaluate(inputs, out_dir, deps, runtime):
    _log("evaluate", out_dir)
    if "pretrained" in inputs:  # an extra (shipped) model: a fixed score per test dose
        assert Path(runtime["model_path"]).is_file() and "repo" in deps
        test = json.loads((Path(deps["dataset"]) / "meta.json").read_text())
        dice = 0.86 + test["dose"] / 1e5
        row = {"hard_dice": dice, "soft_dice": dice, "ce": 0.2, "pooled_dice": dice, "fp_rate": 0.0}
        pd.DataFrame([{**row, "fn_rate": 0.0, "overseg_share": 0.5}]).to_parquet(out_dir / "metrics.parquet")
        return {"rows": 1}
    model = json.loads((Path(deps["run"]) / "model.json").read_text())
    test = json.loads((Path(deps["dataset"]) / "meta.json").read_text())
    gap = abs(math.log(test["dose"] / model["dose"]))
    dice = 0.9 - 0.1 * gap + 0.01 * model["fold"]
    share = 0.5 + (0.3 if test["dose"] > model["dose"] else -0.3 if test["dose"] < model["dose"] else 0.0)
    df = pd.DataFrame(
        [
            {
                "hard_dice": dice,
                "soft_dice": dice - 0.02,
                "ce": 0.1 + gap,
                "pooled_dice": dice,
                "fp_rate": 0.01,
                "fn_rate": 0.02,
                "overseg_share": share,
                "fold": model["fold"],
            }
        ]
    )
    df.to_parquet(out_dir / "metrics.parquet", index=False)
    return {"rows": 1}


REGISTRY = {
    "repo": fake_repo,
    "dataset": fake_dataset,
    "stats": fake_stats,
    "train": fake_train,
    "evaluate": fake_evaluate,
}


def _run(out, spec="dose", **kw):
    CALLS.clear()
    return run_study(spec, out, scale="ci", workers=2, registry=REGISTRY, processes=False, **kw)


def test_fake_study_runs_and_aggregates(tmp_path):
    run = _run(tmp_path / "s")
    assert run.outcome.ok
    plan = run.plan
    assert len(CALLS) == len(plan.tasks)  # every task once, shared tasks not duplicated
    res = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert len(res) == 3 * 3 * 2  # train datasets x test datasets x folds
    for col in (
        "experiment",
        "variant",
        "train_dataset",
        "fold",
        "test_dataset",
        "hard_dice",
        "overseg_share",
        "train_key",
        "eval_key",
        "ood_gap",
    ):
        assert col in res.columns
    assert (tmp_path / "s" / "results.csv").is_file()
    assert (tmp_path / "s" / "figures" / "matrix_dose.png").is_file()
    html = (tmp_path / "s" / "report.html").read_text()
    assert "data:image/png;base64" in html and "Reading." in html
    from temshift.studies.check import check_study

    status = {f.name: f.status for f in check_study(tmp_path / "s")}
    assert status["dose: diagonal"] == status["dose: FP share"] == "reproduced"
    assert status["noise"] == "not run"


def test_rerun_is_fully_cached_and_identical(tmp_path):
    _run(tmp_path / "s")
    first = pd.read_parquet(tmp_path / "s" / "results.parquet")
    run = _run(tmp_path / "s")
    assert CALLS == []
    assert run.outcome.cached == set(run.plan.tasks)
    pd.testing.assert_frame_equal(first, pd.read_parquet(tmp_path / "s" / "results.parquet"))


def test_resume_runs_only_missing_tasks(tmp_path):
    run = _run(tmp_path / "s")
    # a killed study: one train task never finished (no done marker), its evaluations neither
    train_key = next(k for k, t in run.plan.tasks.items() if t.kind == "train")
    lost = {train_key} | {k for k, t in run.plan.tasks.items() if t.deps.get("run") == train_key}
    for k in lost:
        (run.plan.tasks[k].out_dir / "done.json").unlink()
    run2 = _run(tmp_path / "s")
    assert sorted(CALLS) == sorted((run.plan.tasks[k].kind, k.split("-", 1)[1]) for k in lost)
    assert run2.outcome.ok


def test_failed_task_is_retried_once_then_reported(tmp_path):
    FAIL.clear()
    FAIL["Au5_80e"] = 1  # fails once per... first attempt of one task only: retried and recovers
    run = _run(tmp_path / "a")
    assert run.outcome.ok
    FAIL.clear()
    FAIL["Au5_80e"] = 10**6  # always fails
    run = _run(tmp_path / "b")
    FAIL.clear()
    failed = {run.plan.tasks[k].label for k in run.outcome.failed}
    assert failed == {"train Au5_80e fold 0 (base)", "train Au5_80e fold 1 (base)"}
    assert all("planted failure" in e for e in run.outcome.failed.values())
    assert len(run.outcome.skipped) == 2 * 3  # their evaluations on three datasets
    attempts = [c for c in CALLS if c[0] == "train"]
    assert len(attempts) == 4 + 2 * 2  # other trainings once, the failing two twice (one retry)
    res = pd.read_parquet(tmp_path / "b" / "results.parquet")
    assert len(res) == 2 * 3 * 2 and "Au5_80e" not in set(res["train_dataset"])
    failures = json.loads((tmp_path / "b" / "failures.json").read_text())
    assert len(failures) == 2 + 6


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A folder holding a (fake) shipped generalist, as TEMSHIFT_PRETRAINED_DIR."""
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "generalist.pt").write_bytes(b"fake weights 1")
    monkeypatch.setenv("TEMSHIFT_PRETRAINED_DIR", str(folder))
    return folder


def test_extra_models_add_rows_and_leave_the_rest_alone(tmp_path, shipped):
    from temshift.studies.results import matrix
    from temshift.studies.spec import with_extra_models

    spec = load_spec("dose")
    plain = resolve(spec, tmp_path / "s", "ci")
    extra_spec = with_extra_models(spec, ["generalist"])
    assert extra_spec.experiments["dose"].extra_models == ["generalist"]
    extra = resolve(extra_spec, tmp_path / "s", "ci")
    added = set(extra.tasks) - set(plain.tasks)
    assert set(plain.tasks) <= set(extra.tasks) and len(added) == 3  # one evaluation per dataset
    assert [c for c in extra.cells if c.variant != "extra"] == plain.cells
    # the key follows the weights' content, not their path
    (shipped / "generalist.pt").write_bytes(b"fake weights 2")
    assert set(resolve(extra_spec, tmp_path / "s", "ci").tasks) - set(plain.tasks) != added

    _run(tmp_path / "a")
    CALLS.clear()
    run = run_study(extra_spec, tmp_path / "a", scale="ci", workers=2, registry=REGISTRY, processes=False)
    assert run.outcome.ok and sorted(c[0] for c in CALLS) == ["evaluate"] * 3  # the rest is cached
    res = pd.read_parquet(tmp_path / "a" / "results.parquet")
    rows = res[res["variant"] == "extra"]
    assert sorted(rows["test_dataset"]) == ["Au5_423e", "Au5_80e", "Au5_884e"]
    assert set(rows["train_dataset"]) == {"generalist"} and not rows["same_dataset"].any()
    # the per-dataset rows are those of the run without the extra model
    first = pd.read_parquet(tmp_path / "a" / "results.parquet")
    base = res[res["variant"] != "extra"].reset_index(drop=True)
    ref = _run(tmp_path / "b")
    ref_res = pd.read_parquet(tmp_path / "b" / "results.parquet")
    cols = [c for c in ref_res.columns if not c.endswith("_key")]
    pd.testing.assert_frame_equal(base[cols], ref_res[cols], check_dtype=False)
    assert ref.outcome.ok and len(first) == len(ref_res) + 3
    mean, std = matrix(res, "dose")
    assert "generalist" not in mean.index  # analyses of the per-dataset models do not see it
    mean, std = matrix(res, "dose", extra=True)
    assert list(mean.index)[-1] == "generalist" and std.loc["generalist"].isna().all()
    assert mean.loc["generalist", "Au5_884e"] == pytest.approx(0.86 + 884 / 1e5)
    html = (tmp_path / "a" / "report.html").read_text()
    assert "Extra models." in html and "at least 0.85 on 3 of 3 datasets" in html


def test_on_a_scheduler_the_workers_must_read_the_extra_model(tmp_path, shipped, monkeypatch):
    """`--scheduler`: the extra model's weights are read by the client's path, so they are checked on the
    workers like the study folder (a local threaded cluster stands in for the scheduler's workers)."""
    from temshift.compute import ClusterError
    from temshift.studies import runner
    from temshift.studies.spec import with_extra_models

    real_open, real_plan = runner.open_client, runner.plan_study
    monkeypatch.setattr(runner, "open_client", lambda workers, scheduler, **kw: real_open(2, None, **kw))
    spec = with_extra_models(load_spec("dose"), ["generalist"])
    run = run_study(spec, tmp_path / "a", scale="ci", scheduler="tcp://127.0.0.1:1", registry=REGISTRY, processes=False)
    assert run.outcome.ok  # the weights are there: no error

    def plan_then_lose_the_weights(*args, **kwargs):  # the workers' machines lack the installation
        plan = real_plan(*args, **kwargs)
        (shipped / "generalist.pt").unlink()
        return plan

    monkeypatch.setattr(runner, "plan_study", plan_then_lose_the_weights)
    with pytest.raises(ClusterError, match=r"weights of extra model 'generalist' .*generalist\.pt is not readable"):
        run_study(spec, tmp_path / "b", scale="ci", scheduler="tcp://127.0.0.1:1", registry=REGISTRY, processes=False)


def test_extra_models_must_be_shipped_and_only_in_matrices(tmp_path, monkeypatch):
    from temshift.errors import SpecError
    from temshift.studies.spec import parse_spec

    monkeypatch.setenv("TEMSHIFT_PRETRAINED_DIR", str(tmp_path / "empty"))
    text = (
        'name = "x"\n[datasets.a]\nwhere = { material = "Au", diameter_nm = 5, pixel_scale_nm = 0.02, '
        'dose_e_per_A2 = "423±5", date = "10/06/21" }\n[experiments.e]\ntrain = ["a"]\nextra_models = ["%s"]\n'
    )
    with pytest.raises(SpecError, match=r"experiments\.e\.extra_models\[0\]: the generalist is not shipped yet"):
        resolve(parse_spec(text % "generalist"), tmp_path, "ci")
    with pytest.raises(SpecError, match=r"experiments\.e\.extra_models\[0\]: no shipped model called 'nope'"):
        resolve(parse_spec(text % "nope"), tmp_path, "ci")
    with pytest.raises(SpecError, match="matrix experiments only"):
        parse_spec(text.replace("[experiments.e]", '[experiments.e]\nkind = "rescaling"') % "generalist")


def test_keys_follow_inputs(tmp_path):
    spec = load_spec("dose")
    a = resolve(spec, tmp_path, "ci")
    b = resolve(spec.model_copy(update={"training": {"epochs": 2}}), tmp_path, "ci")
    kinds = lambda p, kind: {k for k, t in p.tasks.items() if t.kind == kind}  # noqa: E731
    assert kinds(a, "dataset") == kinds(b, "dataset")
    assert kinds(a, "train").isdisjoint(kinds(b, "train"))
    assert kinds(a, "evaluate").isdisjoint(kinds(b, "evaluate"))
    assert a.tasks.keys() == resolve(spec, tmp_path, "ci").tasks.keys()  # deterministic
    c = resolve(spec, tmp_path, "ci", train_threads=2)  # trained weights depend on the thread count
    assert kinds(a, "dataset") == kinds(c, "dataset") and kinds(a, "train").isdisjoint(kinds(c, "train"))
    assert read_done(tmp_path / "nothing") is None


def test_shared_tasks_across_experiments(tmp_path):
    plan = resolve(load_spec("noise"), tmp_path, "ci")
    # rho = 0 of both grids and the 884 reference/dose models are the same fold models
    trains = {(c.train, c.fold): set() for c in plan.cells}
    for c in plan.cells:
        if c.variant in ("noise_rho=0", "noise_rho_max=0", "reference", "base") and c.train == "Au5_884e":
            trains[(c.train, c.fold)].add(c.train_key)
    assert all(len(v) == 1 for k, v in trains.items() if k[0] == "Au5_884e")


def test_noise_and_rescaling_presets_with_fakes(tmp_path):
    run = _run(tmp_path / "n", spec="noise")
    assert run.outcome.ok
    res = pd.read_parquet(tmp_path / "n" / "results.parquet")
    variants = set(res[res.experiment == "noise_rho"]["variant"])
    assert {"noise_rho=0", "reference"} <= variants and len(variants) == 3 + 1  # ci thins the grid to 3
    assert (tmp_path / "n" / "figures" / "noise_noise_rho.png").is_file()
    from temshift.studies.check import check_study

    status = {f.name: f.status for f in check_study(tmp_path / "n")}
    assert status["noise"] != "not run" and status["dose: diagonal"] == "reproduced"
    run = _run(tmp_path / "r", spec="rescaling")
    res = pd.read_parquet(tmp_path / "r" / "results.parquet")
    assert set(res["split"]) == {"train", "test"} and set(res["same_dataset"]) == {True}
    assert (tmp_path / "r" / "figures" / "rescaling_rescaling.png").is_file()


def test_progress_view_renders(tmp_path):
    from rich.console import Console

    from temshift.cli.progress import RichReporter, graph_line, graph_table
    from temshift.progress import format_seconds
    from temshift.studies.graph import RunOutcome
    from temshift.studies.progress import PlanProgress

    class Recorder:  # a Reporter that keeps the snapshots
        def __init__(self):
            self.snapshots, self.stopped = [], []

        def snapshot(self, job, status):
            self.snapshots.append((job, status))

        def stop(self, job):
            self.stopped.append(job)

    plan = resolve(load_spec("dose"), tmp_path, "ci")
    keys = list(plan.tasks)
    rec = Recorder()
    view = PlanProgress(plan, slots=2, reporter=rec)
    view.start(cached=keys[:2])
    out = RunOutcome(records={k: {"seconds": 2.0} for k in keys[:5]}, cached=set(keys[:2]), failed={keys[5]: "boom"})
    view.update(out, running={keys[6]})
    status = rec.snapshots[-1][1]
    assert rec.snapshots[-1][0] == "study" and status.title == "study dose (ci)"
    assert sum(s.total for s in status.stages) == len(keys)
    assert sum(s.cached for s in status.stages) == 2 and sum(s.done for s in status.stages) == 3
    assert sum(s.failed for s in status.stages) == 1 and sum(s.running for s in status.stages) == 1
    assert status.running == (plan.tasks[keys[6]].label,)
    assert view.eta_s() > 0 and status.eta_s == pytest.approx(view.eta_s(), rel=0.01)
    console = Console(record=True, width=150)
    console.print(graph_table(status))
    text = console.export_text()
    assert "train" in text and "evaluate" in text and "ETA" in text and "running:" in text
    assert graph_line(status).startswith("study dose (ci): ") and "(1 running)" in graph_line(status)
    view.stop(out)
    assert rec.stopped == ["study"]
    assert format_seconds(3725) == "1h02m" and format_seconds(65) == "1m05s" and format_seconds(None) == "-"
    # the rich reporter draws bars and snapshots without a terminal
    rich = RichReporter(Console(record=True, width=150, force_terminal=False))
    rich.start("job", 4, unit="frames")
    rich.advance("job", 2)
    rich.note("job", "halfway")
    rich.stop("job")
    rich.snapshot("study", status)
    rich.stop("study")
    assert "job" in rich.console.export_text()


class _FlakyFuture:
    """A future whose worker dies after it finished: pending, then lost, then recomputed."""

    def __init__(self, record):
        self._states = iter(["pending", "lost", "lost", "finished"])
        self.status = "pending"
        self._record = record

    def poll(self):
        self.status = next(self._states, "finished")

    def result(self):
        return self._record

    def release(self):
        pass


class _LosingClient:
    """Stands in for a distributed client whose futures pass through the transient "lost" state."""

    def __init__(self):
        self.futures = []

    def submit(self, fn, kind, task_key, inputs, out_dir, deps, runtime, registry, **kw):
        fut = _FlakyFuture({"key": task_key, "kind": kind, "dir": out_dir, "result": {}})
        self.futures.append(fut)
        return fut

    def processing(self):
        for fut in self.futures:
            fut.poll()
        return {}


def test_a_result_lost_with_its_worker_is_waited_for_not_failed(tmp_path):
    """A killed worker makes its finished futures "lost" until the scheduler recomputes them;
    that is not a failure (it failed a cluster run in CI)."""
    from temshift.studies.graph import run_plan
    from temshift.studies.progress import PlanProgress

    class _Polling(PlanProgress):
        def __init__(self):
            pass

        def start(self, cached):
            pass

        def update(self, outcome, running):
            pass

        def stop(self, outcome):
            pass

    plan = resolve(load_spec("dose"), tmp_path / "study", scale="ci")
    outcome = run_plan(plan, _LosingClient(), progress=_Polling(), poll_s=0.0)
    assert outcome.ok, outcome.failed
    assert set(outcome.records) == set(plan.tasks)


def test_cli_extra_model_that_is_not_shipped_is_one_line_and_exit_1(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("TEMSHIFT_PRETRAINED_DIR", str(tmp_path / "empty"))
    code, out, err = cli(
        "study", "run", "dose", "--scale", "ci", "--out", tmp_path / "s", "--extra-model", "generalist"
    )
    assert code == 1 and "Traceback" not in err
    assert "experiments.dose.extra_models[0]: the generalist is not shipped yet" in " ".join((out + err).split())
