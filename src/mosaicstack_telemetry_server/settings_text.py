"""A setting's range and problems in words, from its pydantic constraints (written once there).

`serve --help`, the errors of `load_settings` and the docs table all say a range this way, so
that what a user reads always matches what is checked.
"""

from __future__ import annotations

from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

__all__ = ["Bounds", "bounds", "format_number", "problem", "range_text"]

# Errors that say a value is out of its range (NaN and infinities included).
_RANGE_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}
)

# Errors that say a value is not a number (or, for an integer, has a fraction).
_NUMBER_ERRORS = frozenset(
    {"int_parsing", "int_from_float", "int_type", "float_parsing", "float_type"}
)

Bounds = tuple[float, float, bool]  # (low, high, whether low itself is excluded)


def format_number(value: float) -> str:
    """A bound as people write it: `1000000`, not `1e+06`; `0.5` stays `0.5`."""
    return str(int(value)) if float(value).is_integer() else str(value)


def bounds(field: FieldInfo) -> Bounds | None:
    """A numeric field's inclusive high and its low, or None when it has no such range."""
    low: Any = None
    high: Any = None
    exclusive = False
    for item in field.metadata:  # annotated_types' Ge, Gt and Le, as pydantic's Field makes them
        if getattr(item, "ge", None) is not None:
            low = item.ge
        elif getattr(item, "gt", None) is not None:
            low, exclusive = item.gt, True
        elif getattr(item, "le", None) is not None:
            high = item.le
    if low is None or high is None:
        return None
    return float(low), float(high), exclusive


def range_text(field: FieldInfo) -> str | None:
    """`between 1 and 1000000`, or `above 0 and at most 1000000` for an exclusive low."""
    span = bounds(field)
    if span is None:
        return None
    low, high, exclusive = span
    shape = "above {} and at most {}" if exclusive else "between {} and {}"
    return shape.format(format_number(low), format_number(high))


def problem(field: FieldInfo, error: ErrorDetails, *, hide_value: bool = False) -> str:
    """What is wrong with a value, in words: `must be between 1 and 64, not 65`."""
    shown = "" if hide_value else f", not {error.get('input')!r}"
    span = range_text(field)
    if error["type"] in _RANGE_ERRORS and span:
        return f"must be {span}{shown}"
    if error["type"] in _NUMBER_ERRORS and span:
        kind = "an integer" if field.annotation is int else "a number"
        return f"must be {kind} {span}{shown}"
    if error["type"] == "value_error":  # a validator's own message (trusted proxies)
        return str(error.get("ctx", {}).get("error", error["msg"]))
    message = error["msg"]
    return message[:1].lower() + message[1:] + shown
