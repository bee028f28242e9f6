"""Atomic file writes: nothing is ever half-written under its final name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `final_path`; rename it into place on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    the final path is left untouched. `suffix` defaults to the final suffix so that
    writers which dispatch on the extension (tifffile, PIL, h5py) keep working.
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = final.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the final file the usual umask-governed mode
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(final_path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `final_path` atomically."""
    with atomic_path(final_path) as tmp:
        tmp.write_text(text)
