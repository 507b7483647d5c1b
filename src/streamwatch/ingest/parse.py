"""Sample bytes (NDJSON or a JSON array) -> a columnar `Batch` plus one `Rejection` per bad sample.

This is the first stage of the hot path: replay must sustain 500k samples/s end to end, so valid
input never meets per-sample Python. msgspec decodes a run of lines into structs whose type already
enforces the structural rules (non-empty names, label limits, number types, RFC 3339 shape); the
range rules (finite numbers, plausible `ts`, non-negative counters) then run vectorised over numpy
columns. Only lines or elements that fail the fast decode are re-read, one by one, by a forgiving
slow path (the stdlib `json`, which also accepts the `NaN`/`Infinity` literals some encoders write)
whose job is to say exactly what is wrong; good neighbours are never lost. Both paths feed the same
column checks, so a sample gets the same verdict whichever path it took.

This module decodes and frames (lines, array elements, file chunks, syntax errors); the rules a
decoded sample must meet, and the words for each breach, are ingest/validate.py's.

Decisions the contract leaves open (the per-field ones: ingest/validate.py):
- a number literal past 4000 digits is read as ±inf (NON_FINITE); nesting too deep to read is,
  like bad UTF-8, not JSON (MALFORMED);
- an NDJSON line that is not JSON is a per-line MALFORMED rejection, never `fatal`: the HTTP API
  refuses a body that has any, while replay skips them and counts them. In a JSON array a syntax
  error anywhere is `fatal` (nothing after it can be trusted to be where it seems).
"""
from __future__ import annotations

import gc
import json
import mmap
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np

from streamwatch.ingest.batch import Batch, Limits, ParseResult, Reason, Rejection
from streamwatch.ingest.validate import (RFC3339_SHAPE, Sink, json_type, rfc3339_to_unix,
                                         sample_from_obj)

__all__ = [
    "Reason", "Rejection", "Batch", "ParseResult", "Limits",
    "parse_ndjson", "parse_json_array", "parse_body", "iter_ndjson_file", "rfc3339_to_unix",
]

_BOM = b"\xef\xbb\xbf"
_PIECE = 128 << 10                # bytes decoded per round, so the column pass finds them in cache
_WS = b" \t\r"                    # JSON whitespace besides the line feed we split on
_KEY = re.compile(r'"([^"\\]{1,64})"\s*:')
_ARRAY_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*\[")
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
    stamp = Annotated[str, msgspec.Meta(pattern=RFC3339_SHAPE)]
    struct = msgspec.defstruct(
        "Sample", [("stream", name), ("metric", name), ("ts", float | stamp), ("value", float),
                   ("labels", labels | None, None)], gc=False)
    return struct, msgspec.json.Decoder(struct), msgspec.json.Decoder(list[struct])


def _json_int(text: str) -> int | float:
    """The stdlib's int(), except that a literal longer than Python converts (4300 digits) is
    the float it overflows to (±inf: rejected per sample as non-finite, not a crash)."""
    return int(text) if len(text) < 4000 else float(text)


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
    return sample_from_obj(obj, pos, "line", struct, limits)


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
    sink = Sink(now, limits, "line", b"labels" in data or b"\\u" in data)
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
    sink = Sink(now, limits, "index", b"labels" in data or b"\\u" in data)
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
            return _fatal(1, "", f"expected a JSON array of samples, got {json_type(objs)}")
        found, at, slow = [], [], []
        for i, obj in enumerate(objs):
            try:
                item = msgspec.convert(obj, struct)
            except msgspec.ValidationError:
                item = sample_from_obj(obj, i, "index", struct, limits)
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
