"""Process runtime and the one speed policy of every forward pass: threads, device, channels-last, bfloat16.

Training, validation, evaluation and prediction all decide channels-last and bfloat16 autocast
through :func:`resolve_speed` and enter autocast through :func:`autocast`; each use keeps its
own default (training: both automatic; evaluation: float32 metrics, channels-last automatic;
prediction: bfloat16 automatic, channels-last on), so that study numbers do not depend on
which code path ran a model.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any


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


def resolve_device(device: str = "auto") -> Any:
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
            raise TemshiftError(
                f"--device {device}: no CUDA GPU is available here (torch {torch.__version__}"
                f"{', built without CUDA' if torch.version.cuda is None else ''}); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TemshiftError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not mps_ok:
        raise TemshiftError(f"--device {device}: MPS (Apple GPU) is not available here; use --device cpu")
    return dev


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """True when this CPU has native bfloat16 kernels (oneDNN; e.g. AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_speed(channels_last: bool | None, bf16: bool | None, device: Any) -> tuple[bool, bool]:
    """Concrete (channels_last, bf16) choices; None means auto.

    Auto = on for CPU training when the CPU has native bfloat16 kernels (benchmarks/train.py:
    ~1.9x the eager fp32 throughput on such CPUs with unchanged accuracy), off otherwise.
    """
    fast_cpu = getattr(device, "type", str(device)) == "cpu" and native_bf16()
    return (fast_cpu if channels_last is None else bool(channels_last), fast_cpu if bf16 is None else bool(bf16))


@contextlib.contextmanager
def autocast(device: Any, bf16: bool) -> Iterator[None]:
    """bfloat16 autocast on `device` (a torch device or its name) when `bf16`, else nothing.

    The convolutions then run in bfloat16 (the weights are cast once per call); callers take
    softmax and losses of ``logits.float()``.
    """
    import torch

    if not bf16:
        yield
        return
    dev_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    with torch.autocast(dev_type, dtype=torch.bfloat16):
        yield


_MALLOC_TUNED = False


def _libc():
    """The C library, for glibc's allocator controls (``mallopt``, ``malloc_trim``)."""
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the OS (idempotent).

    Whole-frame inference allocates and frees activations of tens to hundreds of MB per layer.
    By default glibc serves each from a fresh ``mmap`` and unmaps it when freed, so every
    forward pass faults the same pages in again: about 15 % of the CPU time of a 4096^2 frame
    went to the kernel (benchmarks/RESULTS.md, "Prediction"). Here large blocks come from the
    heap and up to 1 GiB of freed memory stays in it; results do not change, peak memory
    barely (the same blocks are reused). Does nothing (returns False) where the C library is
    not glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = _libc()
        m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4  # glibc <malloc.h>
        ok = bool(
            libc.mallopt(m_mmap_max, 0)
            and libc.mallopt(m_trim_threshold, 1 << 30)
            and libc.mallopt(m_top_pad, 64 << 20)
        )
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = ok
    return ok


def release_freed_memory() -> bool:
    """Return the memory that :func:`keep_freed_memory` kept to the OS (``malloc_trim``).

    Call it when a frame's inference is over: the freed activations (up to 1 GiB) would
    otherwise stay in the process while the frame's statistics, particle table and files
    add their own arrays on top, and set its peak memory. Returns False where nothing was
    kept (not glibc, or :func:`keep_freed_memory` never ran).
    """
    if not _MALLOC_TUNED:
        return False
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True
