"""Durations as people write them in config files ("20s", "10m", "1h30m", 45) -> seconds.

`Duration` (and `OptionalDuration`) is the one field type every config model uses for a length
of time: the parsing lives here once instead of a validator per model, and config/reference.py
recognises a duration field by this type's validator to show it as one ("30s", "5m").
"""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["parse_duration", "parse_optional_duration", "Duration", "OptionalDuration",
           "DURATION_PARSERS"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from a number (taken as seconds) or a string like "90s", "10m", "1h30m"."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '20s', '10m'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a duration is a number of seconds or a string like '20s', '10m'")
    text = value.strip().lower()
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration like '20s', '10m' or '1h30m'")
    return total


def parse_optional_duration(value: object) -> float | None:
    """`parse_duration`, with None kept as "not set" (a setting inherited from elsewhere)."""
    return None if value is None else parse_duration(value)


# A field of seconds written as a number or "20s"/"10m"/"1h30m". Constraints go on the field
# (`Field(gt=0)`) and apply to the parsed seconds; a bad value fails naming the field and itself.
Duration = Annotated[float, BeforeValidator(parse_duration)]
OptionalDuration = Annotated[float | None, BeforeValidator(parse_optional_duration)]
# how config/reference.py tells a duration field from a plain number: its validator is one of these
DURATION_PARSERS = frozenset({parse_duration, parse_optional_duration})
