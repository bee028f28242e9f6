"""Particle contrast of the 80 and 884 e/A^2 training sets against the objective aperture (issue 10).

A paired measurement: for each aperture the same frames (same seed, same specimens, same noise
draws) are simulated as `temshift realism --statistics-only --set 80e --set 884e` simulates them,
with the default `Microscope.aperture_mrad` replaced in this process, and the particle contrast of
the standardized 512 px patches is measured as the realism benchmark does. Frames are 2048^2 at
the particle area fraction of a 4096^2 frame (`field.FULL_FRAME_PX` set to 2048), so a set costs
minutes, not an hour; the field grid follows the aperture (`optics.max_field_sampling_A`).

It answers one question: can a wider aperture (less particle darkening, more of the carbon's
speckle transferred) bring both synthetic contrasts to the real 0.239 / 0.576 at once?

``--matrix`` runs instead the whole quick realism benchmark per aperture (every released model
on every synthetic set, as `temshift realism --scale quick` does, with two worker threads in this
process): the check that does not use the contrasts, the dice of the real-data models against
their real scores (mean |gap| and worst cell).

Usage: python benchmarks/aperture_contrast.py --out DIR [--apertures 20 30 45] [--seed 11 ...] [--matrix]
Skips (exit 0) when the released models are absent.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TEMSHIFT_FFT_WORKERS", "1")

HERE = Path(__file__).resolve().parent
PUBLISHED = HERE.parents[1] / "shared" / "data" / "published"
SETS = ("80e", "884e")


def set_default_aperture(aperture_mrad: float) -> None:
    """Make `aperture_mrad` the default of every `Microscope()` built in this process."""
    from temshift.simulate import optics

    names = list(optics.Microscope.__dataclass_fields__)
    defaults = list(optics.Microscope.__init__.__defaults__)
    defaults[names.index("aperture_mrad")] = float(aperture_mrad)
    optics.Microscope.__init__.__defaults__ = tuple(defaults)


def measure(aperture_mrad: float, seed: int, out: Path) -> dict:
    """Contrast and roughness of the two sets at one aperture (realism statistics, in process)."""
    from temshift.realism.plan import RealismScale
    from temshift.realism.runner import run_realism
    from temshift.simulate import field

    field.FULL_FRAME_PX = 2048  # the paper's area fraction on 2048^2 frames
    set_default_aperture(aperture_mrad)
    scale = RealismScale("aperture", 2048, 3, "multislice", 1, "projection", False, {}, label_frame_size=1024)
    run_realism(
        PUBLISHED, out, scale=scale, seed=seed, workers=1, processes=False, figure=False, evaluate=False, only=SETS
    )
    stats = json.loads((out / "realism.json").read_text())["image_statistics"]
    return {
        name: {
            k: stats[name][k] for k in ("n_patches", "particle_contrast", "real_particle_contrast", "roughness_mean")
        }
        for name in stats
    }


def measure_matrix(aperture_mrad: float, seed: int, out: Path) -> dict:
    """The quick realism benchmark at one aperture: gaps and contrasts."""
    from temshift.realism.runner import run_realism

    set_default_aperture(aperture_mrad)
    run_realism(PUBLISHED, out, scale="quick", seed=seed, workers=2, processes=False, figure=False)
    summary = json.loads((out / "realism.json").read_text())
    stats = summary["image_statistics"]
    return {
        "gaps": summary["gaps"],
        "contrast": {k: round(v["particle_contrast"], 3) for k, v in stats.items() if "0.020nm" in k},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="Work folder (one sub-folder per seed and aperture).")
    ap.add_argument("--apertures", nargs="+", type=float, default=[20.0, 30.0, 45.0], help="Semi-angles, mrad.")
    ap.add_argument("--seed", nargs="+", type=int, default=[11])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--matrix", action="store_true", help="Full quick realism per aperture (released models run).")
    args = ap.parse_args(argv)
    if not PUBLISHED.is_dir():
        print(f"skipped: {PUBLISHED} not found")
        return 0
    rows = []
    if args.matrix:
        for seed in args.seed:
            for aperture in args.apertures:
                res = measure_matrix(aperture, seed, args.out / f"matrix-seed{seed}" / f"ap{aperture:g}")
                rows.append({"seed": seed, "aperture_mrad": aperture, **res})
                print(json.dumps(rows[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return 0
    for seed in args.seed:
        for aperture in args.apertures:
            res = measure(aperture, seed, args.out / f"seed{seed}" / f"ap{aperture:g}")
            row = {"seed": seed, "aperture_mrad": aperture}
            for name, s in res.items():
                row[name] = s
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(
        "\n| seed | aperture mrad | " + " | ".join(f"{k} contrast (real)" for k in rows[0] if k.startswith("Au")) + " |"
    )
    for r in rows:
        cells = [
            f"{v['particle_contrast']:.3f} ({v['real_particle_contrast']})" for k, v in r.items() if k.startswith("Au")
        ]
        print(f"| {r['seed']} | {r['aperture_mrad']:g} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
