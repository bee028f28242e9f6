"""Parse command-line conditions such as ``dose_e_per_A2=423±20``."""

from __future__ import annotations

import re
from collections.abc import Iterable

from temshift.errors import CatalogError

#: a condition value: a number or a string, or a number with a tolerance
Value = int | float | str
Condition = Value | tuple[int | float, int | float]

_TOL = re.compile(r"^(?P<value>.+?)\s*(?:±|\+-|\+/-)\s*(?P<tol>[^±+]+)$")


def parse_value(text: str) -> Value:
    """Return `text` as int or float when it is a number, else the stripped string."""
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_condition(expr: str) -> tuple[str, Condition]:
    """Parse one ``field=value`` or ``field=value±tol`` (``+-`` also accepted).

    Returns
    -------
    (field, value) or (field, (value, tol))
    """
    if "=" not in expr:
        raise CatalogError(f"bad condition {expr!r}: expected FIELD=VALUE or FIELD=VALUE±TOL")
    field, _, rhs = expr.partition("=")
    field, rhs = field.strip(), rhs.strip()
    if not field or not rhs:
        raise CatalogError(f"bad condition {expr!r}: expected FIELD=VALUE or FIELD=VALUE±TOL")
    m = _TOL.match(rhs)
    if m:
        value, tol = parse_value(m["value"]), parse_value(m["tol"])
        if isinstance(value, str) or isinstance(tol, str) or tol < 0:
            raise CatalogError(f"bad condition {expr!r}: a tolerance needs a number and a non-negative number")
        return field, (value, tol)
    return field, parse_value(rhs)


def parse_where(conditions: Iterable[str] | None) -> dict[str, Condition]:
    """Parse a list of ``field=value[±tol]`` strings into query keyword arguments."""
    out: dict[str, Condition] = {}
    for expr in conditions or ():
        field, value = parse_condition(expr)
        if field in out:
            raise CatalogError(f"condition on {field!r} given twice")
        out[field] = value
    return out
