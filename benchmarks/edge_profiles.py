"""Where a model draws a particle's edge: profiles across the label boundary (issue 11 diagnosis).

For every pixel near a particle, its signed distance to the label's boundary (pixels of the
model input; negative inside the label) is binned; per bin the median over frames of

* the image, smoothed (Gaussian, 1 px) and normalised so that 0 is the background (pixels
  more than 20 px outside any label) and 1 the particle core (more than 10 px inside);
* the model's particle probability.

Three cases:

1. ``real``: the shipped generalist on the 20 real frames of ``../shared/data/real/tem_particles``
   (as ``temshift predict generalist FRAME`` runs it; hand labels; nothing tuned on them);
2. ``synthetic``: the generalist on frames of its own training domain (`temshift.training.domain`,
   seed 99, not the training seed 0), narrowed to Au and Ag spheres of 3-8 nm at 0.05-0.08 nm/px;
   the label is the exact projected footprint;
2b. ``blurred``: as ``synthetic``, with the noise-free image blurred by a Gaussian of ``--blur-A``
   (default 2 A, 1 sigma; like drift or vibration during the exposure) before the camera: does the
   generalist follow the physical footprint or the visible dark region when edges are soft?
3. ``released``: a real-data model of the paper (5 nm Au, 330 kx, 423 e/A^2, fold 0, trained on
   the authors' hand labels) on simulated 5 nm Au and Ag frames at its own 0.02 nm/px and near its
   training dose (300-600 e/A^2, the rest of the domain's draws unchanged): where the
   paper's annotators put the edge relative to the physical footprint, as their model learned it.

4. ``released-sets`` (not in the default cases): every released fold of every released set in
   ``../shared/data/published`` on simulated 5 nm Au frames at that set's own pixel scale and
   dose (x0.8-1.25), frames shared by a set's folds: the authors' outline convention measured
   without the other lab's frames, per set and fold, in px and nm.
5. ``released-real`` (not in the default cases): fold 0 of every released set on the 20 real
   frames, frame resampled by each of ``--factors`` as `benchmarks/sim2real.py` does (no noise
   restoration); edge in pixels of the real frame, beside the model's dice and its predicted /
   labelled area (median over frames): do models trained on the paper's hand labels draw this
   lab's outlines on real frames?

Reported per case: the distance where the probability crosses 0.5 (the model's edge) and where
the image crosses 0.5 (half contrast), both relative to the label's boundary.

Usage: python benchmarks/edge_profiles.py [--cases real synthetic blurred released released-sets released-real]
       [--frames 10] [--factors 1 2] [--json PATH] [--figure PNG] [--write]
Skips (exit 0) when the real data are absent.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
REAL = SHARED / "real" / "tem_particles"
RELEASED = SHARED / "published" / "UNet_5nmAu330kX423eUTC_fold0_seed962_model.h5"
RESULTS = HERE / "RESULTS.md"
BINS_PX = np.arange(-16, 17)
SYN_SEED = 99


def signed_distance_px(label: np.ndarray) -> np.ndarray:
    """Signed distance of each pixel centre to the label boundary, px (negative inside)."""
    from scipy import ndimage as ndi

    inside = ndi.distance_transform_edt(label)
    outside = ndi.distance_transform_edt(1 - label)
    return np.where(label > 0, 0.5 - inside, outside - 0.5)


def frame_profile(image: np.ndarray, prob: np.ndarray, label: np.ndarray) -> dict[int, tuple[float, float]]:
    """Mean normalised image and probability per distance bin of one frame."""
    from scipy import ndimage as ndi

    d = np.rint(signed_distance_px(label)).astype(int)
    img = ndi.gaussian_filter(image.astype(np.float64), 1.0)
    far, core = d > 20, d < -10
    if not far.any() or not core.any():
        return {}
    norm = (img - img[far].mean()) / (img[core].mean() - img[far].mean())
    return {int(b): (float(norm[d == b].mean()), float(prob[d == b].mean())) for b in BINS_PX if (d == b).any()}


def median_profile(profiles: list[dict]) -> dict:
    """Median over frames per bin, and the two 0.5 crossings (linear interpolation)."""
    image, prob = [], []
    for b in BINS_PX:
        vals = np.array([p[int(b)] for p in profiles if int(b) in p])
        image.append(float(np.median(vals[:, 0])) if len(vals) else float("nan"))
        prob.append(float(np.median(vals[:, 1])) if len(vals) else float("nan"))
    return {
        "distance_px": BINS_PX.tolist(),
        "image": image,
        "probability": prob,
        "model_edge_px": crossing(prob),
        "half_contrast_px": crossing(image),
        "frames": len(profiles),
    }


def crossing(values, level: float = 0.5) -> float | None:
    """First distance, going outward from the core, where `values` falls below `level`."""
    v = np.asarray(values, float)
    for i in range(1, len(v)):
        if v[i - 1] >= level > v[i]:
            return float(BINS_PX[i - 1] + (v[i - 1] - level) / (v[i - 1] - v[i]))
    return None


def case_real(predictor) -> dict:
    from sim2real import load_frames

    from temshift.predict.pipeline import predict_frame

    _, frames, labels = load_frames(REAL)
    profiles = []
    for frame, label in zip(frames, labels):
        seg = predict_frame(predictor, frame)
        profiles.append(frame_profile(seg.model_input, seg.probabilities, label))
    return median_profile(profiles)


def synthetic_frames(
    n_frames: int, *, pixel_scale_nm, diameter_nm, working_nm, frame_px, dose_e_per_A2=None, materials=("Au", "Ag")
):
    """(draw, simulated frame) pairs of the generalist's domain, narrowed to the given ranges (seed 99)."""
    from temshift.simulate.micrograph import simulate_frame
    from temshift.training.domain import PretrainRanges, draw_frame, frame_request

    ranges = PretrainRanges(
        materials=list(materials),
        shapes=["Sphere"],
        diameter_nm_log=diameter_nm,
        pixel_scale_nm_log=pixel_scale_nm,
        **({"dose_e_per_A2_log": dose_e_per_A2} if dose_e_per_A2 else {}),
    )
    for index in range(n_frames):
        draw = draw_frame(ranges, SYN_SEED, index, working_pixel_scale_nm=working_nm, working_frame_px=frame_px)
        print(f"  frame {index}: {draw.material} {draw.diameter_nm:.1f} nm, defocus {draw.defocus_A:.0f} A", flush=True)
        yield draw, simulate_frame(frame_request(draw))


