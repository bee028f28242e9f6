"""Process-level runtime choices: torch threads and device."""

from __future__ import annotations

import contextlib


def set_threads(n: int | None) -> None:
    """Use `n` torch intra-op threads in this process (e.g. one Dask worker); None leaves torch's default.

    Inter-op threads are set too when torch still allows it (before any parallel work).
    """
    import torch

    if n is None:
        return
    torch.set_num_threads(int(n))
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(max(1, int(n)))


def resolve_device(device: str = "auto"):
    """A `torch.device`: "auto" picks CUDA, then MPS, when present, else CPU.

    Raises
    ------
    TemshiftError
        For a device name torch does not know, or a CUDA/MPS device this machine does not have.
    """
    import torch

    from temshift.errors import TemshiftError

    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_ok:
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise TemshiftError(f"--device {device!r}: unknown device (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TemshiftError(f"--device {device}: no CUDA GPU is available here (torch {torch.__version__}"
                                f"{', built without CUDA' if torch.version.cuda is None else ''}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TemshiftError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not mps_ok:
        raise TemshiftError(f"--device {device}: MPS (Apple GPU) is not available here; use --device cpu")
    return dev


def native_bf16() -> bool:
    """True when this CPU has native bfloat16 kernels (oneDNN; e.g. AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_speed(channels_last: bool | None, bf16: bool | None, device) -> tuple[bool, bool]:
    """Concrete (channels_last, bf16) choices; None means auto.

    Auto = on for CPU training when the CPU has native bfloat16 kernels (benchmarks/train.py:
    ~1.9x the eager fp32 throughput on such CPUs with unchanged accuracy), off otherwise.
    """
    fast_cpu = getattr(device, "type", str(device)) == "cpu" and native_bf16()
    return (fast_cpu if channels_last is None else bool(channels_last),
            fast_cpu if bf16 is None else bool(bf16))


#: measured CPU throughput at 256 px patches, one thread, bf16 + channels-last (benchmarks/RESULTS.md,
#: "Training and inference"): full training step and inference; cost scales with the patch area
CPU_TRAIN_PATCHES_PER_S_256 = 16.7
CPU_INFER_PATCHES_PER_S_256 = 86.0


def dataset_patches(path) -> tuple[int, int] | None:
    """``(n_patches, patch side px)`` from a dataset file's header (None when it cannot be read)."""
    import h5py

    from temshift.datasets.store import published_pair

    pair = published_pair(path)
    try:
        with h5py.File(pair[1] if pair else path, "r") as f:
            shape = f["images"].shape
    except (OSError, KeyError, ValueError):
        return None
    return (int(shape[0]), int(shape[-1] if len(shape) == 3 else shape[-2])) if len(shape) >= 3 else None


def estimate_cpu_seconds(n_patches: int, patch_px: int, settings, fold: int = 0) -> float:
    """Rough training time of one fold on one CPU core, seconds, from the benchmarked throughput.

    Counts the dihedral-expanded training samples of an epoch (capped by
    ``samples_per_epoch``) and the validation samples, at `CPU_TRAIN_PATCHES_PER_S_256` and
    `CPU_INFER_PATCHES_PER_S_256` scaled by the patch (or crop) area; early stopping is ignored.
    """
    from temshift.training.splits import split_fold
    from temshift.training.trainer import epoch_samples

    split = split_fold(n_patches, fold, settings.n_folds, settings.val_fraction)
    variants = 8 if settings.dihedral else 1
    train = epoch_samples(len(split.train) * variants, settings)
    val = len(split.val) * variants
    area = ((settings.patch_crop or patch_px) / 256) ** 2
    per_epoch = area * (train / CPU_TRAIN_PATCHES_PER_S_256 + val / CPU_INFER_PATCHES_PER_S_256)
    return settings.epochs * per_epoch


def format_duration(seconds: float) -> str:
    """``"40 s"``, ``"12 min"``, ``"3.5 h"``, ``"2.1 days"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
