"""Sample bytes (NDJSON or a JSON array) -> a columnar `Batch` plus one `Rejection` per bad sample.

This is the first stage of the hot path: replay must sustain 500k samples/s end to end, so valid
input never meets per-sample Python. msgspec decodes a run of lines into structs whose type already
enforces the structural rules (non-empty names, label limits, number types, RFC 3339 shape); the
range rules (finite numbers, plausible `ts`, non-negative counters) then run vectorised over numpy
columns. Only lines or elements that fail the fast decode are re-read, one by one, by a forgiving
slow path (the stdlib `json`, which also accepts the `NaN`/`Infinity` literals some encoders write)
whose job is to say exactly what is wrong; good neighbours are never lost. Both paths feed the same
column checks, so a sample gets the same verdict whichever path it took.

Decisions the contract leaves open:
- a number sent as a string (`"12.5"`) is WRONG_TYPE; a string spelling a non-finite number
  (`"NaN"`, `"inf"`) is NON_FINITE; `true`/`false` are never numbers;
- a `ts` string must be RFC 3339 *with* a zone (`Z` or `±hh:mm`): a zoneless time is ambiguous;
- `"labels": null` means no labels; a counter is a metric ending in `_total`, plus `live`;
- each sample gets at most one rejection: the first rule it breaks, structural rules first;
- a lone surrogate escape in a name or label (`"\\ud800"`: valid JSON, but no text) is WRONG_TYPE;
  a number literal past 4000 digits is read as ±inf (NON_FINITE); nesting too deep to read is,
  like bad UTF-8, not JSON (MALFORMED);
- an NDJSON line that is not JSON is a per-line MALFORMED rejection, never `fatal`: the HTTP API
  refuses a body that has any, while replay skips them and counts them. In a JSON array a syntax
  error anywhere is `fatal` (nothing after it can be trusted to be where it seems).
"""
from __future__ import annotations

import gc
import json
import math
import mmap
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from streamwatch.ingest.batch import Batch, Limits, ParseResult, Reason, Rejection
from streamwatch.types import Floats, Ints

__all__ = [
    "Reason", "Rejection", "Batch", "ParseResult", "Limits",
    "parse_ndjson", "parse_json_array", "parse_body", "iter_ndjson_file", "rfc3339_to_unix",
]

