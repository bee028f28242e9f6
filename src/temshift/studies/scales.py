"""Study scales: how big the data and the training are.

``ci``
    Tiny frames (640 px: a 10 nm particle fits at 0.02 nm/px), 128 px patches, one
    epoch, two folds. A whole preset runs in under two
    minutes; used by the tests. Numbers are meaningless, only the plumbing is checked.
``quick``
    The default on a CPU: 1024 px frames (12 per catalog group), 256 px patches, five
    folds, but 8 epochs of at most 224 samples on 128 px crops at a 10x higher learning
    rate (1e-3; at the paper's 1e-4 a few epochs do not converge), and test sets without
    the 8x dihedral expansion. Twelve frames rather than six because with six the test
    blocks held 4-7 patches and fold-to-fold noise (+-0.1 dice) hid the dose effect; the
    epoch cap keeps training time flat as the data grow. ``dose`` takes about 10 minutes
    on 2 idle cores (benchmarks/RESULTS.md).
``paper``
    The published protocol: the whole repository, 4096 px frames, 512 px patches,
    250 epochs, five folds. For GPUs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Scale(BaseModel):
    """Settings that a scale imposes on a study.

    Attributes
    ----------
    frame_size : int or None
        Simulated frame edge in pixels (None = the simulator's default, 4096).
    frames_per_group : int or None
        Cap on simulated frames per catalog group (None = one per catalog row).
    sim_mode : str
        Simulator mode.
    patch_size : int
        Dataset patch edge in pixels.
    folds : list of int
        Folds trained (of the protocol's five).
    training : dict
        Overrides of the training settings (field names of ``TrainSettings``).
    eval_dihedral : bool
        Count test patches in their 8 dihedral variants (the paper); off at ``ci``.
    grid_points : int or None
        Noise grids are thinned to this many values (None = all).
    cost_s : dict
        Rough seconds per task of each kind on one CPU core, for estimates.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["ci", "quick", "paper"]
    frame_size: int | None
    frames_per_group: int | None
    sim_mode: Literal["multislice", "projection"]
    patch_size: int
    folds: list[int]
    training: dict[str, Any]
    eval_dihedral: bool = True
    grid_points: int | None
    cost_s: dict[str, float]


SCALES: dict[str, Scale] = {
    "ci": Scale(
        name="ci",
        frame_size=640,
        frames_per_group=2,
        sim_mode="projection",
        patch_size=128,
        folds=[0, 1],
        training={"epochs": 1, "batch_size": 16, "patch_crop": 64, "dihedral": False},
        eval_dihedral=False,
        grid_points=3,
        cost_s={"repo": 12.0, "dataset": 0.3, "stats": 0.1, "train": 3.0, "evaluate": 0.8},
    ),
    "quick": Scale(
        name="quick",
        frame_size=1024,
        frames_per_group=12,
        sim_mode="projection",
        patch_size=256,
        folds=[0, 1, 2, 3, 4],
        training={"epochs": 8, "batch_size": 8, "learning_rate": 1e-3, "patch_crop": 128, "samples_per_epoch": 224},
        eval_dihedral=False,
        grid_points=5,
        cost_s={"repo": 17.0, "dataset": 0.5, "stats": 0.2, "train": 50.0, "evaluate": 1.6},
    ),
    "paper": Scale(
        name="paper",
        frame_size=None,
        frames_per_group=None,
        sim_mode="multislice",
        patch_size=512,
        folds=[0, 1, 2, 3, 4],
        training={},
        grid_points=None,
        cost_s={"repo": 900.0, "dataset": 120.0, "stats": 10.0, "train": 4.5 * 3600 / 5, "evaluate": 120.0},
    ),
}


def get_scale(name: str) -> Scale:
    """The scale called `name` (ci, quick or paper)."""
    from temshift.errors import SpecError

    try:
        return SCALES[name]
    except KeyError:
        raise SpecError(f"unknown scale {name!r} (choose from {', '.join(SCALES)})") from None


def thin_grid(values: list[float], points: int | None) -> list[float]:
    """At most `points` values of a sorted grid, evenly spread, first and last kept."""
    if points is None or len(values) <= points:
        return list(values)
    if points == 1:
        return [values[0]]
    step = (len(values) - 1) / (points - 1)
    return [values[round(i * step)] for i in range(points)]
