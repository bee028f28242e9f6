"""Pieces shared by the command modules."""

from __future__ import annotations

#: `--rescale` help: the names live in one table, read when the option is parsed (so that
#: `temshift --help` does not import numpy)
RESCALE_HELP = "Intensity rescaling method (docs/protocol.md step 3); a wrong name lists them all."


def rescale_name(value: str) -> str:
    """Parse `--rescale`: a name in the rescale table, or a one-line usage error listing the table."""
    import typer

    from temshift.preprocess.rescale import RESCALE_METHODS

    if value not in RESCALE_METHODS:
        described = " | ".join(f"{m.name}: {m.description}" for m in RESCALE_METHODS.values())
        raise typer.BadParameter(f"unknown rescale method {value!r}; use one of {described}")
    return value


def console(stderr: bool = False):
    """A rich console; wide when piped so that tables are not folded into slivers."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=200)


# --- output paths ---------------------------------------------------------------------------
# Checked before any work starts, so that a long run does not end in a traceback at its
# first write.


def _writable(folder) -> bool:
    """True when files can be created in `folder` (a probe file, since os.access lies to root)."""
    import os
    import tempfile

    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, probe = tempfile.mkstemp(prefix=".temshift-write-test.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def _file_on_the_way(path):
    """The nearest existing ancestor of `path` when it is a file (then nothing can be created below it)."""
    for p in path.parents:
        if p.exists():
            return None if p.is_dir() else p
    return None


def _make_writable_folder(folder, path, option: str, which: str) -> None:
    """Create `folder` (for `option` `path`) and check files can be written there; `which` names it in messages."""
    from temshift.errors import OutputPathError

    blocker = _file_on_the_way(path)
    if blocker is not None:
        raise OutputPathError(f"{option} {path}: {blocker} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"{option} {path}: cannot create the folder{which} ({exc.strerror or exc})") from None
    if not _writable(folder):
        raise OutputPathError(f"{option} {path}: folder{which} is not writable")


def output_dir(path, option: str = "--out"):
    """Create the output folder `path` (and parents) and check that it is a writable folder.

    Raises
    ------
    OutputPathError
        `path` is an existing file, cannot be created, or is not writable.
    """
    from pathlib import Path

    from temshift.errors import OutputPathError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{option} {path}: exists and is a file, not a folder")
    _make_writable_folder(path, path, option, "")
    return path


def output_file(path, option: str = "--out"):
    """Check that the file `path` can be written (created or replaced); create its folder.

    Raises
    ------
    OutputPathError
        `path` is a folder, its folder is a file or cannot be created, or is not writable.
    """
    from pathlib import Path

    from temshift.errors import OutputPathError

    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{option} {path}: is a folder; give a file name")
    _make_writable_folder(path.parent, path, option, f" {path.parent}")
    return path


# --- numeric options --------------------------------------------------------------------------


def pixel_scale_option(value):
    """typer callback: a --pixel-scale within `temshift.units.PIXEL_SCALE_RANGE_NM` (None passes)."""
    import typer

    from temshift.units import PixelScaleError, check_pixel_scale_nm

    if value is None:
        return None
    try:
        return check_pixel_scale_nm(value, "pixel scale")
    except PixelScaleError as exc:
        raise typer.BadParameter(str(exc).removeprefix("pixel scale: ")) from None


def frame_choice(frame: int | None, sum_frames: bool):
    """``read_frame(frame=...)`` from --frame K / --sum (None: single frames only)."""
    from temshift.errors import SpecError

    if frame is not None and sum_frames:
        raise SpecError("give --frame K or --sum, not both")
    return "sum" if sum_frames else frame


FRAME_HELP = "For stacks and time series: read frame K (0-based)."
SUM_HELP = "For stacks and time series: read the sum of all frames (e.g. a drift-corrected series)."


def positive_option(value):
    """typer callback: a finite number > 0 (None passes)."""
    import math

    import typer

    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a positive number, got {value:g}")
    return value


def specimen_option(options: list[str] | None) -> dict | None:
    """``--specimen KEY=VALUE`` options as validated specimen options (None for none).

    Raises
    ------
    SimulationError
        An option without ``=``, an unknown key or a bad value, naming it.
    """
    from temshift.simulate.repository import SPECIMEN_OPTIONS, SimulationError, specimen_options

    if not options:
        return None
    table = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise SimulationError(f"--specimen {option!r}: expected KEY=VALUE (keys: {', '.join(SPECIMEN_OPTIONS)})")
        table[key.strip()] = value.strip()
    return specimen_options(table) or None
