"""Training and inference throughput of temshift's residual U-Net on CPU (patches/s).

(a) reference: bare model forward + backward + Adam step on preloaded tensors, eager fp32;
(b) temshift's full training step: batch assembly from patches (dihedral variant), 50 %
    flip + rotation with background-median fill, Gaussian noise, forward/backward/step and
    metric bookkeeping (`temshift.training.trainer.train_epoch`);
plus inference (eval mode, no grad) and speed options: threads, channels-last, bf16 autocast,
torch.compile. Variants are measured in interleaved rounds and the median is reported, so
ratios within one run are comparable even on a shared machine.

Usage: python benchmarks/train.py [--sizes 256 512] [--batch 8] [--rounds 3] [--steps 3]
       [--threads 1 [2]] [--compile] [--no-accuracy] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from temshift.models import UNet
from temshift.models.runtime import set_threads
from temshift.training import TrainSettings
from temshift.training.data import PatchSet, expand
from temshift.training.trainer import train_epoch

RESULTS = Path(__file__).with_name("RESULTS.md")


def synthetic(n, size, seed=0):
    """Noisy patches with fringed discs (values standardized) and their labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    images = rng.normal(0, 1, (n, size, size)).astype(np.float32)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        for _ in range(6):
            cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(size / 40, size / 12)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            labels[i][disc] = 1
            images[i][disc] += np.cos(xx[disc] * 1.7)
    return images, labels


def _model(channels_last):
    model = UNet(generator=torch.Generator().manual_seed(0))
    return model.to(memory_format=torch.channels_last) if channels_last else model


