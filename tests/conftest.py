"""Fixtures shared by the test modules.

Frames, patches and repositories come from the library's toy generator
(:mod:`temshift.simulate.toy`); what only tests need (the in-process CLI runner, small
dataset-file writers, the script that saves a model the published way) lives here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture
def cli(monkeypatch, capsys) -> Callable[..., tuple[int, str, str]]:
    """Run ``temshift ARGS`` through the real entry point in-process.

    Returns a function ``cli(*args) -> (exit code, stdout, stderr)``.
    """
    from temshift.cli import main

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["temshift", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _write_dataset(path: Path, images: np.ndarray, labels: np.ndarray, spec: dict | None = None) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
        f.attrs["spec"] = json.dumps(spec or {"name": path.stem, "pixel_scale_nm": 0.02, "dose_e_per_A2": 423})
    return path


@pytest.fixture(scope="session")
def write_dataset() -> Callable[..., Path]:
    """``write_dataset(path, images, labels, spec=None) -> path``: a minimal HDF5 dataset file.

    Only ``images``, ``labels`` and a spec JSON attribute (default 0.02 nm/px, 423 e/A^2):
    the smallest file `temshift.datasets.load_dataset` reads.
    """
    return _write_dataset


def _write_training_dataset(
    path, frames, labels, patch: int = 256, pixel_scale_nm: float = 0.02, dose_e_per_A2: float = 423.0
) -> Path:
    import pandas as pd

    from temshift.datasets.store import write_dataset_file
    from temshift.preprocess import PreprocessSettings, preprocess_frame

    settings = PreprocessSettings(xray_threshold=None)
    images, labs, prov = [], [], []
    for k, (f, lab) in enumerate(zip(frames, labels)):
        img = preprocess_frame(f, settings)
        for r in range(0, f.shape[0] - patch + 1, patch):
            for c in range(0, f.shape[1] - patch + 1, patch):
                images.append(img[r : r + patch, c : c + patch])
                labs.append(lab[r : r + patch, c : c + patch])
                prov.append((f"frame{k}.tif", r, c))
    spec = {
        "name": "synth",
        "preprocess": settings.model_dump(),
        "patch_size": patch,
        "pixel_scale_nm": pixel_scale_nm,
        "dose_e_per_A2": dose_e_per_A2,
    }
    provenance = pd.DataFrame(prov, columns=["file", "row", "col"])
    return write_dataset_file(path, np.stack(images), np.stack(labs), provenance, {"spec": json.dumps(spec)})


@pytest.fixture(scope="session")
def write_training_dataset() -> Callable[..., Path]:
    """``write_training_dataset(path, frames, labels, patch=256, ...) -> path``: a temshift dataset file.

    Raw frames are preprocessed (x-ray removal off) and cut into non-overlapping patches; the
    provenance names frame ``k`` ``frame{k}.tif``.
    """
    return _write_training_dataset


@pytest.fixture(scope="session")
def benchmark_module() -> Callable[[str], ModuleType]:
    """Load ``benchmarks/NAME.py`` as a module (the benchmarks are scripts, not a package)."""

    def load(name: str) -> ModuleType:
        script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, script)
        assert spec is not None and spec.loader is not None, script
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def published_script() -> Path:
    """A script that defines the authors' architecture in ``__main__`` and ``torch.save``s the whole module.

    Run it as ``python SCRIPT OUT_MODEL OUT_INPUT_NPY OUT_OUTPUT_NPY [cuda]``.
    """
    return Path(__file__).with_name("published_script.py")


@pytest.fixture(scope="session")
def ci_dose_study(tmp_path_factory):
    """The ``dose`` study at ``ci`` scale on 2 local workers, run once per session: ``(folder, StudyRun)``.

    Shared by the slow end-to-end test (which re-runs it from its cache) and the cluster test
    (which compares a run on a Dask cluster with it), so the suite runs it once, not twice.
    """
    from temshift.studies.runner import run_study

    out = tmp_path_factory.mktemp("ci-dose") / "dose"
    return out, run_study("dose", out, scale="ci", workers=2)
