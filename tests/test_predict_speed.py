"""`temshift predict`'s per-frame measuring and library loading (issue 12, "A 5-second prediction").

Statistics and particle table of a frame are measured inside its own ``try`` (a failing table fails its
frame only), and the command imports its libraries with the garbage collector paused
(`cli.loading_libraries`; `check` too). Speed itself is measured in benchmarks/predict_process.py, not here.
"""

from __future__ import annotations

import gc
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from temshift.models import CheckpointMeta, UNet, save_checkpoint
from temshift.simulate.toy import toy_support_frame
from test_predict_pipeline import SPEC


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    return save_checkpoint(path, UNet(), CheckpointMeta.model_validate({"dataset_spec": SPEC}))


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    paths = []
    for k in range(3):
        frame, _ = toy_support_frame(192, n_particles=3 + k, seed=k + 1)
        np.save(root / f"f{k}.npy", frame)
        paths.append(root / f"f{k}.npy")
    return paths


def _stats_json(stats):
    from temshift.datasets.statistics import jsonable

    return json.dumps(jsonable(stats), sort_keys=True)


def test_measure_gives_the_statistics_and_particle_table(model, frames):
    from temshift.predict.batch import PredictSettings, _measure, _particles, _statistics
    from temshift.predict.metadata import read_frame_metadata
    from temshift.predict.pipeline import load_predictor, predict_frame

    predictor = load_predictor(model)
    frame, meta = read_frame_metadata(frames[1], pixel_scale_nm=0.02)
    seg = predict_frame(predictor, frame, 0.02)
    _, label = toy_support_frame(192, n_particles=4, seed=2)  # the frame's particles (a random model finds none)
    seg = replace(seg, mask=label.astype(np.uint8), input_mask=label.astype(np.uint8))
    for watershed in (False, True):
        s = PredictSettings(pixel_scale_nm=0.02, watershed=watershed)
        stats, table = _measure(seg, meta, predictor.patch_size, s)
        assert _stats_json(stats) == _stats_json(_statistics(seg, meta, predictor.patch_size))
        pd.testing.assert_frame_equal(table, _particles(seg, 0.02, s))
        assert len(table) > 0 and stats["contrast"] is not None
    # strict mode: the particles wait for the report
    stats, table = _measure(seg, meta, predictor.patch_size, PredictSettings(strict=True))
    assert table is None and _stats_json(stats) == _stats_json(_statistics(seg, meta, predictor.patch_size))