def on_grid(prob: np.ndarray, shape) -> np.ndarray:
    """`prob` on a grid of `shape` (resampled when the model ran at another scale)."""
    from temshift.preprocess.scale import resample_to_shape

    return prob if prob.shape == tuple(shape) else resample_to_shape(prob, shape)


def synthetic_profile(predictor, draw, sim) -> dict:
    """Edge profile of one model on one simulated frame, against its exact footprint label."""
    from temshift.predict.pipeline import predict_frame
    from temshift.preprocess.scale import resample_to_shape

    seg = predict_frame(predictor, sim.counts, pixel_scale_nm=draw.pixel_scale_nm)
    label = (resample_to_shape(sim.label.astype(np.float32), seg.model_input.shape) >= 0.5).astype(np.uint8)
    return frame_profile(seg.model_input, on_grid(seg.probabilities, label.shape), label)


def case_synthetic(predictor, n_frames: int, **ranges) -> dict:
    return median_profile([synthetic_profile(predictor, d, sim) for d, sim in synthetic_frames(n_frames, **ranges)])


def case_released_sets(n_frames: int) -> dict:
    """Every released fold on simulated 5 nm Au frames of its own set's pixel scale and dose.

    Where the paper's annotators put a particle's edge, as each model learned it from their
    hand labels, measured against the physical footprint: a measurement of the labelling
    convention that does not use the other lab's 20 frames. Frames are shared by a set's folds.
    """
    from temshift.predict.pipeline import load_predictor
    from temshift.realism.training_sets import read_training_sets

    out = {}
    for ts in read_training_sets(SHARED / "published"):  # the realism benchmark's reading of the table
        name, px, dose = ts.name, ts.pixel_scale_nm, ts.dose_e_per_A2
        print(f" {name} ({px} nm/px, {dose:g} e/A^2)", flush=True)
        frames = list(
            synthetic_frames(
                n_frames,
                pixel_scale_nm=(px * 0.995, px * 1.005),
                diameter_nm=(4.5, 5.5),
                working_nm=px,
                frame_px=1024,
                dose_e_per_A2=(dose * 0.8, dose * 1.25),
                materials=("Au",),
            )
        )
        folds = []
        for _fold, path in ts.models:
            predictor = load_predictor(path)
            c = median_profile([synthetic_profile(predictor, d, sim) for d, sim in frames])
            folds.append(
                {"file": path.name, "model_edge_px": c["model_edge_px"], "half_contrast_px": c["half_contrast_px"]}
            )
        edges = [f["model_edge_px"] for f in folds if f["model_edge_px"] is not None]
        out[name] = {
            "pixel_scale_nm": px,
            "dose_e_per_A2": dose,
            "folds": folds,
            "model_edge_px_median": float(np.median(edges)) if edges else None,
            "model_edge_nm_median": float(np.median(edges)) * px if edges else None,
            "half_contrast_px": folds[0]["half_contrast_px"] if folds else None,
        }
    return out


