"""Pieces shared by the command modules."""

from __future__ import annotations

from enum import Enum


class RescaleChoice(str, Enum):
    """Intensity rescaling of a preprocessed frame (PROTOCOL step 3)."""

    standardize = "standardize"
    normalize = "normalize"
    histogram = "histogram"
    none = "none"


def console(stderr: bool = False):
    """A rich console; wide when piped so that tables are not folded into slivers."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=200)
