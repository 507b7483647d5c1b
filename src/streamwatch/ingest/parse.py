"""Sample bytes (NDJSON or a JSON array) -> a columnar `Batch` plus one `Rejection` per bad sample.

This is the first stage of the hot path: replay must sustain 500k samples/s end to end, so valid
input never meets per-sample Python. msgspec decodes a whole chunk into structs whose type already
enforces the structural rules (non-empty names, label limits, number types); the range rules (finite
numbers, plausible `ts`, non-negative counters) then run vectorised over numpy columns. Only lines
or elements that fail the fast decode are re-read, one by one, by a forgiving slow path (the stdlib
`json`, which also accepts the `NaN`/`Infinity` literals some encoders write) whose job is to say
exactly what is wrong; good neighbours are never lost. Both paths feed the same column checks, so a
sample gets the same verdict whichever path it took.

Decisions the contract leaves open:
- a number sent as a string (`"12.5"`) is WRONG_TYPE; a string spelling a non-finite number
  (`"NaN"`, `"inf"`) is NON_FINITE; `true`/`false` are never numbers;
- a `ts` string must be RFC 3339 *with* a zone (`Z` or `±hh:mm`): a zoneless time is ambiguous;
- each sample gets at most one rejection: the first rule it breaks, structural rules first;
- an NDJSON line that is not JSON is a per-line MALFORMED rejection, never `fatal`: the HTTP API
  refuses a body that has any, while replay skips them and counts them. In a JSON array a syntax
  error anywhere is `fatal` (nothing in the body can be trusted to be where it seems).
"""
from __future__ import annotations

import gc
import json
import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from functools import lru_cache
from itertools import accumulate
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from streamwatch.types import Floats, Ints

__all__ = [
    "Reason", "Rejection", "Batch", "ParseResult", "Limits",
    "parse_ndjson", "parse_json_array", "parse_body", "iter_ndjson_file", "rfc3339_to_unix",
]

