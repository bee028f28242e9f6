"""Seconds-fast smoke demo: a few stand-in raw frames -> a dataset -> its summary.

Run ``python -m temshift.demo [OUT_DIR]``; OUT_DIR defaults to ``demo-out``. (``make demo``
runs the quick ``dose`` study instead.) The frames are simple stand-ins for camera frames
(Poisson counts under a tilted illumination, discs with lattice fringes, a few x-ray
spikes), written in the published repository layout with a ``catalog.csv`` in the
published schema, without abTEM; the dataset tests use them as a fast fixture. For
physically simulated frames use ``temshift simulate``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def synthetic_frame(size: int = 1024, dose_e_per_A2: float = 423.0, pixel_scale_nm: float = 0.02,
                    n_particles: int = 3, diameter_nm: float = 5.0, seed: int = 0):  # fmt: skip
    """One synthetic frame and its mask.

    Parameters
    ----------
    size : int
        Frame side in pixels.
    dose_e_per_A2 : float
        Electron dose; mean counts per pixel = dose * (10 * pixel_scale_nm)^2.
    pixel_scale_nm : float
        Pixel size in nm.
    n_particles : int
        Discs placed at random.
    diameter_nm : float
        Disc diameter in nm.
    seed : int

    Returns
    -------
    frame : (size, size) float32 counts
    mask : (size, size) uint8 {0, 1}
    """
    rng = np.random.default_rng(seed)
    counts = dose_e_per_A2 * (10.0 * pixel_scale_nm) ** 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    illum = 1.0 + 0.3 * x - 0.2 * y + 0.1 * x * y
    r_px = 0.5 * diameter_nm / pixel_scale_nm
    mask = np.zeros((size, size), np.uint8)
    contrast = np.zeros((size, size), np.float32)
    for _ in range(n_particles):
        cy, cx = rng.uniform(r_px, size - r_px, 2)
        yy, xx = np.ogrid[:size, :size]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r_px**2
        mask |= disc
        # lattice fringes (~0.235 nm, Au 111) at a random orientation
        theta = rng.uniform(0, np.pi)
        k = 2 * np.pi / (0.235 / pixel_scale_nm)
        fringes = 0.5 + 0.5 * np.cos(k * (np.cos(theta) * xx + np.sin(theta) * yy))
        contrast = np.where(disc, 0.25 + 0.25 * fringes, contrast)
    frame = rng.poisson(counts * illum * (1.0 + contrast)).astype(np.float32)
    for _ in range(3):  # x-ray spikes
        frame[rng.integers(1, size - 1), rng.integers(1, size - 1)] += rng.uniform(5000, 20000)
    return frame, mask


def make_synthetic_repo(out, groups=None, frames_per_group: int = 2, size: int = 1024, seed: int = 0):
    """Write synthetic frames (``.tif``), labels and ``catalog.csv`` in the published layout.

    Parameters
    ----------
    out : str or Path
        Repository root.
    groups : list of dict, optional
        Each with ``material``, ``dose_e_per_A2``, ``pixel_scale_nm``, ``folder``, ``date``.
    frames_per_group : int
    size : int
        Frame side in pixels.
    seed : int

    Returns
    -------
    Path of ``catalog.csv``.
    """
    import pandas as pd

    from temshift.catalog import Catalog
    from temshift.io import write_label_png, write_tiff_frame

    out = Path(out)
    groups = groups or [
        {"material": "Au", "dose_e_per_A2": 423, "pixel_scale_nm": 0.02, "folder": "2021_08_26 5nm Au on C/UTC",
         "date": "08/26/21"},
        {"material": "Au", "dose_e_per_A2": 80, "pixel_scale_nm": 0.02, "folder": "2021_09_02 5nm Au low dose",
         "date": "09/02/21"},
    ]  # fmt: skip
    rows, k = [], 0
    for g in groups:
        for i in range(frames_per_group):
            stem = f"{g['material']}_{g['dose_e_per_A2']}e_{i + 1:02d}"
            frame, mask = synthetic_frame(size, g["dose_e_per_A2"], g["pixel_scale_nm"], seed=seed + k)
            k += 1
            write_tiff_frame(out / g["folder"] / f"{stem}.tif", frame, g["pixel_scale_nm"])
            write_label_png(out / g["folder"] / "Labels" / f"{stem}_label.png", mask)
            rows.append({
                "File name": f"{stem}.tif", "Date": g["date"], "Material": g["material"],
                "Nanoparticle Size (nm)": 5, "Nanoparticle Shape": "Sphere", "Support": "UT Carbon",
                "Instrument": "Synthetic", "Dosage (e/A2)": g["dose_e_per_A2"],
                "Pixel Scale (nm)": g["pixel_scale_nm"], "Folder": g["folder"],
            })  # fmt: skip
    return Catalog(pd.DataFrame(rows), source="synthetic").to_published_csv(out / "catalog.csv")


def main(argv=None) -> int:
    from rich.console import Console

    from temshift.catalog import Catalog
    from temshift.cli.dataset_cmd import print_summary
    from temshift.datasets import DatasetSpec, build_dataset

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "demo-out")
    console = Console()
    console.print(f"[bold]temshift demo[/]: synthetic frames -> dataset, in {out}/")
    csv = make_synthetic_repo(out / "repo")
    catalog = Catalog.read(csv)
    console.print(f"wrote {len(catalog)} synthetic frames and {csv}")
    spec = DatasetSpec(name="demo_Au_423e", where={"material": "Au", "dose_e_per_A2": (423, 20)}, patch_size=256)
    path = build_dataset(catalog, None, spec, out / f"{spec.name}.h5")
    print_summary(path, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