def released_sets_markdown(sets: dict) -> str:
    lines = [
        "| released set | nm/px | e/Å² | model edge per fold, px from footprint | median, px | median, nm "
        "| half contrast, px |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for name, c in sets.items():
        per_fold = ", ".join(fmt(f["model_edge_px"]) for f in c["folds"])
        nm = "-" if c["model_edge_nm_median"] is None else f"{c['model_edge_nm_median']:+.3f}"
        lines.append(
            f"| {name} | {c['pixel_scale_nm']:g} | {c['dose_e_per_A2']:g} | {per_fold} | "
            f"{fmt(c['model_edge_px_median'])} | {nm} | {fmt(c['half_contrast_px'])} |"
        )
    return "\n".join(lines) + "\n"


def case_released_real(factors) -> dict:
    """Fold 0 of every released set on the real frames: edge (frame px), dice, area ratio."""
    from sim2real import _released_models, hard_dice, load_frames

    from temshift.predict.pipeline import load_predictor, predict_frame

    _, frames, labels = load_frames(REAL)
    rows = []
    for zset, _m, path in _released_models([0]):
        predictor = load_predictor(path)
        for factor in factors:
            profiles, ratios, dice = [], [], []
            for frame, label in zip(frames, labels):
                seg = predict_frame(
                    predictor, frame, pixel_scale_nm=predictor.pixel_scale_nm * factor, match_noise=False
                )
                profiles.append(frame_profile(frame, on_grid(seg.probabilities, label.shape), label))
                ratios.append(float(seg.mask.sum()) / max(int(label.sum()), 1))
                dice.append(hard_dice(seg.mask, label))
            c = median_profile(profiles)
            rows.append(
                {
                    "set": zset.name,
                    "factor": factor,
                    "dice": float(np.mean(dice)),
                    "area_ratio_median": float(np.median(ratios)),
                    "model_edge_px": c["model_edge_px"],
                    "half_contrast_px": c["half_contrast_px"],
                }
            )
            print(
                f"  {zset.name} x{factor:g}: edge {fmt(c['model_edge_px'])} px, dice {rows[-1]['dice']:.3f}", flush=True
            )
    return {"rows": rows}


def released_real_markdown(res: dict) -> str:
    lines = [
        "| released set (fold 0) | factor | mean hard dice | predicted / labelled area (median) "
        "| model edge, frame px from label |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['set']} | {r['factor']:g} | {r['dice']:.3f} | {r['area_ratio_median']:.2f} "
            f"| {fmt(r['model_edge_px'])} |"
        )
    edges = [r["model_edge_px"] for r in res["rows"] if r["model_edge_px"] is not None]
    if edges:
        lines += [
            "",
            f"Median edge over the {len(edges)} rows: {np.median(edges):+.1f} px "
            f"(range {min(edges):+.1f} to {max(edges):+.1f}).",
        ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def blurred_images(sigma_A: float):
    """Blur every simulated frame's noise-free intensity (Gaussian, `sigma_A`) before the camera."""
    from scipy import ndimage as ndi

    import temshift.simulate.micrograph as micrograph

    plain = micrograph.integrate_pixels

    def integrate_and_blur(intensity_f, s_f, px_A):
        return ndi.gaussian_filter(plain(intensity_f, s_f, px_A), sigma_A / px_A, mode="wrap")

    micrograph.integrate_pixels = integrate_and_blur
    try:
        yield
    finally:
        micrograph.integrate_pixels = plain


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = result["cases"]
    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 3.6), sharey=True)
    for ax, (name, c) in zip(np.atleast_1d(axes), cases.items()):
        ax.plot(c["distance_px"], c["image"], "k-", label="image (0 bg, 1 core)")
        ax.plot(c["distance_px"], c["probability"], "r-", label="model probability")
        ax.axvline(0, color="g", lw=1, label="label boundary")
        ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
        ax.set_title(f"{name} ({c['model'][:24]}): model edge {fmt(c['model_edge_px'])} px", fontsize=9)
        ax.set_xlabel("signed distance to label boundary (px, + outside)")
    np.atleast_1d(axes)[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Edge profiles, {result['date']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def fmt(x) -> str:
    return "-" if x is None else f"{x:+.1f}"


def markdown(result: dict) -> str:
    lines = [
        f"### {result['date']}: `{result['command']}`",
        "",
        "| case | model | frames | model edge (p = 0.5), px from label | half contrast, px from label |",
        "|---|---|---:|---:|---:|",
    ]
    for name, c in result["cases"].items():
        lines.append(
            f"| {name} | {c['model']} | {c['frames']} | {fmt(c['model_edge_px'])} | {fmt(c['half_contrast_px'])} |"
        )
    lines += ["", "| distance px | " + " | ".join(f"{n} image / p" for n in result["cases"]) + " |"]
    lines.append("|---:|" + "---|" * len(result["cases"]))
    for i, b in enumerate(BINS_PX):
        if b % 2:
            continue
        cells = [f"{c['image'][i]:.2f} / {c['probability'][i]:.2f}" for c in result["cases"].values()]
        lines.append(f"| {b:+d} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10, help="Synthetic frames per synthetic case.")
    ap.add_argument("--cases", nargs="+", default=["real", "synthetic", "blurred", "released"])
    ap.add_argument("--blur-A", type=float, default=2.0, help="Blur of the 'blurred' case, A (1 sigma).")
    ap.add_argument(
        "--factors", nargs="+", type=float, default=[1.0, 2.0], help="Resampling factors of 'released-real'."
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--write", action="store_true", help="Append the section to benchmarks/RESULTS.md.")
    args = ap.parse_args(argv)
    if not REAL.is_dir():
        print(f"skipped: {REAL} not found")
        return 0
    import torch

    torch.set_num_threads(1)
    released_all: dict | None = None
    released_real: dict | None = None
    sys.path.insert(0, str(HERE))
    from temshift.models.pretrained import pretrained_path
    from temshift.predict.pipeline import load_predictor

    generalist = load_predictor(pretrained_path("generalist"))
    cases: dict[str, dict] = {}
    for name in args.cases:
        print(f"{name} ...", flush=True)
        if name == "real":
            cases[name] = {"model": "generalist", **case_real(generalist)}
        elif name in ("synthetic", "blurred"):
            with blurred_images(args.blur_A) if name == "blurred" else contextlib.nullcontext():
                c = case_synthetic(
                    generalist,
                    args.frames,
                    pixel_scale_nm=(0.05, 0.08),
                    diameter_nm=(3.0, 8.0),
                    working_nm=0.04,
                    frame_px=512,
                )
            cases[name] = {"model": "generalist", **c}
        elif name == "released-sets":
            released_all = case_released_sets(args.frames)
            continue
        elif name == "released-real":
            released_real = case_released_real(args.factors)
            continue
        elif name == "released":
            c = case_synthetic(
                load_predictor(RELEASED),
                args.frames,
                pixel_scale_nm=(0.0199, 0.0201),
                diameter_nm=(4.5, 5.5),
                working_nm=0.02,
                frame_px=1024,
                dose_e_per_A2=(300.0, 600.0),
            )
            cases[name] = {"model": RELEASED.name, **c}
        else:
            ap.error(f"unknown case {name!r}")
    result = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/edge_profiles.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cases": cases,
    }
    if released_all is not None:
        result["released_sets"] = released_all
    if released_real is not None:
        result["released_real"] = released_real
    text = markdown(result) if cases else ""
    if released_all is not None:
        text += "\n" + released_sets_markdown(released_all)
    if released_real is not None:
        text += "\n" + released_real_markdown(released_real)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.figure and cases:
        figure(result, args.figure)
    if args.write:
        with RESULTS.open("a") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
