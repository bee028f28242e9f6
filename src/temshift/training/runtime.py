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
