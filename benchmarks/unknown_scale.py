"""Frames of unknown pixel scale (issue 11, point 4): lattice-fringe estimate vs test-time search vs assuming.

Synthetic frames of known scale (`temshift.simulate`, projection mode, 5 nm particles, seed 0,
frame keys ``unknown-scale/...``; the estimator's confidence threshold was chosen on other
frames, seed 777) at 0.02, 0.03, 0.04, 0.06 nm/px, Au and CdSe, 100 and 1000 e/A^2. Per frame:

* the estimate of `temshift.preprocess.scale_estimate.estimate_pixel_scale` with the material
  given and with it unknown (fcc Au assumed, what `predict` does without a catalog row);
* the generalist's hard dice (`predict_frame`, as `temshift predict` runs it) with the frame's
  true scale, with what `predict` does by default (the estimate, material unknown, when its
  confidence reaches `MIN_CONFIDENCE`, else the working scale), with the estimate from the given
  material, and assumed at the working scale (0.04 nm/px, frame not resampled);
* a test-time scale search: the frame predicted as if at each of 0.02, 0.03, 0.04, 0.06, 0.08
  nm/px, picking the scale whose probabilities are most decided (lowest mean binary entropy, a
  label-free criterion).

Then the estimator on the 20 real frames of ``../shared/data/real/tem_particles`` (no recorded
scale; nothing tuned on them) and, for information, the generalist's dice there as `predict`
runs it by default vs assumed at the working scale.

Usage: python benchmarks/unknown_scale.py [--model PATH] [--size 768] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
REAL = HERE.parents[1] / "shared" / "data" / "real" / "tem_particles"
SCALES_NM = (0.02, 0.03, 0.04, 0.06)
SEARCH_NM = (0.02, 0.03, 0.04, 0.06, 0.08)
MATERIALS = ("Au", "CdSe")
DOSES = (100.0, 1000.0)


def hard_dice(mask: np.ndarray, label: np.ndarray) -> float:
    import torch

    from temshift.models.metrics import dice_per_patch

    m, lab = (torch.from_numpy(np.asarray(a, np.uint8)[None]) for a in (mask, label))
    return float(dice_per_patch(m, lab)[0])


def mean_entropy_bits(prob: np.ndarray) -> float:
    p = np.clip(prob.astype(np.float64), 1e-6, 1 - 1e-6)
    return float(np.mean(-(p * np.log2(p) + (1 - p) * np.log2(1 - p))))


def used_scale(est, threshold: float) -> float | None:
    return est.pixel_scale_nm if est is not None and est.confidence >= threshold else None


def synthetic_rows(predictor, size_px: int) -> list[dict]:
    from temshift.predict.pipeline import predict_frame
    from temshift.preprocess.scale_estimate import MIN_CONFIDENCE, estimate_pixel_scale
    from temshift.simulate import FrameRequest, simulate_frame

    rows = []
    for material in MATERIALS:
        for scale in SCALES_NM:
            for dose in DOSES:
                req = FrameRequest(
                    material=material,
                    diameter_nm=5.0,
                    dose_e_per_A2=dose,
                    pixel_scale_nm=scale,
                    frame_size_px=size_px,
                    mode="projection",
                    seed=0,
                    frame_key=f"unknown-scale/{material}/{scale}/{dose:g}",
                    session_key=f"unknown-scale/{scale}",
                )
                sim = simulate_frame(req)
                t0 = time.process_time()
                est_given = estimate_pixel_scale(sim.counts, material)
                est_cpu = time.process_time() - t0
                est_unknown = estimate_pixel_scale(sim.counts)
                cache: dict = {}

                def seg(s, _raw=sim.counts, _cache=cache):
                    key = None if s is None else round(s, 6)
                    if key not in _cache:
                        _cache[key] = predict_frame(predictor, _raw, pixel_scale_nm=s)
                    return _cache[key]

                search = {s: mean_entropy_bits(seg(s).probabilities) for s in SEARCH_NM}
                picked = min(search, key=search.get)
                default_scale = used_scale(est_unknown, MIN_CONFIDENCE)
                given_scale = used_scale(est_given, MIN_CONFIDENCE)
                row = {
                    "material": material,
                    "pixel_scale_nm": scale,
                    "dose_e_per_A2": dose,
                    "particle_fraction": float(sim.label.mean()),
                    "est_given_nm": None if est_given is None else est_given.pixel_scale_nm,
                    "est_given_conf": None if est_given is None else est_given.confidence,
                    "est_given_reflection": None if est_given is None else est_given.reflection,
                    "est_unknown_nm": None if est_unknown is None else est_unknown.pixel_scale_nm,
                    "est_unknown_conf": None if est_unknown is None else est_unknown.confidence,
                    "estimate_cpu_s": est_cpu,
                    "dice_true": hard_dice(seg(scale).mask, sim.label),
                    "dice_default": hard_dice(seg(default_scale).mask, sim.label),
                    "dice_given": hard_dice(seg(given_scale).mask, sim.label),
                    "dice_assumed": hard_dice(seg(None).mask, sim.label),
                    "search_pick_nm": picked,
                    "dice_search": hard_dice(seg(picked).mask, sim.label),
                    "search_entropy_bits": search,
                }
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "search_entropy_bits"}), flush=True)
    return rows


def real_rows(predictor) -> list[dict]:
    from temshift.io import read_label
    from temshift.predict.pipeline import predict_frame
    from temshift.preprocess.scale_estimate import MIN_CONFIDENCE, estimate_pixel_scale
    from temshift.training.labelled_frames import pair_frames, read_image

    if not REAL.is_dir():
        return []
    rows = []
    for pair in pair_frames(REAL / "images", REAL / "labels"):
        raw, label = read_image(pair.image).data, read_label(pair.label)
        est = estimate_pixel_scale(raw)
        s = used_scale(est, MIN_CONFIDENCE)
        row = {
            "frame": pair.image.name,
            "estimate_nm": None if est is None else est.pixel_scale_nm,
            "confidence": None if est is None else est.confidence,
            "matched": None if est is None else list(est.matched),
            "used": s is not None,
            "dice_default": hard_dice(predict_frame(predictor, raw, pixel_scale_nm=s).mask, label),
            "dice_assumed": hard_dice(predict_frame(predictor, raw).mask, label),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _fmt(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def _err(est, true) -> str:
    return "None" if est is None else f"{est / true - 1:+.1%}"


def render(result: dict) -> str:
    from temshift.preprocess.scale_estimate import MIN_CONFIDENCE

    syn = result["synthetic"]
    lines = [
        "| material | nm/px | e/A2 | est. (material given) | conf | est. (unknown: Au) | conf | dice true "
        "| dice predict default | dice est. (given) | dice assumed 0.04 | search pick | dice search |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in syn:
        t = r["pixel_scale_nm"]
        lines.append(
            f"| {r['material']} | {t:g} | {r['dose_e_per_A2']:g} | {_err(r['est_given_nm'], t)} "
            f"| {_fmt(r['est_given_conf'], '.2f')} | {_err(r['est_unknown_nm'], t)} "
            f"| {_fmt(r['est_unknown_conf'], '.2f')} | {r['dice_true']:.3f} | {r['dice_default']:.3f} "
            f"| {r['dice_given']:.3f} | {r['dice_assumed']:.3f} | {r['search_pick_nm']:g} | {r['dice_search']:.3f} |"
        )

    def mean(key, rows=syn):
        return float(np.mean([r[key] for r in rows])) if rows else float("nan")

    def within(key, rel, rows=syn):
        return sum(
            r[key] is not None
            and (r[key.replace("_nm", "_conf")] or 0) >= MIN_CONFIDENCE
            and abs(r[key] / r["pixel_scale_nm"] - 1) <= rel
            for r in rows
        )

    lines += [""]
    for mat in (None, *MATERIALS):
        rows = [r for r in syn if mat is None or r["material"] == mat]
        name = mat or "all"
        lines.append(
            f"- {name} ({len(rows)} frames): mean hard dice true scale {mean('dice_true', rows):.3f}, predict default "
            f"{mean('dice_default', rows):.3f}, estimate with material given {mean('dice_given', rows):.3f}, assumed "
            f"0.04 {mean('dice_assumed', rows):.3f}, entropy search {mean('dice_search', rows):.3f}; confident "
            f"estimates within 3 % (given / unknown): {within('est_given_nm', 0.03, rows)} / "
            f"{within('est_unknown_nm', 0.03, rows)}; search picked the true scale "
            f"{sum(r['search_pick_nm'] == r['pixel_scale_nm'] for r in rows)} times"
        )
    cpu = [r["estimate_cpu_s"] for r in syn]
    lines.append(f"- estimate CPU time per frame ({result['size_px']} px): median {np.median(cpu):.2f} s")
    real = result["real"]
    if real:
        lines += [
            "",
            f"Real frames ({len(real)}, no recorded scale): an estimate for "
            f"{sum(r['estimate_nm'] is not None for r in real)}, confident (>= {MIN_CONFIDENCE}) for "
            f"{sum(r['used'] for r in real)}; generalist mean hard dice as predict runs it "
            f"{mean('dice_default', real):.3f} vs assumed at 0.04 {mean('dice_assumed', real):.3f}.",
            "",
            "| frame | estimate nm/px | confidence | used | matched peaks | dice default | dice assumed |",
            "|---|---:|---:|---|---|---:|---:|",
        ]
        for r in real:
            lines.append(
                f"| {r['frame']} | {_fmt(r['estimate_nm'], '.4f')} | {_fmt(r['confidence'], '.2f')} | "
                f"{'yes' if r['used'] else 'no'} | {'; '.join(r['matched'] or []) or '-'} | "
                f"{r['dice_default']:.3f} | {r['dice_assumed']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="Checkpoint (default: the shipped generalist).")
    ap.add_argument("--size", type=int, default=768, help="Frame edge, pixels.")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch

    from temshift.predict.pipeline import load_predictor

    torch.set_num_threads(1)
    if args.model is None:
        from temshift.models.pretrained import pretrained_path

        args.model = pretrained_path("generalist")
    if not args.model.is_file():
        print(f"model {args.model} not found: skipped")
        return
    predictor = load_predictor(args.model)
    t0, c0 = time.perf_counter(), time.process_time()
    result = {"model": str(args.model), "size_px": args.size, "synthetic": synthetic_rows(predictor, args.size)}
    result["real"] = real_rows(predictor)
    result["seconds"], result["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(render(result))
    print(f"\n{result['seconds']:.0f} s wall, {result['cpu_seconds']:.0f} s CPU")


if __name__ == "__main__":
    main()