_BOM = b"\xef\xbb\xbf"
_PIECE = 128 << 10                # bytes decoded per round, so the column pass finds them in cache
_WS = b" \t\r"                    # JSON whitespace besides the line feed we split on
_FIELDS = ("stream", "metric", "ts", "value")
_STREAM, _METRIC, _TS, _VALUE, _LABELS = (attrgetter(f) for f in (*_FIELDS, "labels"))
_KEY = re.compile(r'"([^"\\]{1,64})"\s*:')
_ARRAY_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*\[")
_RFC3339_SHAPE = r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$"
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(?:([Zz])|([+-])(\d\d):(\d\d))")
# What a decode of hostile bytes can raise besides msgspec's own errors: msgspec lets invalid
# UTF-8 inside a string surface as UnicodeDecodeError, and nesting past the interpreter's
# recursion limit as RecursionError (found by tests/api/test_fuzz.py: each was a 500)
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_TOO_DEEP = "JSON nested too deeply to read"
# a `\uD800`-`\uDFFF` escape: the only way a lone surrogate (no UTF-8 for it) gets into a name
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


@lru_cache(maxsize=16)
def _codecs(limits: Limits) -> tuple[type, msgspec.json.Decoder, msgspec.json.Decoder]:
    """Sample struct and decoders for `limits`. The struct type enforces the structural rules, so a
    run that decodes needs no per-sample structural check; a `ts` string must have RFC 3339 shape,
    so a numeric string can never slip through numpy's float conversion."""
    name = Annotated[str, msgspec.Meta(min_length=1)]
    text = Annotated[str, msgspec.Meta(max_length=limits.max_label_len)]
    labels = Annotated[dict[text, text],  # type: ignore[valid-type]
                       msgspec.Meta(max_length=limits.max_labels)]
    stamp = Annotated[str, msgspec.Meta(pattern=_RFC3339_SHAPE)]
    struct = msgspec.defstruct(
        "Sample", [("stream", name), ("metric", name), ("ts", float | stamp), ("value", float),
                   ("labels", labels | None, None)], gc=False)
    return struct, msgspec.json.Decoder(struct), msgspec.json.Decoder(list[struct])


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


def _json_int(text: str) -> int | float:
    """The stdlib's int(), except that a literal longer than Python converts (4300 digits) is
    the float it overflows to (±inf: rejected per sample as non-finite, not a crash)."""
    return int(text) if len(text) < 4000 else float(text)


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


def _jtype(v: object) -> str:
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


def _from_obj(obj: Any, pos: int, kind: Literal["index", "line"], struct: type,
              limits: Limits) -> Any:
    """Slow path: a JSON value -> a sample struct (range rules still to check) or a Rejection."""
    if not isinstance(obj, dict):
        return Rejection(pos, kind, "", Reason.MALFORMED,
                         f"expected a JSON object, got {_jtype(obj)}")
    why: tuple[str, Reason, str] | None = None
    num: dict[str, float] = {}
    for key in _FIELDS:
        v = obj.get(key, _FIELDS)
        if v is _FIELDS:
            why = key, Reason.MISSING_FIELD, f"required field {key!r} is missing"
        elif key in ("stream", "metric"):
            if not isinstance(v, str):
                why = key, Reason.WRONG_TYPE, f"expected a string, got {_jtype(v)}"
            elif not v:
                why = key, Reason.EMPTY_NAME, f"{key} must not be empty"
        elif isinstance(v, str):
            u = rfc3339_to_unix(v) if key == "ts" else None
            why = _string_number(v, key) if u is None else None
            num[key] = u if u is not None else math.nan
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            why = key, Reason.WRONG_TYPE, f"expected a number, got {_jtype(v)}"
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


def _syntax_error(err: json.JSONDecodeError, with_line: bool) -> tuple[str, str]:
    """(best-guess field, sentence) for a JSON syntax error: the last key of the object it is in."""
    opened = err.doc.rfind("{", 0, err.pos)
    inside = opened > err.doc.rfind("}", 0, err.pos)
    keys = _KEY.findall(err.doc, max(opened, err.pos - 2000), err.pos) if inside else []
    where = f" near field {keys[-1]!r}" if keys else ""
    at = f"line {err.lineno} column {err.colno}" if with_line else f"column {err.colno}"
    return (keys[-1] if keys else ""), f"not valid JSON at {at}{where}: {err.msg}"


def _from_line(line: bytes, pos: int, struct: type, limits: Limits) -> Any:
    try:
        obj = json.loads(line.decode("utf-8"), parse_int=_json_int)
    except UnicodeDecodeError:
        return Rejection(pos, "line", "", Reason.MALFORMED, "line is not UTF-8")
    except json.JSONDecodeError as e:
        return Rejection(pos, "line", "", Reason.MALFORMED, _syntax_error(e, False)[1])
    except RecursionError:
        return Rejection(pos, "line", "", Reason.MALFORMED, _TOO_DEEP)
    return _from_obj(obj, pos, "line", struct, limits)


def _stamp(t: float | str) -> float:
    u = t if type(t) is float else rfc3339_to_unix(t)  # type: ignore[arg-type]
    return math.nan if u is None else u


class _Sink:
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


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a chunk is parsed: parsing creates no cycles, but every gen-0
    collection would re-traverse the young lists of thousands of strings (about -20 % speed)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parse_ndjson(data: bytes, *, now: float, limits: Limits = Limits(),
                 first_line: int = 1) -> ParseResult:
    """Parse NDJSON; `first_line` numbers the first line so chunks of a file count on.

    Lines are decoded in runs of ~128 KiB; a run whose item count matches its line count (and whose
    lines are all framed by braces) had one sample per line and no blank line, so its line numbers
    come for free. Any other run is redone line by line by `_decode_tolerant`."""
    if first_line == 1 and data.startswith(_BOM):
        data = data[3:]
    if not data:
        return ParseResult(Batch.empty(), [])
    struct, dec, _ = _codecs(limits)
    sink = _Sink(now, limits, "line", b"labels" in data or b"\\u" in data)
    sink.check_text = _SURROGATE_ESCAPE.search(data) is not None
    buf = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(buf == 0x0A) + 1                           # offset after each line
    if data[-1] != 0x0A:                                            # no final line feed
        ends = np.append(ends, len(data))
    # `{` first and `}` last on every line: then no JSON value can span two lines (a line ending
    # in a nested `}` continues with `,` `}` or `]`), so an equal count means one sample per line
    last = ends - 1 - (buf[ends - 1] == 0x0A)
    last -= buf[last] == 0x0D
    framed = (buf[np.concatenate(([0], ends[:-1]))] == 0x7B) & (buf[last] == 0x7D)
    view, k, start = memoryview(data), 0, 0
    with _gc_paused():
        while k < len(ends):
            j = max(k, min(int(np.searchsorted(ends, start + _PIECE)), len(ends) - 1))
            end = int(ends[j])
            try:
                items = dec.decode_lines(view[start:end])
            except _DECODE_ERRORS:
                items = None
            if items is not None and len(items) == j - k + 1 and framed[k:j + 1].all():
                sink.add(items, np.arange(first_line + k, first_line + j + 1, dtype=np.int64))
            else:
                line = first_line + k
                found, at, slow = _decode_tolerant(data[start:end], dec, struct, limits, line)
                sink.add(found, np.array(at, dtype=np.int64) + line, slow)
            k, start = j + 1, end
        return sink.result()


def _decode_tolerant(data: bytes, dec: msgspec.json.Decoder, struct: type, limits: Limits,
                     first_line: int) -> tuple[list[Any], list[int], list[Rejection]]:
    """Decode a run line by line (msgspec per line costs only ~25 % more than per run, and never
    decodes a line twice); a line that fails is blank, or judged by the slow path."""
    items: list[Any] = []
    at: list[int] = []                     # 0-based line of each item
    rejected: list[Rejection] = []
    decode, errors = dec.decode, _DECODE_ERRORS
    keep, mark = items.append, at.append
    for i, line in enumerate(data.split(b"\n")):
        try:
            item = decode(line)
        except errors:
            if not line.strip(_WS):
                continue
            item = _from_line(line, i + first_line, struct, limits)
            if isinstance(item, Rejection):
                rejected.append(item)
                continue
        keep(item)
        mark(i)
    return items, at, rejected


def parse_json_array(data: bytes, *, now: float, limits: Limits = Limits()) -> ParseResult:
    """Parse a JSON array of samples; a syntax error anywhere makes the whole body `fatal`."""
    if data.startswith(_BOM):
        data = data[3:]
    struct, _, dec = _codecs(limits)
    sink = _Sink(now, limits, "index", b"labels" in data or b"\\u" in data)
    sink.check_text = _SURROGATE_ESCAPE.search(data) is not None
    with _gc_paused():
        try:
            items = dec.decode(data)
        except _DECODE_ERRORS:
            pass
        else:
            sink.add(items, np.arange(len(items), dtype=np.int64))
            return sink.result()
        try:
            objs = msgspec.json.decode(data)
        except _DECODE_ERRORS:          # NaN literals, 1e999, broken JSON, bad UTF-8, too deep
            try:
                objs = json.loads(data.decode("utf-8"), parse_int=_json_int)
            except UnicodeDecodeError as e:
                return _fatal(data.count(b"\n", 0, e.start) + 1, "", "body is not UTF-8")
            except json.JSONDecodeError as e:
                return _fatal(e.lineno, *_syntax_error(e, True))
            except RecursionError:
                return _fatal(1, "", _TOO_DEEP)
        if not isinstance(objs, list):
            return _fatal(1, "", f"expected a JSON array of samples, got {_jtype(objs)}")
        found, at, slow = [], [], []
        for i, obj in enumerate(objs):
            try:
                item = msgspec.convert(obj, struct)
            except msgspec.ValidationError:
                item = _from_obj(obj, i, "index", struct, limits)
            if isinstance(item, Rejection):
                slow.append(item)
            else:
                found.append(item)
                at.append(i)
        sink.add(found, np.array(at, dtype=np.int64), slow)
        return sink.result()


def _fatal(line: int, key: str, detail: str) -> ParseResult:
    return ParseResult(Batch.empty(), [], Rejection(line, "line", key, Reason.MALFORMED, detail))


def parse_body(data: bytes, *, now: float, limits: Limits = Limits()) -> ParseResult:
    """A pushed body: a JSON array if its first non-space byte is `[`, NDJSON otherwise."""
    if _ARRAY_START.match(data):
        return parse_json_array(data, now=now, limits=limits)
    return parse_ndjson(data, now=now, limits=limits)


def iter_ndjson_file(path: Path, *, now: float, chunk_bytes: int = 4 << 20,
                     limits: Limits = Limits(),
                     parse: Callable[..., ParseResult] | None = None) -> Iterator[ParseResult]:
    """Parse a big NDJSON file chunk by chunk (cut on line ends, line numbers continuous).

    Each result's `bytes_read` is the file offset parsed so far, for a progress bar. `parse`
    (default `parse_ndjson`) lets replay put the interning fast path (ingest/fastpath.py) first."""
    parse_chunk = parse or parse_ndjson
    line = 1
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return
        # mmap: each chunk is copied once (mm[a:b]), instead of read + carry + cut copies
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            pos = 0
            while pos < size:
                end = min(pos + chunk_bytes, size)
                if end < size:
                    cut = mm.rfind(b"\n", pos, end)
                    if cut < 0:                    # a line longer than a chunk: take all of it
                        cut = mm.find(b"\n", end)
                    end = size if cut < 0 else cut + 1
                chunk = mm[pos:end]
                result = parse_chunk(chunk, now=now, limits=limits, first_line=line)
                line += result.lines if result.lines >= 0 else chunk.count(b"\n")
                pos = end
                result.bytes_read = pos
                yield result