def bare_step_fn(size, batch, channels_last=False, bf16=False, compile_=False):
    """A closure doing one bare training step on preloaded tensors."""
    model = _model(channels_last)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.randn(batch, 1, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch, size, size))
    cast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def step():
        with cast():
            logits = net(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def full_step_fn(size, batch, steps, channels_last=False, bf16=False):
    """A closure running `steps` temshift training steps (data, augmentation, noise, step, metrics)."""
    images, labels = synthetic(max(4, batch // 2), size)
    pairs = expand(np.arange(len(images)), 9201)
    pairs = np.resize(pairs, (steps * batch, 2))
    data = PatchSet(images, labels, pairs)
    settings = TrainSettings(
        batch_size=batch, noise_rho_max=1.0, channels_last=channels_last, bf16=bf16, progress=False
    )
    model = _model(channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    epoch = iter(range(1, 10**6))

    def run():
        train_epoch(model, opt, data, settings, 962, next(epoch), torch.device("cpu"))

    return run


def infer_fn(size, batch, channels_last=False, bf16=False):
    model = _model(channels_last).eval()
    x = torch.randn(batch, 1, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    cast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def run():
        with torch.no_grad(), cast():
            model(x)

    return run


def measure(variants: dict, rounds: int, per_call: int, warmup=1) -> dict:
    """Median patches/s of each variant; variants interleaved round by round."""
    times = {k: [] for k in variants}
    for fn, _threads in variants.values():
        set_threads(_threads)
        for _ in range(warmup):
            fn()
    for _ in range(rounds):
        for name, (fn, threads) in variants.items():
            set_threads(threads)
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: per_call / statistics.median(v) for k, v in times.items()}


def fringed_discs(n, size, seed):
    """Easy, learnable patches: 1-3 discs with lattice fringes on noise (as in the tests)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    images = np.empty((n, size, size), np.float32)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        img = rng.normal(0, 0.6, (size, size)).astype(np.float32)
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(8, size - 8, 2)
            r, angle = rng.uniform(5, 11), rng.uniform(0, np.pi)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            fringes = np.cos(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / 3.5)
            img = np.where(disc, img - 0.6 + 0.9 * fringes, img)
            labels[i][disc] = 1
        images[i] = (img - img.mean()) / img.std()
    return images, labels


def accuracy_check(threads):
    """Train the same small task in fp32 and in bf16 autocast + channels-last; compare test metrics."""
    from temshift.evaluation import evaluate_model
    from temshift.training import Segmenter

    set_threads(threads)
    images, labels = fringed_discs(32, 64, seed=1)
    test_x, test_y = fringed_discs(16, 64, seed=2)
    out = {}
    for fast in (False, True):
        seg = Segmenter(epochs=7, batch_size=16, learning_rate=1e-2, bf16=fast, channels_last=fast, progress=False).fit(
            images, labels
        )
        m = evaluate_model(seg.model, test_x, test_y, bf16=fast)
        out["bf16" if fast else "fp32"] = (m["hard_dice"], m["ce"])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2, help="training steps per timed call")
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1],
        help="torch thread counts to compare; the first one is the reference's",
    )
    ap.add_argument("--compile", action="store_true", help="also try torch.compile (minutes of warm-up here)")
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--write", action="store_true", help="update the section in benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    b, s = args.batch, args.steps
    lines = []
    for size in args.sizes:

        def loop(step, k=s):
            def run():
                for _ in range(k):
                    step()

            return run

        variants = {}
        for t in args.threads:
            tt = f"{t} thread{'s' if t > 1 else ''}"
            variants.update(
                {
                    f"(a) eager fp32, {tt}": (loop(bare_step_fn(size, b)), t),
                    f"(a) channels-last fp32, {tt}": (loop(bare_step_fn(size, b, channels_last=True)), t),
                    f"(a) bf16 autocast, {tt}": (loop(bare_step_fn(size, b, bf16=True)), t),
                    f"(a) bf16 + channels-last, {tt}": (loop(bare_step_fn(size, b, True, True)), t),
                    f"(b) temshift full step fp32, {tt}": (full_step_fn(size, b, s), t),
                    f"(b) temshift full step bf16 + channels-last, {tt}": (full_step_fn(size, b, s, True, True), t),
                }
            )
        if args.compile:
            try:
                t0 = time.perf_counter()
                fn = bare_step_fn(size, b, compile_=True)
                set_threads(args.threads[0])
                fn()
                print(f"torch.compile warm-up {time.perf_counter() - t0:.0f} s", file=sys.stderr)
                variants[f"(a) torch.compile fp32, {args.threads[0]} threads"] = (loop(fn), args.threads[0])
            except Exception as exc:  # noqa: BLE001  (no compiler / inductor failure)
                print(f"torch.compile unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
        train = measure(variants, args.rounds, s * b)
        infer = {}
        for t in args.threads:
            tt = f"{t} thread{'s' if t > 1 else ''}"
            infer.update(
                {
                    f"inference fp32, {tt}": (infer_fn(size, b), t),
                    f"inference channels-last fp32, {tt}": (infer_fn(size, b, channels_last=True), t),
                    f"inference bf16 + channels-last, {tt}": (infer_fn(size, b, True, True), t),
                }
            )
        infer = measure(infer, args.rounds, b)
        t0 = args.threads[0]
        ref_name = f"(a) eager fp32, {t0} thread{'s' if t0 > 1 else ''}"
        ref = train[ref_name]
        first = len(lines)
        lines.append(
            f"\n{size} x {size} px, batch {b}: patches/s (median of {args.rounds} interleaved rounds) "
            f"and ratio to the reference = {ref_name}:\n"
        )
        lines.append("| variant | patches/s | ratio |\n|---|---:|---:|")
        for name, value in {**train, **infer}.items():
            lines.append(f"| {name} | {value:.2f} | {value / ref:.2f} |")
        lines.append("")
        for t in args.threads:
            tt = f"{t} thread{'s' if t > 1 else ''}"
            a32, b32 = train[f"(a) eager fp32, {tt}"], train[f"(b) temshift full step fp32, {tt}"]
            abf = train[f"(a) bf16 + channels-last, {tt}"]
            bbf = train[f"(b) temshift full step bf16 + channels-last, {tt}"]
            lines.append(
                f"- {tt}: (b)/(a) fp32 {b32 / a32:.2f}; (b)/(a) bf16 + channels-last {bbf / abf:.2f}; "
                f"temshift full step bf16 + channels-last / eager fp32 reference of the same threads "
                f"{bbf / a32:.2f}"
            )
        print("\n".join(lines[first:]), flush=True)
    if not args.no_accuracy:
        acc = accuracy_check(args.threads[0])
        lines.append(
            f"\nAccuracy check (64 px fringed discs, 7 epochs, same seed; test hard dice / CE): "
            f"fp32 {acc['fp32'][0]:.3f} / {acc['fp32'][1]:.4f}, bf16 autocast + channels-last "
            f"{acc['bf16'][0]:.3f} / {acc['bf16'][1]:.4f}"
        )
        print(lines[-1])
    if args.write:
        write_section("\n".join(lines), argv)


def write_section(body: str, argv) -> None:
    """Replace the body of the '## Training and inference' section of RESULTS.md."""
    text = RESULTS.read_text()
    head = "## Training and inference (`benchmarks/train.py`)"
    start = text.index(head) + len(head)
    nxt = text.find("\n## ", start)
    nxt = len(text) if nxt < 0 else nxt
    cmd = "python benchmarks/train.py " + " ".join(argv if argv is not None else sys.argv[1:])
    date = datetime.date.today().isoformat()
    section = f"\n\n{date}, `{cmd.strip()}`, torch {torch.__version__}.\n{body}\n"
    RESULTS.write_text(text[:start] + section + text[nxt:])


if __name__ == "__main__":
    main()
