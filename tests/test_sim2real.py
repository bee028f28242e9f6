"""benchmarks/sim2real.py part (c): rows of different base models are kept apart and named."""

from __future__ import annotations


def _run(base, rows, **ident):
    return {
        "date": "d",
        "command": "c",
        "threads": 1,
        "load_before": "0",
        "finetune": {"base": base, "rows": rows, **ident},
    }


def _row(split, score):
    return {
        "freeze": "decoder",
        "split": split,
        "mean": score,
        "per_frame": [score] * 15,
        "base_mean": 0.8,
        "wall_seconds": 1.0,
        "cpu_seconds": 1.0,
        "epochs": 60,
        "best_epoch": 60,
    }


def test_two_bases_are_two_sections_not_repeats(benchmark_module):
    mod = benchmark_module("sim2real")
    released = _run("5nmAu160kX425eUTC_0_model.h5", [_row(0, 0.9)])  # a result file from before --base
    generalist = _run(
        "generalist.pt",
        [_row(0, 0.95)],
        base_kind="generalist",
        base_sha256="abc",
        base_pixel_scale_nm=0.04,
        base_patch_px=256,
    )
    text = mod.markdown([released, generalist])
    assert "ran twice" not in text
    sections = text.split("(c) ")[1:]
    assert len(sections) == 2
    assert sections[0].startswith("`temshift.training.finetune.finetune` from `5nmAu160kX425eUTC_0_model.h5`")
    assert "random 256 px crops" in sections[0] and "| 0.900 |" in sections[0]
    assert "the shipped generalist `generalist.pt`" in sections[1] and "0.04 nm/px" in sections[1]
    assert "whole 256 px tiles" in sections[1] and "| 0.950 |" in sections[1]
    again = mod.markdown([generalist, generalist])  # the same base and split twice: one row, a repeat
    assert (
        again.count("| decoder | 60 | 0 |") == 1
        and "ran twice in separate processes: per-frame scores identical" in again
    )
