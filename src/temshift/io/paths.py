"""Paths built from untrusted names (catalog folders and file names) that must stay under a root."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import NoReturn

from temshift.errors import TemshiftError


class UnsafePathError(TemshiftError):
    """A name from a table or a file would place output outside the folder the user named."""


def resolve_under(root: str | os.PathLike[str], *parts: str, row: str | None = None) -> Path:
    """``root/part1/part2/...``, refused unless it lies strictly inside `root`.

    Each part may hold ``/``-separated sub-folders (the published layout has a folder
    ``"2021_08_26 .../Ultrathin Carbon"``) and spaces. Refused: absolute parts (``/tmp/x``,
    ``C:\\x``), ``..`` segments, NUL characters, and anything that resolves outside `root`
    (also through a symbolic link inside it), or to `root` itself.

    Parameters
    ----------
    root : str or Path
        The folder the user named (``--dest``, ``--out``); need not exist yet.
    *parts : str
        Names from the table, joined in order.
    row : str, optional
        Where the names came from (e.g. ``"catalog row 12 (Folder '../x', File name 'a.dm3')"``),
        put first in the error message.

    Returns
    -------
    Path
        `root` joined with the normalized parts (`root` spelled as given).

    Raises
    ------
    UnsafePathError
        One line naming `row`, the offending name and `root`.
    """
    root_path = Path(root)
    where = f"{row}: " if row else ""
    joined = "/".join(str(p) for p in parts)

    def refuse(why: str) -> NoReturn:
        raise UnsafePathError(f"{where}{joined!r} {why}; refusing to write outside {root_path}")

    segments: list[str] = []
    for part in parts:
        text = str(part)
        if "\x00" in text:
            refuse("contains a NUL character")
        if PurePosixPath(text).is_absolute() or PureWindowsPath(text).anchor:
            refuse("is an absolute path")
        if ".." in text.replace("\\", "/").split("/"):  # Windows-style names too
            refuse("climbs out with '..'")
        segments += [seg for seg in text.split("/") if seg and seg != "."]
    if not segments:
        refuse("names no file or folder below the root")
    target = root_path.joinpath(*segments)
    real_root = Path(os.path.realpath(root_path))
    real_target = Path(os.path.realpath(target))
    if real_target == real_root or not real_target.is_relative_to(real_root):
        refuse(f"resolves to {real_target} (through a link)")
    return target
