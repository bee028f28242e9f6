"""Thread counts that worker processes inherit through the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

#: variables read by scipy.fft (through temshift.simulate.optics), OpenMP, numba and MKL
THREAD_ENV_VARS = ("TEMSHIFT_FFT_WORKERS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS")

__all__ = ["THREAD_ENV_VARS", "thread_env"]


@contextmanager
def thread_env(threads: int | None, names: tuple[str, ...] = THREAD_ENV_VARS) -> Iterator[None]:
    """Set the thread-count variables `names` to `threads` inside the block, restore them after.

    Worker processes started inside the block inherit the setting. ``threads=None`` leaves the
    environment as it is.

    Examples
    --------
    >>> import os
    >>> with thread_env(1, ("OMP_NUM_THREADS",)):
    ...     os.environ["OMP_NUM_THREADS"]
    '1'
    """
    saved = {k: os.environ.get(k) for k in names}
    if threads is not None:
        for k in names:
            os.environ[k] = str(threads)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
