"""Importing the authors' released weights (pickled `__main__` modules) safely and exactly."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from temshift.errors import CheckpointError
from temshift.models import load_model, load_published

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def published(published_script, tmp_path_factory):
    """A released-style file built by a script whose classes live in `__main__`, tagged cuda:0."""
    folder = tmp_path_factory.mktemp("published")
    model = folder / "UNet_5nmAu330kX423eUTC_fold2_seed621_model.h5"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, str(published_script), str(model), str(folder / "x.npy"), str(folder / "y.npy"), "cuda"],
        check=True,
        env=env,
        cwd=folder,
    )
    return model, np.load(folder / "x.npy"), np.load(folder / "y.npy")


def test_file_is_a_main_module_pickle_with_cuda_tensors(published):
    import zipfile

    with zipfile.ZipFile(published[0]) as zf:
        data = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    assert b"__main__" in data and b"ResidualBlock" in data and b"cuda:0" in data


def test_outputs_equal_the_original(published):
    path, x, y = published
    model = load_published(path)
    assert not model.training
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(out, y)


def test_load_model_and_cli_import_round_trip(published, tmp_path):
    from typer.testing import CliRunner

    from temshift.cli import _register, app

    path, x, y = published
    _model, meta = load_model(path)
    assert meta.source == "published" and meta.fold == 2 and meta.seed == 621
    assert meta.config["filters"] == (4, 8, 16, 32) and meta.architecture == "unet" and meta.dataset_spec is None
    _register()
    out = tmp_path / "imported.pt"
    result = CliRunner().invoke(app, ["model", "import", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    again, meta2 = load_model(out)
    assert meta2.source == "published" and meta2.fold == 2 and meta2.file == path.name
    with torch.no_grad():
        np.testing.assert_array_equal(again(torch.from_numpy(x)).numpy(), y)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickles_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    zipped = tmp_path / "evil_model.h5"
    torch.save({"model": Evil(marker)}, zipped)
    raw = tmp_path / "evil_raw.h5"
    raw.write_bytes(pickle.dumps(Evil(marker), protocol=2))
    for path in (zipped, raw):
        with pytest.raises(CheckpointError, match=r"refused global (posix|nt|os)\.system"):
            load_published(path)
        with pytest.raises(CheckpointError):
            load_model(path)
    assert not marker.exists()


def test_missing_and_corrupt_files(tmp_path, published):
    with pytest.raises(CheckpointError, match="no such"):
        load_published(tmp_path / "absent.h5")
    broken = tmp_path / "broken.h5"
    broken.write_bytes(published[0].read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="broken.h5"):
        load_published(broken)
    with pytest.raises(CheckpointError, match="broken.h5"):
        load_model(broken)