def test_a_failing_particle_table_fails_its_frame_and_the_batch_goes_on(model, frames, monkeypatch):
    """Before, an error in the particle table escaped `predict_frames` and lost the whole batch."""
    from temshift.predict import particles
    from temshift.predict.batch import predict_frames

    real = particles.particle_table
    calls = []

    def flaky(mask, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("labelling failed")
        return real(mask, *a, **k)

    monkeypatch.setattr(particles, "particle_table", flaky)
    preds = predict_frames(model, frames, pixel_scale_nm=0.02)
    assert [p.ok for p in preds] == [True, False, True]
    assert "labelling failed" in preds[1].error and str(frames[1]) in preds[1].error
    assert preds[0].particles is not None and preds[2].particles is not None
    assert preds[2].report is not None and preds[2].stats is not None


def test_loading_libraries_pauses_the_collector_and_freezes_only_in_the_program(monkeypatch):
    import temshift.cli as cli

    frozen = gc.get_freeze_count()
    assert gc.isenabled()
    with cli.loading_libraries():
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen  # tests (in-process main) keep collecting
    with pytest.raises(KeyError), cli.loading_libraries():
        raise KeyError("an import failed")
    assert gc.isenabled()

    monkeypatch.setattr(cli, "_PROGRAM", True)
    try:
        with cli.loading_libraries():
            kept = [object() for _ in range(10)]
        assert gc.isenabled() and gc.get_freeze_count() > frozen and len(kept) == 10
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("command", ["predict", "check"])
def test_predict_and_check_import_their_libraries_with_the_collector_paused(command, model, frames, cli, monkeypatch):
    import contextlib

    import temshift.cli

    entered: list[str] = []

    @contextlib.contextmanager
    def recording():
        entered.append(command)
        yield

    monkeypatch.setattr(temshift.cli, "loading_libraries", recording)
    out = ["--out", str(frames[0].parent / f"out-{command}")] if command == "predict" else []
    code, _, err = cli(command, str(model), str(frames[0]), "--pixel-scale", "0.02", *out)
    assert code == 0, err
    assert entered == [command]


def test_the_predict_command_draws_its_histogram_without_importing_matplotlib(model, frames, tmp_path):
    """The size histogram is drawn by a child process (`HistogramProcess`), which imports matplotlib
    while the command imports torch; the command's own process never imports it."""
    import subprocess
    import sys

    out = tmp_path / "out"
    code = (
        "import sys; import temshift.cli as cli; "
        f"sys.argv = ['temshift', 'predict', {str(model)!r}, {str(frames[1])!r}, '--pixel-scale', '0.02', "
        f"'--out', {str(out)!r}]\n"
        "try:\n    cli.main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"
    assert (out / "size_histogram.png").stat().st_size > 0
    record = json.loads((out / "prediction.json").read_text())
    assert "size_histogram.png" in record["batch_outputs"]


def _table():
    from temshift.predict.particles import combine_tables, particle_table, size_histogram_table

    _, label = toy_support_frame(192, n_particles=5, seed=3)
    combined = combine_tables({"f.npy": particle_table(label, 0.02)})
    return combined, size_histogram_table(combined, ["f.npy"])


@pytest.mark.parametrize("child", ["works", "cannot start", "fails"])
def test_histogram_process_writes_the_same_png_as_in_process(child, tmp_path, monkeypatch):
    """Drawn by the child, or, when it cannot start or fails, by this process: the same bytes either way."""
    import sys

    from temshift.predict import histogram
    from temshift.predict.particles import size_histogram_png

    table, ci = _table()
    reference = size_histogram_png(table, tmp_path / "in_process.png", ci=ci).read_bytes()
    if child == "cannot start":
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    elif child == "fails":
        monkeypatch.setattr(sys, "executable", "/bin/false")
    with histogram.HistogramProcess() as proc:
        assert proc.size_histogram_png(table, tmp_path / "child.png", ci=ci) == tmp_path / "child.png"
        proc.wait()
        assert (tmp_path / "child.png").read_bytes() == reference
    assert proc._proc is None  # reaped


def test_histogram_process_without_a_plot_is_stopped(tmp_path):
    from temshift.predict.histogram import HistogramProcess

    with HistogramProcess() as proc:
        child = proc._proc
        assert child is not None
    assert child.returncode is not None and proc._proc is None
    assert list(tmp_path.iterdir()) == []


def test_frame_writer_prepares_the_same_files_and_writes_none_for_a_frame_that_fails(
    model, frames, tmp_path, monkeypatch
):
    """PNGs encoded as soon as a frame is segmented (`FrameWriter.prepare`) are the files written in
    line, and a frame that fails after its segmentation (here: its particle table) gets none."""
    from temshift.predict import particles
    from temshift.predict.batch import PredictSettings, predict_frames
    from temshift.predict.outputs import FrameWriter, write_frame_outputs

    real = particles.particle_table

    def flaky(mask, *a, **k):
        if flaky.calls == 1:
            flaky.calls += 1
            raise RuntimeError("labelling failed")
        flaky.calls += 1
        return real(mask, *a, **k)

    flaky.calls = 0
    monkeypatch.setattr(particles, "particle_table", flaky)
    settings = PredictSettings(pixel_scale_nm=0.02)
    prepared = []

    def prepare(p, image, seg):
        prepared.append(p.name)
        writer.prepare(p, image, seg)

    (tmp_path / "early").mkdir()
    (tmp_path / "inline").mkdir()
    with FrameWriter(tmp_path / "early", settings) as writer:
        preds = predict_frames(model, frames, settings, on_segmented=prepare, on_frame=writer.submit)
    assert prepared == ["f0.npy", "f1.npy", "f2.npy"] and [p.ok for p in preds] == [True, False, True]
    assert not any(f.name.startswith("f1") for f in (tmp_path / "early").iterdir())
    assert preds[0].outputs and preds[1].outputs == []
    for p in (preds[0], preds[2]):
        written = write_frame_outputs(p, tmp_path / "inline", settings)
        assert written == p.outputs
        for name in written:
            assert (tmp_path / "early" / name).read_bytes() == (tmp_path / "inline" / name).read_bytes(), name


def test_frame_writer_prepares_nothing_in_strict_mode(tmp_path):
    from temshift.predict.batch import PredictSettings
    from temshift.predict.outputs import FrameWriter

    with FrameWriter(tmp_path, PredictSettings(strict=True)) as writer:
        writer.prepare(object(), np.zeros((8, 8)), None)  # would fail if it encoded anything
        assert writer._encoding == {}
