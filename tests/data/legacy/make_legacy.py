"""Write the legacy fixtures with the temshift code of main at b51c2f7 (run once; kept for the record)."""

import shutil
import sys
from pathlib import Path

import torch

from temshift.catalog import Catalog
from temshift.datasets import DatasetSpec, build_dataset
from temshift.demo import make_synthetic_repo
from temshift.models.unet import ModelConfig
from temshift.training import TrainSettings, train_fold

torch.set_num_threads(1)

out = Path(sys.argv[1])
work = Path(sys.argv[2])
groups = [{"material": "Au", "dose_e_per_A2": 423, "pixel_scale_nm": 0.1, "folder": "s1 Au", "date": "08/26/21"}]
csv = make_synthetic_repo(work / "repo", groups, frames_per_group=2, size=128)
spec = DatasetSpec(name="legacy_au", where={"material": "Au", "pixel_scale_nm": (0.1, 0.005)}, patch_size=32)
ds = build_dataset(Catalog.read(csv), None, spec, out / "dataset_v1.h5", workers=1, progress=False)
settings = TrainSettings(
    epochs=1, batch_size=8, progress=False, threads=1, device="cpu", model=ModelConfig(filters=(2, 4), bottleneck=4)
)
run = train_fold(ds, 0, settings, work / "run")
shutil.copy(work / "run" / "model.pt", out / "checkpoint_v1.pt")
