"""The sample rules of CONTRACTS.md §2, and the words for every way a sample breaks them.

ingest/parse.py decodes bytes; this module judges what was decoded, so that a sample gets the same
verdict whichever path decoded it. Two entry points, one per path:
- `Sink` takes runs of structs from the fast msgspec decode (which already enforced the
  structural rules through the struct type) and applies the range rules (finite numbers,
  plausible `ts`, non-negative counters) vectorised over numpy columns, collecting the survivors
  straight into `Batch` columns; Python touches only the samples that break a rule.
- `sample_from_obj` is the slow path's judge: a value the stdlib `json` read (after the fast
  decode refused it) is checked field by field and either becomes a struct (its range rules then
  checked by `Sink` like any other) or a `Rejection` that says exactly what is wrong.

Decisions the contract leaves open:
- a number sent as a string (`"12.5"`) is WRONG_TYPE; a string spelling a non-finite number
  (`"NaN"`, `"inf"`) is NON_FINITE; `true`/`false` are never numbers;
- a `ts` string must be RFC 3339 *with* a zone (`Z` or `±hh:mm`): a zoneless time is ambiguous;
- `"labels": null` means no labels; a counter is a metric ending in `_total`, plus `live`;
- each sample gets at most one rejection: the first rule it breaks, structural rules first;
- a lone surrogate escape in a name or label (`"\\ud800"`: valid JSON, but no text) is WRONG_TYPE.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from operator import attrgetter
from typing import Any, Literal

import numpy as np

from streamwatch.ingest.batch import Batch, Limits, ParseResult, Reason, Rejection
from streamwatch.types import Floats, Ints

__all__ = ["Sink", "sample_from_obj", "json_type", "rfc3339_to_unix", "RFC3339_SHAPE"]

_FIELDS = ("stream", "metric", "ts", "value")
_STREAM, _METRIC, _TS, _VALUE, _LABELS = (attrgetter(f) for f in (*_FIELDS, "labels"))
RFC3339_SHAPE = r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$"
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(?:([Zz])|([+-])(\d\d):(\d\d))")


def rfc3339_to_unix(text: str) -> float | None:
    """Unix seconds of an RFC 3339 time with a zone (`Z`/`±hh:mm`, any fraction), else None."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    offset = timedelta(0) if z else timedelta(hours=int(oh), minutes=int(om))
    offset = -offset if sign == "-" else offset
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=timezone(offset))
    except ValueError:
        return None
    return dt.timestamp() + (float(frac) if frac else 0.0)


def _unpaired(item: Any) -> tuple[str, Reason, str] | None:
    """A verdict on a sample whose names or labels hold a lone surrogate (`"\\ud800"`, valid
    JSON but no Unicode text: it cannot be encoded, stored or sent on), else None."""
    labels = item.labels or {}
    for key, texts in (("stream", (item.stream,)), ("metric", (item.metric,)),
                       ("labels", (*labels, *labels.values()))):
        for text in texts:
            if not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    return (key, Reason.WRONG_TYPE,
                            f"expected text, got a lone surrogate escape in {text[:40]!r}")
    return None


def _spell(x: float) -> str:
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return "NaN" if math.isnan(x) else repr(x)


def json_type(v: object) -> str:
    """What a decoded JSON value is, as a rejection names it ("a string", "null", ...)."""
    return {bool: "a boolean", str: "a string", dict: "an object", list: "an array",
            type(None): "null"}.get(type(v), "a number")


def _string_number(s: str, key: str) -> tuple[str, Reason, str]:
    """Verdict on a string where a number belongs: non-finite spellings are NON_FINITE."""
    try:
        x = float(s)
    except ValueError:
        want = "a number or an RFC 3339 time with a zone" if key == "ts" else "a number"
        return key, Reason.WRONG_TYPE, f"expected {want}, got string {s[:40]!r}"
    if not math.isfinite(x):
        return key, Reason.NON_FINITE, f"{s[:40]!r} is not a finite number"
    return key, Reason.WRONG_TYPE, f"expected a number, got string {s[:40]!r} (send it unquoted)"


