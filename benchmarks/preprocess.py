"""Benchmark: the per-frame preprocessing pipeline vs a straightforward implementation.

Both run the published method (PROTOCOL.md steps 1-4: x-rays, flat field, standardize,
patches) on a 4096 x 4096 frame of Poisson counts under a tilted illumination with a few
x-ray spikes (isolated and clustered). The baseline is written here the obvious way: a
full-resolution (H*W, 9) float64 basis, image and basis downscaled with scikit-image,
``numpy.linalg.lstsq``, and a Python loop over the outlier pixels.

Time: median wall time (time.perf_counter) and median CPU time of the process
(time.process_time, all threads) of ``--repeat`` runs, baseline and temshift alternating in
one process so both see the same machine load. On a shared, busy machine the CPU time is
the steadier figure: wall time of a 0.1 s call suffers more from preemption than a 5 s one.
Peak memory: ``tracemalloc`` peak of one extra run of each (numpy reports its buffers to
tracemalloc), i.e. memory allocated by the call on top of the input frame and mask.

Usage: ``python benchmarks/preprocess.py [--size 4096] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from temshift.preprocess import PreprocessSettings, extract_patches, min_particle_pixels, preprocess_frame


# ---------------------------------------------------------------- test frame
def make_frame(size: int, seed: int = 0):
    """Counts (~300 e/pixel) x tilted illumination, particles, x-ray spikes; plus a mask."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, size, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, size, dtype=np.float32)[None, :]
    illum = 1.0 + 0.35 * x - 0.25 * y + 0.15 * x * y - 0.2 * (x - 0.5) ** 2
    mask = np.zeros((size, size), np.uint8)
    yy, xx = np.ogrid[:size, :size]
    for _ in range(12):
        cy, cx, r = rng.integers(0, size), rng.integers(0, size), rng.integers(size // 60, size // 25)
        sl = (slice(max(cy - r, 0), cy + r), slice(max(cx - r, 0), cx + r))
        mask[sl] |= ((yy[sl[0]] - cy) ** 2 + (xx[:, sl[1]] - cx) ** 2 <= r * r).astype(np.uint8)
    mean = 300.0 * illum * (1.0 - 0.3 * mask)
    frame = rng.poisson(mean).astype(np.float32)
    for _ in range(40):  # isolated spikes, some on the border
        frame[rng.integers(0, size), rng.integers(0, size)] += rng.uniform(3000, 20000)
    for _ in range(5):  # small clusters (a track)
        r, c = rng.integers(1, size - 4), rng.integers(1, size - 4)
        frame[r : r + 2, c : c + 3] += rng.uniform(3000, 20000, (2, 3)).astype(np.float32)
    return frame, mask


# ---------------------------------------------------------------- baseline
def baseline(frame, mask, threshold=1500.0, patch_size=512):
    """Straightforward implementation of the same protocol (float64 throughout)."""
    from skimage.transform import downscale_local_mean

    img = frame.astype(np.float64)
    img[img < 0] = 0
    h, w = img.shape
    limit = np.median(img) + threshold
    image_mean = img.mean()
    for _ in range(2):
        rr, cc = np.nonzero(img > limit)
        if rr.size == 0:
            break
        order = np.argsort(-img[rr, cc], kind="stable")
        for k in order:  # brightest first, one pixel at a time
            r, c = rr[k], cc[k]
            if r == 0 or c == 0 or r == h - 1 or c == w - 1:
                img[r, c] = image_mean
            else:
                win = img[r - 1 : r + 2, c - 1 : c + 2]
                img[r, c] = (win.sum() - win[1, 1]) / 8.0

    def bern(t):
        return [(1 - t) ** 2, 2 * t * (1 - t), t**2]

    ty, tx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    basis = np.empty((h, w, 9))
    for a, by in enumerate(bern(ty)):
        for b, bx in enumerate(bern(tx)):
            basis[:, :, 3 * a + b] = by * bx
    del ty, tx
    small = downscale_local_mean(img, (4, 4)).reshape(-1)
    small_basis = downscale_local_mean(basis, (4, 4, 1)).reshape(-1, 9)
    weights = np.ones_like(small)
    for _it in range(2):
        sw = np.sqrt(weights)
        coef = np.linalg.lstsq(small_basis * sw[:, None], small * sw, rcond=None)[0]
        e = (small_basis @ coef - small) ** 2
        weights = np.exp(-3 * e / (2 * e.mean()))
    background = (basis.reshape(-1, 9) @ coef).reshape(h, w)
    del basis
    corrected = img / background
    out = (corrected - corrected.mean()) / corrected.std()
    patches, labels, coords = [], [], []
    for r in range(0, h - patch_size + 1, patch_size):
        for c in range(0, w - patch_size + 1, patch_size):
            lab = mask[r : r + patch_size, c : c + patch_size]
            if np.count_nonzero(lab) > min_particle_pixels(patch_size):
                patches.append(out[r : r + patch_size, c : c + patch_size])
                labels.append(lab)
                coords.append((r, c))
    return out, np.array(patches), np.array(labels), np.array(coords), background


# ---------------------------------------------------------------- temshift
def ours(frame, mask, patch_size=512):
    out = preprocess_frame(frame, PreprocessSettings())
    patches, labels, coords = extract_patches(out, mask, patch_size)
    return out, patches, labels, coords


def _time(fn, *args):
    t, c = time.perf_counter(), time.process_time()
    res = fn(*args)
    return (time.perf_counter() - t, time.process_time() - c), res


def _peak(fn, *args):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096, help="frame side in pixels")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each (median reported)")
    args = ap.parse_args(argv)

    frame, mask = make_frame(args.size)
    t_base, t_ours = [], []
    for _ in range(args.repeat):
        dt, res_base = _time(baseline, frame, mask)
        t_base.append(dt)
        dt, res_ours = _time(ours, frame, mask)
        t_ours.append(dt)
    m_base = _peak(baseline, frame, mask)
    m_ours = _peak(ours, frame, mask)

    out_b, patches_b, labels_b, coords_b, _ = res_base
    out_o, patches_o, labels_o, coords_o = res_ours
    # standardized outputs have std 1, so an absolute difference is relative to the data scale
    max_diff = float(np.max(np.abs(out_o.astype(np.float64) - out_b)) / out_b.std())
    same_patches = np.array_equal(coords_b, coords_o) and np.array_equal(labels_b, labels_o)
    patch_diff = float(np.max(np.abs(patches_o - patches_b))) if same_patches and len(patches_b) else float("nan")

    tb, to = statistics.median(t[0] for t in t_base), statistics.median(t[0] for t in t_ours)
    cb, co = statistics.median(t[1] for t in t_base), statistics.median(t[1] for t in t_ours)
    print(f"frame {args.size}x{args.size}, {args.repeat} runs each, medians")
    print(f"  baseline : wall {tb:8.3f} s  cpu {cb:8.3f} s  peak {m_base / 2**20:8.1f} MiB (tracemalloc)")
    print(f"  temshift : wall {to:8.3f} s  cpu {co:8.3f} s  peak {m_ours / 2**20:8.1f} MiB (tracemalloc)")
    per_run = ", ".join(f"{b[0] / o[0]:.0f}" for b, o in zip(t_base, t_ours))
    print(f"  speed-up : wall {tb / to:8.1f} x  cpu {cb / co:6.1f} x   (per-run wall ratios: {per_run})")
    print(f"  memory   : {m_ours / m_base:8.4f} of baseline (1/{m_base / m_ours:.1f})")
    print(
        f"  max |ours - baseline| / std(baseline) = {max_diff:.2e}; patches identical coords/labels: {same_patches}, "
        f"max patch diff {patch_diff:.2e}; {len(patches_o)} patches kept"
    )
    ok = min(tb / to, cb / co) >= 50 and m_ours <= m_base / 10 and max_diff <= 1e-3 and same_patches
    print(
        "  target (>= 50x faster in wall and CPU time, <= 1/10 memory, <= 1e-3 difference):", "MET" if ok else "MISSED"
    )


if __name__ == "__main__":
    main()
