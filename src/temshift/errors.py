"""Errors that the command line reports as one clear line and a non-zero exit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class TemshiftError(Exception):
    """Bad input or a failed step; the message names the file, row or key at fault."""


class CatalogError(TemshiftError):
    """The metadata table is malformed or a query cannot be answered."""


class FrameReadError(TemshiftError):
    """A raw frame or label file cannot be read."""


class DatasetError(TemshiftError):
    """A dataset file is missing, corrupt, or does not fit its use."""


class CheckpointError(TemshiftError):
    """A model checkpoint or published weights file is missing, corrupt or unsafe."""


class SpecError(TemshiftError):
    """A study or dataset specification is invalid."""


class OutputPathError(TemshiftError):
    """An output path is a file where a folder is needed (or the reverse), or cannot be written."""


class PreprocessError(TemshiftError, ValueError):
    """A frame cannot be preprocessed (too small for the flat-field fit, no positive background)."""


@contextlib.contextmanager
def named(path: object) -> Iterator[None]:
    """Context manager: a TemshiftError raised inside names `path` at its start."""
    try:
        yield
    except TemshiftError as exc:
        if str(exc).startswith(str(path)):
            raise
        try:
            named_exc = type(exc)(f"{path}: {exc}")
        except TypeError:  # a subclass with another constructor
            named_exc = TemshiftError(f"{path}: {exc}")
        raise named_exc from None