_BOM = b"\xef\xbb\xbf"
_PIECE = 64 << 10                 # bytes per decode+columns round (see parse_ndjson)
_WS = b" \t\r"                   # JSON whitespace other than the line feed we split on
_FIELDS = ("stream", "metric", "ts", "value")
_STREAM, _METRIC, _TS, _VALUE, _LABELS = (attrgetter(f) for f in (*_FIELDS, "labels"))
_AT_INDEX = re.compile(r"at `\$\[(\d+)\]")
_AT_BYTE = re.compile(r"\(byte (\d+)\)")
_KEY = re.compile(rb'"([^"\\]{1,64})"\s*:')
_ARRAY_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*\[")
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(?:([Zz])|([+-])(\d\d):(\d\d))")


class Reason(StrEnum):
    """Why a sample was refused; the values are the `reason` strings of API errors and /metrics."""
    MALFORMED = "malformed"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"
    NEGATIVE_COUNT = "negative_count"
    ABSURD_TIMESTAMP = "absurd_timestamp"
    OVERSIZED_LABELS = "oversized_labels"
    EMPTY_NAME = "empty_name"


@dataclass(slots=True)
class Rejection:
    """One refused sample (or, as `ParseResult.fatal`, a refused body): where, which field, why."""
    position: int                          # 0-based index (array) or 1-based line (NDJSON)
    position_kind: Literal["index", "line"]
    field: str                             # "" when no single field is to blame
    reason: Reason
    detail: str                            # human sentence, e.g. "NaN is not a finite number"


@dataclass(slots=True)
class Batch:
    """The good samples in input order, column-wise so later stages can stay vectorised."""
    streams: list[str]
    metrics: list[str]
    ts: Floats                             # unix seconds
    values: Floats
    labels: list[dict[str, str] | None]
    positions: Ints                        # index or line each sample came from

    def __len__(self) -> int:
        return len(self.streams)

    @staticmethod
    def empty() -> Batch:
        return Batch([], [], np.empty(0), np.empty(0), [], np.empty(0, np.int64))

    @staticmethod
    def concat(batches: Iterable[Batch]) -> Batch:
        parts = [b for b in batches if len(b)]
        if len(parts) <= 1:
            return parts[0] if parts else Batch.empty()
        streams: list[str] = []
        metrics: list[str] = []
        labels: list[dict[str, str] | None] = []
        for b in parts:
            streams += b.streams
            metrics += b.metrics
            labels += b.labels
        return Batch(streams, metrics, np.concatenate([b.ts for b in parts]),
                     np.concatenate([b.values for b in parts]), labels,
                     np.concatenate([b.positions for b in parts]))


@dataclass(slots=True)
class ParseResult:
    """`fatal` set means the body as a whole is unreadable (then `batch` is empty).

    `bytes_read` is progress for `iter_ndjson_file`: bytes of the file consumed up to and including
    this chunk (0 for in-memory parses)."""
    batch: Batch
    rejections: list[Rejection]
    fatal: Rejection | None = None
    bytes_read: int = 0


@dataclass(frozen=True)
class Limits:
    max_labels: int = 16
    max_label_len: int = 128
    future_skew_s: float = 300.0
    min_ts: float = 946684800.0            # 2000-01-01T00:00:00Z


@lru_cache(maxsize=16)
def _codecs(limits: Limits) -> tuple[type, msgspec.json.Decoder, msgspec.json.Decoder]:
    """Sample struct and decoders for `limits`: the struct type itself enforces the structural
    rules, so a chunk that decodes needs no per-sample structural check at all."""
    name = Annotated[str, msgspec.Meta(min_length=1)]
    text = Annotated[str, msgspec.Meta(max_length=limits.max_label_len)]
    labels = Annotated[dict[text, text], msgspec.Meta(max_length=limits.max_labels)]  # type: ignore[valid-type]
    struct = msgspec.defstruct(
        "Sample", [("stream", name), ("metric", name), ("ts", float | str), ("value", float),
                   ("labels", labels | None, None)], gc=False)
    return struct, msgspec.json.Decoder(struct), msgspec.json.Decoder(list[struct])


def rfc3339_to_unix(text: str) -> float | None:
    """Unix seconds of an RFC 3339 time with a zone (`Z`/`±hh:mm`, any fraction); None if not one."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    offset = timedelta(0) if z else timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=timezone(offset))
    except ValueError:
        return None
    return dt.timestamp() + (float(frac) if frac else 0.0)


def _spell(x: float) -> str:
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity") if math.isinf(x) else repr(x)


def _jtype(v: object) -> str:
    return {bool: "a boolean", str: "a string", dict: "an object", list: "an array",
            type(None): "null"}.get(type(v), "a number")


def _string_number(s: str, key: str) -> tuple[Reason, str]:
    """Verdict on a string where a number belongs: non-finite spellings are NON_FINITE."""
    try:
        x = float(s)
    except ValueError:
        want = "a number or an RFC 3339 time with a zone" if key == "ts" else "a number"
        return Reason.WRONG_TYPE, f"expected {want}, got string {s[:40]!r}"
    if not math.isfinite(x):
        return Reason.NON_FINITE, f"{s[:40]!r} is not a finite number"
    return Reason.WRONG_TYPE, f"expected a number, got numeric string {s[:40]!r} (send it unquoted)"


def _from_obj(obj: Any, pos: int, kind: Literal["index", "line"], struct: type,
              limits: Limits) -> Any:
    """Slow path: a decoded JSON value -> a sample struct (numbers still unchecked) or a Rejection."""
    def bad(key: str, reason: Reason, detail: str) -> Rejection:
        return Rejection(pos, kind, key, reason, detail)

    if not isinstance(obj, dict):
        return bad("", Reason.MALFORMED, f"expected a JSON object, got {_jtype(obj)}")
    for key in _FIELDS:
        if key not in obj:
            return bad(key, Reason.MISSING_FIELD, f"required field {key!r} is missing")
    num: dict[str, float | str] = {}
    for key in _FIELDS:
        v = obj[key]
        if key in ("stream", "metric"):
            if not isinstance(v, str):
                return bad(key, Reason.WRONG_TYPE, f"expected a string, got {_jtype(v)}")
            if not v:
                return bad(key, Reason.EMPTY_NAME, f"{key} must not be empty")
        elif isinstance(v, str):
            if key == "ts":                # RFC 3339 is judged with the other ts rules
                num[key] = v
                continue
            return bad(key, *_string_number(v, key))
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            return bad(key, Reason.WRONG_TYPE, f"expected a number, got {_jtype(v)}")
        else:
            try:
                num[key] = float(v)
            except OverflowError:
                return bad(key, Reason.NON_FINITE, "the number overflows a float")
    labels = obj.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or not all(isinstance(x, str) for x in labels.values()):
            return bad("labels", Reason.WRONG_TYPE, "expected an object of string to string")
        if len(labels) > limits.max_labels:
            return bad("labels", Reason.OVERSIZED_LABELS,
                       f"{len(labels)} labels, at most {limits.max_labels} allowed")
        if any(len(x) > limits.max_label_len for kv in labels.items() for x in kv):
            return bad("labels", Reason.OVERSIZED_LABELS,
                       f"a label key or value is longer than {limits.max_label_len} characters")
    return struct(obj["stream"], obj["metric"], num["ts"], num["value"], labels)


def _syntax_error(err: json.JSONDecodeError, with_line: bool) -> tuple[str, str]:
    """(best-guess field, sentence) for a JSON syntax error; the guess is the last key before it."""
    keys = _KEY.findall(err.doc[max(0, err.pos - 2000):err.pos].encode("utf-8", "replace"))
    near = keys[-1].decode("utf-8", "replace") if keys else ""
    where = f" near field {near!r}" if near else ""
    at = f"line {err.lineno} column {err.colno}" if with_line else f"column {err.colno}"
    return near, f"not valid JSON at {at}{where}: {err.msg}"


def _from_line(line: bytes, pos: int, struct: type, limits: Limits) -> Any:
    try:
        text = line.decode("utf-8")
        obj = json.loads(text)
    except UnicodeDecodeError:
        return Rejection(pos, "line", "", Reason.MALFORMED, "line is not UTF-8")
    except json.JSONDecodeError as e:
        return Rejection(pos, "line", "", Reason.MALFORMED, _syntax_error(e, False)[1])
    return _from_obj(obj, pos, "line", struct, limits)


def _columns(items: list[Any], positions: Ints, kind: Literal["index", "line"], now: float,
             limits: Limits, with_labels: bool) -> tuple[Batch, list[Rejection]]:
    """Structs -> Batch, applying the numeric rules vectorised; Python only touches bad samples."""
    n = len(items)
    if n == 0:
        return Batch.empty(), []
    streams, metrics = list(map(_STREAM, items)), list(map(_METRIC, items))
    values = np.fromiter(map(_VALUE, items), np.float64, count=n)
    ts_list = list(map(_TS, items))
    ts = np.array(ts_list)             # float64 unless some ts is an (RFC 3339) string
    why: dict[int, tuple[str, Reason, str]] = {}
    if ts.dtype != np.float64:
        ts = np.empty(n)
        for i, t in enumerate(ts_list):
            if isinstance(t, str):
                u = rfc3339_to_unix(t)
                if u is None:
                    why[i] = ("ts", *_string_number(t, "ts"))
                t = math.nan if u is None else u
            ts[i] = t
    labels = list(map(_LABELS, items)) if with_labels else [None] * n
    ok = np.isfinite(values) & (ts >= limits.min_ts) & (ts <= now + limits.future_skew_s)
    negative = [i for i in np.flatnonzero(ok & (values < 0)).tolist()
                if metrics[i].endswith("_total") or metrics[i] == "live"]
    if not negative and ok.all():
        return Batch(streams, metrics, ts, values, labels, positions), []
    for i in negative:
        why[i] = ("value", Reason.NEGATIVE_COUNT, f"counter {metrics[i]!r} cannot be negative ({float(values[i])!r})")
    ok[negative] = False
    for i in np.flatnonzero(~ok).tolist():
        if i in why:
            continue
        v, t = float(values[i]), float(ts[i])
        if not math.isfinite(v):
            why[i] = ("value", Reason.NON_FINITE, f"{_spell(v)} is not a finite number")
        elif not math.isfinite(t):
            why[i] = ("ts", Reason.NON_FINITE, f"{_spell(t)} is not a finite number")
        elif t < limits.min_ts:
            why[i] = ("ts", Reason.ABSURD_TIMESTAMP, f"ts {t!r} is before 2000-01-01")
        else:
            why[i] = ("ts", Reason.ABSURD_TIMESTAMP, f"ts {t!r} is {t - now:.0f} s ahead of the "
                      f"server clock (at most {limits.future_skew_s:.0f} s allowed)")
    ok[list(why)] = False
    keep = np.flatnonzero(ok)
    idx = keep.tolist()
    batch = Batch([streams[i] for i in idx], [metrics[i] for i in idx], ts[keep], values[keep],
                  [labels[i] for i in idx], positions[keep])
    rejections = [Rejection(int(positions[i]), kind, *why[i]) for i in sorted(why)]
    return batch, rejections


def _merge(a: list[Rejection], b: list[Rejection]) -> list[Rejection]:
    return sorted(a + b, key=attrgetter("position")) if a and b else a or b


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a chunk is parsed: it creates no cycles, but its young lists of
    thousands of strings would otherwise be re-traversed by every gen-0 collection (-20 % speed)."""
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

    Big inputs are taken in ~64 KiB pieces cut on line ends: the column pass then finds the
    freshly decoded structs still in cache, which is worth about a third of the time."""
    if first_line == 1 and data.startswith(_BOM):
        data = data[3:]
    with_labels = b"labels" in data or b"\\u" in data
    batches, rejections, start, line = [], [], 0, first_line
    with _gc_paused():
        while start < len(data):
            end = data.find(b"\n", start + _PIECE) + 1 or len(data)
            batch, rejected = _ndjson_piece(data[start:end], now, limits, line, with_labels)
            batches.append(batch)
            rejections += rejected
            line += data.count(b"\n", start, end)
            start = end
        return ParseResult(Batch.concat(batches), rejections)


def _ndjson_piece(data: bytes, now: float, limits: Limits, first_line: int,
                  with_labels: bool) -> tuple[Batch, list[Rejection]]:
    struct, dec, _ = _codecs(limits)
    try:
        items = dec.decode_lines(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        items = None
    if items is not None:
        n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        if len(items) == n_lines:      # one sample per line, no blank lines: positions are free
            pos = np.arange(first_line, first_line + n_lines, dtype=np.int64)
            return _columns(items, pos, "line", now, limits, with_labels)
    items, lines, slow = _decode_tolerant(data, dec, struct, limits, first_line)
    pos = np.array(lines, dtype=np.int64) + first_line
    batch, rejections = _columns(items, pos, "line", now, limits, with_labels)
    return batch, _merge(slow, rejections)


def _decode_tolerant(data: bytes, dec: msgspec.json.Decoder, struct: type, limits: Limits,
                     first_line: int) -> tuple[list[Any], list[int], list[Rejection]]:
    """Decode around bad lines: decode_lines from line k until it trips, decode the good stretch
    before the bad line in one go, judge the bad line alone, resume after it. Any stretch whose
    item count does not match its line count (a JSON value spanning lines) is redone per line."""
    lines = data.split(b"\n")
    starts = list(accumulate((len(x) + 1 for x in lines), initial=0))
    nb = [i for i, x in enumerate(lines) if x.strip(_WS)]
    view = memoryview(data)
    items: list[Any] = []
    at: list[int] = []                 # 0-based line of each item
    rejected: list[Rejection] = []

    def one_by_one(ids: list[int]) -> None:
        for i in ids:
            try:
                item = dec.decode(lines[i])
            except (msgspec.ValidationError, msgspec.DecodeError):
                item = _from_line(lines[i], i + first_line, struct, limits)
            if isinstance(item, Rejection):
                rejected.append(item)
            else:
                items.append(item)
                at.append(i)

    def stretch(ids: list[int], end: int | None) -> None:
        if ids:
            try:
                got = dec.decode_lines(view[starts[ids[0]]:end])
            except (msgspec.ValidationError, msgspec.DecodeError):
                got = []
            if len(got) == len(ids):
                items.extend(got)
                at.extend(ids)
            else:
                one_by_one(ids)

    k = 0
    while k < len(nb):
        begin = starts[nb[k]]
        try:
            dec.decode_lines(view[begin:])
        except msgspec.ValidationError as e:
            m = _AT_INDEX.search(str(e))
            bad = None if m is None else min(k + int(m.group(1)), len(nb) - 1)
        except msgspec.DecodeError as e:
            m = _AT_BYTE.search(str(e))
            line = bisect_right(starts, begin + int(m.group(1))) - 1 if m else -1
            bad = None if m is None else max(k, min(bisect_right(nb, line) - 1, len(nb) - 1))
        else:
            stretch(nb[k:], None)
            break
        if bad is None:                # unexpected message: be slow but exact
            one_by_one(nb[k:])
            break
        stretch(nb[k:bad], starts[nb[bad]])
        one_by_one([nb[bad]])
        k = bad + 1
    return items, at, rejected


def parse_json_array(data: bytes, *, now: float, limits: Limits = Limits()) -> ParseResult:
    """Parse a JSON array of samples; a syntax error anywhere makes the whole body `fatal`."""
    if data.startswith(_BOM):
        data = data[3:]
    struct, _, dec = _codecs(limits)
    with_labels = b"labels" in data or b"\\u" in data
    try:
        items = dec.decode(data)
        return ParseResult(*_columns(items, np.arange(len(items), dtype=np.int64), "index",
                                     now, limits, with_labels))
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    try:
        objs = msgspec.json.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):  # NaN literals, 1e999, or broken JSON
        try:
            text = data.decode("utf-8")
            objs = json.loads(text)
        except UnicodeDecodeError:
            return _fatal(1, "", "body is not UTF-8")
        except json.JSONDecodeError as e:
            return _fatal(e.lineno, *_syntax_error(e, True))
    if not isinstance(objs, list):
        return _fatal(1, "", f"expected a JSON array of samples, got {_jtype(objs)}")
    items, at, slow = [], [], []
    for i, obj in enumerate(objs):
        try:
            item = msgspec.convert(obj, struct)
        except msgspec.ValidationError:
            item = _from_obj(obj, i, "index", struct, limits)
        if isinstance(item, Rejection):
            slow.append(item)
        else:
            items.append(item)
            at.append(i)
    batch, rejections = _columns(items, np.array(at, dtype=np.int64), "index", now, limits, with_labels)
    return ParseResult(batch, _merge(slow, rejections))


def _fatal(line: int, key: str, detail: str) -> ParseResult:
    return ParseResult(Batch.empty(), [], Rejection(line, "line", key, Reason.MALFORMED, detail))


def parse_body(data: bytes, *, now: float, limits: Limits = Limits()) -> ParseResult:
    """A pushed body: a JSON array if its first non-space byte is `[`, NDJSON otherwise."""
    if _ARRAY_START.match(data):
        return parse_json_array(data, now=now, limits=limits)
    return parse_ndjson(data, now=now, limits=limits)


def iter_ndjson_file(path: Path, *, now: float, chunk_bytes: int = 4 << 20,
                     limits: Limits = Limits()) -> Iterator[ParseResult]:
    """Parse a big NDJSON file chunk by chunk (cut on line ends, line numbers continuous).

    Each result's `bytes_read` is the file offset parsed so far, for a progress bar."""
    line, done, carry = 1, 0, b""
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            buf = carry + block if carry else block
            cut = buf.rfind(b"\n") + 1
            if cut == 0:               # a line longer than a chunk: keep reading
                carry = buf
                continue
            chunk, carry = buf[:cut], buf[cut:]
            result = parse_ndjson(chunk, now=now, limits=limits, first_line=line)
            line += chunk.count(b"\n")
            done += len(chunk)
            result.bytes_read = done
            yield result
    if carry:
        result = parse_ndjson(carry, now=now, limits=limits, first_line=line)
        result.bytes_read = done + len(carry)
        yield result
