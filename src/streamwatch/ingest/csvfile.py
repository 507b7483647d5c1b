"""Read a `timestamp,value` CSV (the Numenta Anomaly Benchmark layout) as one series.

`streamwatch replay` accepts these files so NAB's corpus can be scored by the same pipeline as
live samples (CONTRACTS.md §4). NAB writes `YYYY-MM-DD HH:MM:SS` in UTC; that layout is parsed
vectorised (numpy datetime64), because corpora have files of 20k+ rows and replay is meant to be
fast. Anything else (RFC 3339, unix seconds, or a mix) falls back to a per-row parse, which is
still well under a second for 100k rows. The timestamp text is kept exactly as written, since
`--scores` must echo it back unchanged.

A file is all or nothing: any bad header, row, timestamp or non-finite value raises
`InputError("file:line: why")` — a benchmark silently scored on part of its rows would be worse
than no score. Empty trailing lines are fine; an empty line in the middle is an error.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from streamwatch.exceptions import InputError
from streamwatch.ingest.parse import rfc3339_to_unix
from streamwatch.types import Floats

__all__ = ["CsvSeries", "read_timestamp_value_csv"]

_NAB = re.compile(r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)")
_RFC3339_SHAPE = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_UNIX = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_FORMATS = "'YYYY-MM-DD HH:MM:SS' (UTC), RFC 3339 with a zone, or unix seconds"


@dataclass(slots=True)
class CsvSeries:
    """One series in file order: the timestamp text as written, its unix seconds, the values."""
    timestamps: list[str]
    ts: Floats
    values: Floats

    def __len__(self) -> int:
        return len(self.timestamps)


def read_timestamp_value_csv(path: Path) -> CsvSeries:
    """Parse the whole file or raise InputError naming the first bad line (1-based, header = 1)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise InputError(f"{path}:{line}: not UTF-8 text") from e
    lines = text.split("\n")
    if "\r" in text:
        lines = [x[:-1] if x.endswith("\r") else x for x in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"{path}:1: empty file, expected the header 'timestamp,value'")
    if [c.strip().lower() for c in lines[0].split(",")] != ["timestamp", "value"]:
        raise InputError(f"{path}:1: header must be 'timestamp,value', got {lines[0][:80]!r}")
    if len(lines) == 1:
        raise InputError(f"{path}:2: no data rows after the header")
    rows = lines[1:]
    for n, row in enumerate(rows, start=2):
        if row.count(",") != 1:            # cheap; a list per row would cost 10x (GC)
            why = "empty row" if not row.strip() else \
                f"expected 2 fields 'timestamp,value', got {row.count(',') + 1} in {row[:80]!r}"
            raise InputError(f"{path}:{n}: {why}")
    flat = "\n".join(rows).replace("\n", ",").split(",")
    stamps = flat[0::2]
    values = _values(path, flat[1::2])
    return CsvSeries(stamps, _timestamps(path, stamps), values)


def _values(path: Path, texts: list[str]) -> Floats:
    try:
        values = np.array(texts, dtype=np.float64)
        if np.isfinite(values).all():
            return values
    except ValueError:
        pass
    for n, t in enumerate(texts, start=2):   # only to name the first bad row
        try:
            ok, why = math.isfinite(float(t)), "is not a finite number"
        except ValueError:
            ok, why = False, "is not a number"
        if not ok:
            raise InputError(f"{path}:{n}: value {t.strip()[:40]!r} {why}")
    raise AssertionError("numpy refused a column that float() accepts")  # pragma: no cover


def _timestamps(path: Path, stamps: list[str]) -> Floats:
    """Unix seconds per row: vectorised when every row has one layout, else row by row."""
    clean = [s.strip() for s in stamps]
    for layout in (_NAB, _RFC3339_SHAPE):
        if all(map(layout.fullmatch, clean)):
            try:
                secs = np.array([s[:10] + "T" + s[11:19] for s in clean], dtype="datetime64[s]")
            except ValueError:             # e.g. 2014-02-30: let the row loop name the line
                break
            secs = secs.astype(np.int64).astype(np.float64)
            if layout is _NAB:
                return secs
            tails: dict[str, float] = {}   # ".5+01:00" -> 0.5 - 3600, parsed once per spelling
            for s in clean:
                tails.setdefault(s[19:], 0.0)
            for tail in tails:
                tails[tail] = rfc3339_to_unix(f"1970-01-01T00:00:00{tail}") or 0.0
            return secs + np.fromiter((tails[s[19:]] for s in clean), np.float64, count=len(clean))
    if all(map(_UNIX.fullmatch, clean)):
        secs = np.array(clean, dtype=np.float64)
        if np.isfinite(secs).all():
            return secs
    out = np.empty(len(clean))
    for n, s in enumerate(clean):
        t = _one_stamp(s)
        if t is None:
            raise InputError(f"{path}:{n + 2}: timestamp {s[:40]!r} is not {_FORMATS}")
        out[n] = t
    return out


def _one_stamp(s: str) -> float | None:
    m = _NAB.fullmatch(s)
    if m:
        try:
            y, mo, d, h, mi, s_ = map(int, m.groups())
            return datetime(y, mo, d, h, mi, s_, tzinfo=timezone.utc).timestamp()
        except ValueError:
            return None
    if _UNIX.fullmatch(s):
        t = float(s)
        return t if math.isfinite(t) else None
    return rfc3339_to_unix(s)
