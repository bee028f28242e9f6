"""`temshift pretrain` (domain-randomized generalist) and the shipped-model loader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from temshift.errors import CheckpointError
from temshift.studies.pretrain import SCALES, PretrainError, plan_pretrain, scale_ranges
from temshift.training.domain import FrameDraw, PretrainRanges, draw_frame

SRC = Path(__file__).resolve().parents[1] / "src"


def _draw(seed, index, ranges=None):
    return draw_frame(ranges or PretrainRanges(), seed, index, working_pixel_scale_nm=0.04, working_frame_px=512)


# ----------------------------------------------------------------------------- draws and ranges


def test_draws_are_a_function_of_seed_and_index_only():
    forward = [_draw(3, i) for i in range(20)]
    backward = [_draw(3, i) for i in reversed(range(20))][::-1]
    assert forward == backward
    assert _draw(3, 5) == forward[5]
    assert _draw(3, 5) != _draw(3, 6)
    assert _draw(3, 5) != _draw(4, 5)


def test_draws_stay_inside_the_ranges_and_cover_them():
    r = PretrainRanges()
    draws = [_draw(0, i, r) for i in range(400)]
    for name, field in (
        ("diameter_nm", "diameter_nm_log"),
        ("pixel_scale_nm", "pixel_scale_nm_log"),
        ("dose_e_per_A2", "dose_e_per_A2_log"),
        ("defocus_A", "defocus_A"),
        ("cs_A", "cs_A_log"),
        ("gain_counts_per_e", "gain_counts_per_e_log"),
        ("mtf_floor", "mtf_floor"),
    ):
        values = np.array([getattr(d, name) for d in draws])
        lo, hi = getattr(r, field)
        assert values.min() >= lo and values.max() <= hi, name
        # log-uniform draws cover both ends of their decade(s)
        span = np.log(hi / lo) if field.endswith("_log") else hi - lo
        lo_q = np.log(values.min() / lo) if field.endswith("_log") else values.min() - lo
        assert lo_q < 0.05 * span, name
    assert {d.material for d in draws} == set(r.materials)
    assert {d.support for d in draws} == set(r.supports)
    # the simulated frame covers the working frame's extent at the drawn scale
    d = draws[0]
    assert abs(d.frame_size_px * d.pixel_scale_nm - 512 * 0.04) < d.pixel_scale_nm


def test_ranges_refuse_what_the_simulator_cannot_do():
    with pytest.raises(PretrainError, match="materials.*Unobtainium"):
        scale_ranges(SCALES["ci"], {"materials": ["Au", "Unobtainium"]})
    with pytest.raises(PretrainError, match="aperture_mrad"):
        scale_ranges(SCALES["ci"], {"aperture_mrad": [0, 30]})
    # wider apertures are fine since the field grid follows the aperture (2026-12-03)
    assert scale_ranges(SCALES["ci"], {"aperture_mrad": [10, 30]}).aperture_mrad == (10, 30)
    with pytest.raises(PretrainError, match="dose_e_per_A2_log"):
        scale_ranges(SCALES["ci"], {"dose_e_per_A2_log": [900, 80]})
    with pytest.raises(PretrainError, match="not_a_range"):
        scale_ranges(SCALES["ci"], {"not_a_range": 1})
    with pytest.raises(PretrainError, match="unknown pretrain scale"):
        plan_pretrain("/tmp/x", "huge")


def test_plan_keys_follow_the_inputs(tmp_path):
    a = plan_pretrain(tmp_path, "ci", seed=0, train_threads=1)
    b = plan_pretrain(tmp_path, "ci", seed=0, train_threads=1)
    c = plan_pretrain(tmp_path, "ci", seed=1, train_threads=1)
    d = plan_pretrain(tmp_path, "ci", seed=0, train_threads=1, training={"epochs": 3})
    assert list(a.tasks) == list(b.tasks)
    assert not set(a.chunks) & set(c.chunks)
    assert a.chunks == d.chunks and a.dataset_key == d.dataset_key and a.train_key != d.train_key
    n = SCALES["ci"].n_frames
    assert sorted(i for k in a.chunks for i in a.tasks[k].inputs["indices"]) == list(range(n))


def test_frame_keys_follow_the_simulator_source(tmp_path, monkeypatch):
    import temshift.realism.plan as realism_plan

    a = plan_pretrain(tmp_path, "ci", seed=0, train_threads=1)
    assert all(a.tasks[k].inputs["simulator"] == realism_plan.simulator_fingerprint() for k in a.chunks)
    monkeypatch.setattr(realism_plan, "simulator_fingerprint", lambda: "0123456789abcdef")
    b = plan_pretrain(tmp_path, "ci", seed=0, train_threads=1)
    assert not set(a.chunks) & set(b.chunks)  # an older simulator's frames are not reused
    assert a.dataset_key != b.dataset_key and a.train_key != b.train_key  # nor what was made of them


def test_frames_task_resamples_to_the_working_scale_and_skips_a_failing_frame(tmp_path, monkeypatch):
    import temshift.simulate.micrograph as micrograph
    from temshift.simulate.micrograph import SimulatedFrame
    from temshift.studies.pretrain import simulate_chunk

    def fake(req):
        if req.frame_key == "pretrain/1":
            raise ValueError("cannot simulate this one")
        n = req.frame_size_px
        yy, xx = np.mgrid[:n, :n]
        label = ((yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (n / 3) ** 2).astype(np.uint8)
        counts = np.random.default_rng(0).poisson(300.0 - 100.0 * label).astype(np.float32)
        return SimulatedFrame(counts, label, {"n_particles": 1, "label_area_fraction": float(label.mean())})

    monkeypatch.setattr(micrograph, "simulate_frame", fake)
    plan = plan_pretrain(tmp_path, "ci", train_threads=1)
    inputs = dict(plan.tasks[plan.chunks[0]].inputs, indices=[0, 1, 2])
    result = simulate_chunk(inputs, tmp_path, {}, {})
    draws = json.loads((tmp_path / "draws.json").read_text())
    assert result["frames"] == 2 and result["failed_frames"] == 1, [d.get("error") for d in draws]
    assert "cannot simulate this one" in draws[1]["error"]
    with np.load(tmp_path / "patches.npz") as z:
        sc = SCALES["ci"]
        assert z["images"].shape[1:] == (sc.patch_size, sc.patch_size)
        # the working frame (128 px) gives 2 x 2 patches whatever the drawn pixel scale
        assert sorted(set(z["frame"].tolist())) == [0, 2] and len(z["frame"]) <= 8
        assert set(np.unique(z["labels"])) <= {0, 1}


# ----------------------------------------------------------------------------- shipped model loader


def test_pretrained_absent_gives_a_clear_error(tmp_path, monkeypatch):
    from temshift.models import pretrained

    monkeypatch.setenv("TEMSHIFT_PRETRAINED_DIR", str(tmp_path))
    with pytest.raises(CheckpointError, match="the generalist is not shipped yet.*temshift pretrain"):
        pretrained("generalist")
    with pytest.raises(CheckpointError, match="no shipped model called 'bogus'"):
        pretrained("bogus")


def test_predict_generalist_absent_is_one_line_and_exit_1(tmp_path):
    frame = tmp_path / "f.npy"
    np.save(frame, np.ones((64, 64), np.float32))
    env = {**os.environ, "TEMSHIFT_PRETRAINED_DIR": str(tmp_path / "none"), "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-m", "temshift", "predict", "generalist", str(frame), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1
    assert "the generalist is not shipped yet" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_pretrained_refuses_a_pickle_that_runs_code(tmp_path):
    import torch

    from temshift.models import pretrained

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"format": "temshift.checkpoint", "x": Evil()}, tmp_path / "generalist.pt")
    with pytest.raises(CheckpointError):
        pretrained("generalist", folder=tmp_path)
    assert not (tmp_path / "pwned").exists()


# ----------------------------------------------------------------------------- ci end to end


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    """`temshift pretrain --scale ci` on local Dask worker processes (2 workers)."""
    from temshift.studies.pretrain import run_pretrain

    out = tmp_path_factory.mktemp("pretrain") / "run"
    res = run_pretrain(out, "ci", workers=2, train_threads=1)
    return out, res


@pytest.mark.slow
def test_ci_run_writes_a_model_that_records_its_ranges(ci_run):
    from temshift.models import pretrained
    from temshift.models.checkpoint import load_checkpoint

    out, res = ci_run
    assert res.ran == len(res.plan.tasks) and res.cached == 0
    model, meta = load_checkpoint(out / "generalist.pt")
    ranges = PretrainRanges.model_validate(meta.pretrain["ranges"])
    assert ranges == scale_ranges(SCALES["ci"])
    assert ranges.diameter_nm_log == (1.5, 3.0)
    assert meta.dataset_spec.pixel_scale_nm == SCALES["ci"].working_pixel_scale_nm
    assert meta.dataset_spec.preprocess.rescale == "standardize"
    assert meta.training_statistics is not None and meta.kind == "generalist"
    record = json.loads((out / "generalist.json").read_text())
    assert record == json.loads(json.dumps(meta.pretrain))
    assert record["data"]["frames"] == SCALES["ci"].n_frames and record["data"]["patches"] > 0
    assert 0 <= record["held_out"]["hard_dice"] <= 1
    assert record["recipe"]["command"].startswith("temshift pretrain")
    # the drawn parameters of every frame are on disk, equal to a fresh draw
    draws = [
        FrameDraw(**{k: v for k, v in d.items() if k in FrameDraw.model_fields})
        for k in res.plan.chunks
        for d in json.loads((res.plan.tasks[k].out_dir / "draws.json").read_text())
    ]
    sc = SCALES["ci"]
    assert draws == [
        draw_frame(ranges, 0, i, working_pixel_scale_nm=sc.working_pixel_scale_nm, working_frame_px=sc.working_frame_px)
        for i in range(sc.n_frames)
    ]
    # the loading path of a shipped model, from a package-like folder
    loaded, lmeta = pretrained("generalist", folder=out)
    assert lmeta.pretrain["ranges"] == meta.pretrain["ranges"]
    assert all(np.array_equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


@pytest.mark.slow
def test_predict_generalist_uses_the_working_scale(ci_run, monkeypatch):
    from temshift.io import Frame
    from temshift.predict.chooser import ModelChooser
    from temshift.predict.pipeline import predict_frame

    out, _ = ci_run
    monkeypatch.setenv("TEMSHIFT_PRETRAINED_DIR", str(out))
    choice = ModelChooser("generalist").for_frame()
    assert choice.predictor.pixel_scale_nm == SCALES["ci"].working_pixel_scale_nm
    rng = np.random.default_rng(0)
    raw = rng.poisson(200, (160, 160)).astype(np.float32)
    pred = predict_frame(choice.predictor, Frame(raw, 0.08, None))
    assert pred.zoom == pytest.approx(2.0) and pred.mask.shape == raw.shape


@pytest.mark.slow
def test_ci_rerun_reuses_everything(ci_run):
    from temshift.studies.pretrain import run_pretrain

    out, first = ci_run
    again = run_pretrain(out, "ci", workers=1, train_threads=1, processes=False)
    assert again.ran == 0 and again.cached == len(first.plan.tasks)
    assert again.record == first.record


def test_pretrain_no_progress_runs_without_the_live_view(cli, monkeypatch, tmp_path):
    """`--no-progress` (as `study run` and `realism` have) hands the run no reporter, for logs and batch jobs."""
    import temshift.studies.pretrain as pretrain_mod
    from temshift.cli.progress import RichReporter

    seen = []

    def fake_run(out, scale, **kw):
        seen.append(kw["reporter"])
        raise pretrain_mod.PretrainError("stop here")

    monkeypatch.setattr(pretrain_mod, "run_pretrain", fake_run)
    code, _, err = cli("pretrain", "--out", tmp_path / "run", "--scale", "ci", "--no-progress")
    assert code == 1 and "stop here" in err and seen == [None]
    cli("pretrain", "--out", tmp_path / "run", "--scale", "ci")
    assert isinstance(seen[1], RichReporter)


@pytest.mark.slow
def test_interrupted_training_resumes_instead_of_restarting(ci_run, monkeypatch):
    import temshift.training.trainer as trainer
    from temshift.studies.pretrain import run_pretrain
    from temshift.training.fold import epochs_done

    out, _first = ci_run
    real = trainer.train_epoch
    calls, dying_at = [], [3]

    def dying(model, optimizer, data, settings, seed, epoch, *a, **k):
        calls.append(epoch)
        if epoch == dying_at[0]:
            raise RuntimeError("killed at epoch 3")
        return real(model, optimizer, data, settings, seed, epoch, *a, **k)

    monkeypatch.setattr(trainer, "train_epoch", dying)
    longer = {"epochs": 4}
    with pytest.raises(PretrainError, match="train the generalist failed.*killed at epoch 3.*re-run"):
        run_pretrain(out, "ci", workers=1, train_threads=1, training=longer, processes=False)
    plan = plan_pretrain(out, "ci", train_threads=1, training=longer)
    run_dir = plan.tasks[plan.train_key].out_dir / "run"
    assert (run_dir / "state.pt").is_file() and epochs_done(run_dir) == 2
    assert calls[:3] == [1, 2, 3]  # first attempt (the retry resumes too, and dies again)
    first_rows = (run_dir / "history.csv").read_text().splitlines()

    calls.clear()
    dying_at[0] = None  # the machine is back
    res = run_pretrain(out, "ci", workers=1, train_threads=1, training=longer, processes=False)
    assert calls == [3, 4]  # resumed after epoch 2, no restart
    assert res.ran == 2  # train and evaluate; the frames and the dataset were cached
    rows = (run_dir / "history.csv").read_text().splitlines()
    assert rows[:3] == first_rows[:3] and len(rows) == 5
    assert res.record["training"]["epochs_run"] == 4
    # the record's training time covers both attempts, not only the resumed one
    spent = sum(float(r.split(",")[header.index("seconds")]) for r in rows[1:] for header in [rows[0].split(",")])
    assert res.record["data"]["training_seconds"] == round(spent, 1)


def test_pretrained_is_the_function_even_after_its_module_was_imported():
    """`temshift.models.pretrained` names both a module and the function; prediction imports the
    module first, which shadowed the lazily exported function (a TypeError: module not callable)."""
    code = (
        "import sys, temshift.models.pretrained\n"
        "from temshift.models import pretrained\n"
        "assert callable(pretrained), pretrained\n"
        "assert pretrained is sys.modules['temshift.models.pretrained'].pretrained\n"
        "assert 'torch' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_shipped_generalist_loads_from_the_package(monkeypatch):
    """The package ships the generalist: it loads with no folder and no environment variable, safely,
    with its recipe, ranges and training record (the not-shipped path is tested with empty folders above)."""
    from temshift.models import pretrained
    from temshift.models.pretrained import pretrained_dir, pretrained_record
    from temshift.predict.chooser import ModelChooser
    from temshift.training.domain import PretrainRanges

    monkeypatch.delenv("TEMSHIFT_PRETRAINED_DIR", raising=False)
    path = pretrained_dir() / "generalist.pt"
    assert path.is_file() and path.stat().st_size < 2_000_000  # small: it lives in the package
    model, meta = pretrained("generalist")
    record = pretrained_record("generalist")
    assert meta.kind == "generalist" and record == json.loads(json.dumps(meta.pretrain))
    assert record["recipe"]["scale"]["name"] == "quick" and record["recipe"]["command"].startswith("temshift pretrain")
    assert PretrainRanges.model_validate(record["ranges"]) == scale_ranges(SCALES["quick"])
    assert meta.dataset_spec.pixel_scale_nm == SCALES["quick"].working_pixel_scale_nm
    assert 0 < record["held_out"]["hard_dice"] <= 1 and record["data"]["frames"] > 0
    assert sum(p.numel() for p in model.parameters()) < 200_000
    choice = ModelChooser("generalist").for_frame()  # what `temshift predict generalist` loads
    assert choice.predictor.paths == [path]
