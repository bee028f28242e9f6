"""Small JSON files that users or the package hand in (ranges files, shipped records)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temshift.errors import TemshiftError


def read_json_object(path: str | Path, error: type[TemshiftError], what: str) -> dict[str, Any]:
    """The JSON object in `path`, or `error` naming the file and `what` it should be.

    Parameters
    ----------
    path : str or Path
        The file.
    error : subclass of TemshiftError
        Raised (one line) when the file is unreadable, not JSON, or not a JSON object.
    what : str
        What the file is, for the message (e.g. ``"ranges file"``).
    """
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise error(f"{path}: unreadable {what} ({str(exc).splitlines()[0]})") from None
    if not isinstance(value, dict):
        raise error(f"{path}: the {what} must hold a JSON object")
    return value