def sample_from_obj(obj: Any, pos: int, kind: Literal["index", "line"], struct: type,
                    limits: Limits) -> Any:
    """Slow path: a JSON value -> a sample struct (range rules still to check) or a Rejection."""
    if not isinstance(obj, dict):
        return Rejection(pos, kind, "", Reason.MALFORMED,
                         f"expected a JSON object, got {json_type(obj)}")
    why: tuple[str, Reason, str] | None = None
    num: dict[str, float] = {}
    for key in _FIELDS:
        v = obj.get(key, _FIELDS)
        if v is _FIELDS:
            why = key, Reason.MISSING_FIELD, f"required field {key!r} is missing"
        elif key in ("stream", "metric"):
            if not isinstance(v, str):
                why = key, Reason.WRONG_TYPE, f"expected a string, got {json_type(v)}"
            elif not v:
                why = key, Reason.EMPTY_NAME, f"{key} must not be empty"
        elif isinstance(v, str):
            u = rfc3339_to_unix(v) if key == "ts" else None
            why = _string_number(v, key) if u is None else None
            num[key] = u if u is not None else math.nan
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            why = key, Reason.WRONG_TYPE, f"expected a number, got {json_type(v)}"
        else:
            try:
                num[key] = float(v)
            except OverflowError:          # an integer too big for a float
                why = key, Reason.NON_FINITE, "the number overflows a float"
        if why:
            return Rejection(pos, kind, *why)
    labels = obj.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or not all(isinstance(x, str) for x in labels.values()):
            why = "labels", Reason.WRONG_TYPE, "expected an object of string to string"
        elif len(labels) > limits.max_labels:
            why = ("labels", Reason.OVERSIZED_LABELS,
                   f"{len(labels)} labels, at most {limits.max_labels} allowed")
        elif any(len(x) > limits.max_label_len for kv in labels.items() for x in kv):
            why = ("labels", Reason.OVERSIZED_LABELS,
                   f"a label key or value is longer than {limits.max_label_len} characters")
        if why:
            return Rejection(pos, kind, *why)
    return struct(obj["stream"], obj["metric"], num["ts"], num["value"], labels)


def _stamp(t: float | str) -> float:
    u = t if type(t) is float else rfc3339_to_unix(t)  # type: ignore[arg-type]
    return math.nan if u is None else u


class Sink:
    """Collects one parse call's samples straight into Batch columns, applying the range rules
    vectorised per run of structs; Python only touches the samples that break one."""

    def __init__(self, now: float, limits: Limits, kind: Literal["index", "line"],
                 with_labels: bool) -> None:
        self.now, self.limits, self.kind, self.with_labels = now, limits, kind, with_labels
        self.streams: list[str] = []
        self.metrics: list[str] = []
        self.labels: list[dict[str, str] | None] = []
        self.arrays: list[tuple[Floats, Floats, Ints]] = []
        self.rejections: list[Rejection] = []
        self.check_text = False            # set when the input has a surrogate escape

    def add(self, items: list[Any], positions: Ints, slow: list[Rejection] | None = None) -> None:
        n, lim = len(items), self.limits
        values = np.fromiter(map(_VALUE, items), np.float64, count=n)
        why: dict[int, tuple[str, Reason, str]] = {}
        try:
            ts = np.fromiter(map(_TS, items), np.float64, count=n)
        except ValueError:                 # RFC 3339 strings among them
            ts = np.fromiter(map(_stamp, map(_TS, items)), np.float64, count=n)
            for i in np.flatnonzero(np.isnan(ts)).tolist():
                if isinstance(items[i].ts, str):
                    why[i] = _string_number(items[i].ts, "ts")
        ok = np.isfinite(values) & (ts >= lim.min_ts) & (ts <= self.now + lim.future_skew_s)
        if self.check_text:
            for i, item in enumerate(items):
                bad = _unpaired(item)
                if bad is not None:
                    why[i] = bad
        for i in np.flatnonzero(ok & (values < 0)).tolist():
            m = items[i].metric
            if m.endswith("_total") or m == "live":
                why[i] = ("value", Reason.NEGATIVE_COUNT,
                          f"counter {m!r} cannot be negative ({float(values[i])!r})")
        if why or not ok.all():
            for i in np.flatnonzero(~ok).tolist():
                if i in why:
                    continue
                v, t = float(values[i]), float(ts[i])
                if not math.isfinite(v):
                    why[i] = "value", Reason.NON_FINITE, f"{_spell(v)} is not a finite number"
                elif not math.isfinite(t):
                    why[i] = "ts", Reason.NON_FINITE, f"{_spell(t)} is not a finite number"
                elif t < lim.min_ts:
                    why[i] = "ts", Reason.ABSURD_TIMESTAMP, f"ts {t!r} is before 2000-01-01"
                else:
                    why[i] = ("ts", Reason.ABSURD_TIMESTAMP,
                              f"ts {t!r} is {t - self.now:.0f} s ahead of the server clock "
                              f"(at most {lim.future_skew_s:.0f} s allowed)")
            ok[list(why)] = False
            keep = np.flatnonzero(ok)
            items = [items[i] for i in keep.tolist()]
            values, ts, positions, bad = values[keep], ts[keep], positions[keep], positions
            found = [Rejection(int(bad[i]), self.kind, *why[i]) for i in sorted(why)]
            slow = sorted(slow + found, key=attrgetter("position")) if slow else found
        self.streams += map(_STREAM, items)
        self.metrics += map(_METRIC, items)
        self.labels += map(_LABELS, items) if self.with_labels else [None] * len(items)
        self.arrays.append((ts, values, positions))
        self.rejections += slow or ()

    def result(self) -> ParseResult:
        if not self.arrays:
            return ParseResult(Batch.empty(), self.rejections)
        ts, values, positions = (np.concatenate(c) for c in zip(*self.arrays))
        return ParseResult(Batch(self.streams, self.metrics, ts, values, self.labels, positions),
                           self.rejections)
