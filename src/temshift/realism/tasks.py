"""Task callables of the realism benchmark (same signature as `temshift.studies.tasks`).

``repo`` and ``dataset`` are the studies' own; ``stats`` measures a synthetic dataset the
way the real-data reference does, ``evaluate`` runs one released model on one dataset and
``labels`` measures the labels of paper-scale frames.
"""

from __future__ import annotations

import json
from pathlib import Path

from temshift.studies.tasks import DATASET, REPO, build, simulate_repo

METRICS = "metrics.json"
STATS = "stats.json"
LABELS = "labels.json"
EXAMPLES = "examples.npz"


def dataset_statistics(images, labels) -> dict:
    """Particle contrast, roughness and histogram median of standardized patches (REFERENCE.md definitions)."""
    import numpy as np

    from temshift.datasets.contrast import median_contrast
    from temshift.datasets.statistics import spectral_roughness

    rough = [spectral_roughness(p) for p in images]
    return {
        "n_patches": int(len(images)),
        "particle_contrast": median_contrast(images, labels),
        "roughness_mean": float(np.mean(rough)) if rough else float("nan"),
        "roughness_median": float(np.median(rough)) if rough else float("nan"),
        "histogram_median": float(np.median(images)) if len(images) else float("nan"),
        "particle_fraction": float(np.mean(labels != 0)) if len(images) else float("nan"),
    }


def statistics(inputs: dict, out_dir: Path, deps: dict, runtime: dict) -> dict:
    """Statistics of a built dataset, plus a few example patches for the figure."""
    import numpy as np

    from temshift.datasets import load_dataset
    from temshift.io.atomic import atomic_path, atomic_write_text

    ds = load_dataset(Path(deps["dataset"]) / DATASET)
    out = dataset_statistics(ds.images, ds.labels)
    if len(ds.images):
        # the example: the patch with the median particle share (a typical one)
        share = ds.labels.reshape(len(ds.labels), -1).mean(1)
        i = int(np.argsort(share)[len(share) // 2])
        with atomic_path(out_dir / EXAMPLES) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, image=ds.images[i].astype(np.float16), label=ds.labels[i])
    atomic_write_text(out_dir / STATS, json.dumps(out, indent=1))
    return out


def evaluate(inputs: dict, out_dir: Path, deps: dict, runtime: dict) -> dict:
    """One released model (``runtime["model_path"]``) on the whole of one dataset."""
    from temshift.datasets import load_dataset
    from temshift.errors import CheckpointError
    from temshift.evaluation.evaluate import evaluate_model
    from temshift.io.atomic import atomic_write_text
    from temshift.models import load_published
    from temshift.models.runtime import set_threads
    from temshift.realism.plan import file_sha256

    set_threads(runtime.get("threads"))
    path = Path(runtime["model_path"])
    if file_sha256(path) != inputs["model_sha256"]:
        raise CheckpointError(f"{path}: changed since the benchmark was planned; run it again")
    ds = load_dataset(Path(deps["dataset"]) / DATASET)
    metrics = evaluate_model(load_published(path), ds.images, ds.labels, dihedral=inputs["dihedral"])
    atomic_write_text(out_dir / METRICS, json.dumps(metrics, indent=1))
    return metrics


def label_statistics(inputs: dict, out_dir: Path, deps: dict, runtime: dict) -> dict:
    """Particles per frame, area fraction and equivalent diameters of the labels of a repository."""
    import numpy as np
    from skimage.measure import label as connected
    from skimage.measure import regionprops

    from temshift.catalog import Catalog
    from temshift.io import read_label
    from temshift.io.atomic import atomic_write_text

    root = Path(deps["repo"]) / REPO
    cat = Catalog.read(root / "catalog.csv")
    frames = []
    for row in cat.records():
        mask = read_label(cat.label_path(row, root))
        regions = regionprops(connected(mask != 0, connectivity=2))
        px_nm = float(row["pixel_scale_nm"])
        diam = [float(r.equivalent_diameter_area) * px_nm for r in regions]
        frames.append(
            {
                "file": row["file"],
                "shape": list(mask.shape),
                "particles": len(regions),
                "area_fraction": float(np.mean(mask != 0)),
                "equivalent_diameters_nm": diam,
            }
        )
    atomic_write_text(out_dir / LABELS, json.dumps(frames, indent=1))
    return summarize_labels(frames)


def summarize_labels(frames: list[dict]) -> dict:
    """Median and range over frames of the particle count and area fraction; diameters pooled."""
    import numpy as np

    if not frames:
        return {"frames": 0}
    n = [f["particles"] for f in frames]
    a = [f["area_fraction"] for f in frames]
    d = [x for f in frames for x in f["equivalent_diameters_nm"]]
    out = {
        "frames": len(frames),
        "particles_median": float(np.median(n)),
        "particles_min": int(min(n)),
        "particles_max": int(max(n)),
        "area_fraction_median": float(np.median(a)),
        "area_fraction_min": float(min(a)),
        "area_fraction_max": float(max(a)),
        "particles_total": int(sum(n)),
    }
    if d:
        out.update(
            {
                "equivalent_diameter_nm_median": float(np.median(d)),
                "equivalent_diameter_nm_min": float(min(d)),
                "equivalent_diameter_nm_max": float(max(d)),
                "equivalent_diameter_nm_p10": float(np.percentile(d, 10)),
                "equivalent_diameter_nm_p90": float(np.percentile(d, 90)),
            }
        )
    return out


REGISTRY = {
    "repo": simulate_repo,
    "dataset": build,
    "stats": statistics,
    "evaluate": evaluate,
    "labels": label_statistics,
}
