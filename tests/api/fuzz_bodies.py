"""Hostile `POST /v1/samples` bodies beyond the OpenAPI schema, each with the answer it must get.

The schema fuzzing (tests/api/fuzzing.py) only sends what a JSON encoder writes. A real sender
also writes `NaN` literals, numbers past a float, deep nesting, bytes that are not UTF-8, lone
surrogate escapes, truncated lines and the wrong Content-Type. Every body here is built from
pieces whose verdict is known from the contract (CONTRACTS §2, api/samples.py):

- `good`   a valid sample: must be accepted;
- `bad`    valid JSON that is not a valid sample: rejected alone, named by line/index;
- `broken` not JSON at all (syntax, UTF-8, nesting past what the parser reads): the whole body
           is refused with 400, naming the first such line (NDJSON);
- `blank`  an empty or whitespace line: skipped, but counted in line numbers.

So `judge` can check the exact counts: a 2xx must have accepted every good sample and rejected
every bad one at its position (good neighbours are never lost), a 4xx must carry a message.
Content-Type is not read by the route (it sniffs `[`), so any value must give the same answer; a
Content-Encoding other than identity must give 415.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

__all__ = ["Body", "ndjson_bodies", "array_bodies", "random_bodies", "judge", "message_of"]

NAMES = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=24)
COUNTERS = ("orders_total", "likes_total", "live")
GAUGES = ("viewers", "bitrate_kbps", "error_ratio", "fuzz_metric")
DEEP = 100_000                    # nesting no JSON reader here follows (recursion limit)
CONTENT_TYPES = (None, "application/x-ndjson", "application/json", "text/plain",
                 "application/octet-stream", "application/xml", "multipart/form-data; boundary=z",
                 "application/x-www-form-urlencoded", "application/json; charset=utf-16", "x/y;;")
ENCODINGS = ("identity", "IDENTITY", "gzip", "br", "deflate, gzip")   # 1 body in 6 has one


@dataclass(frozen=True)
class Body:
    data: bytes
    headers: dict[str, str]
    kind: str                      # ndjson | array | bytes
    goods: int                     # samples a 2xx must have accepted
    bad: tuple[int, ...]           # lines (1-based) or indexes (0-based) rejected one by one
    broken: int | None             # NDJSON: first line that is not JSON; array: 0 = invalid
    refuse: int | None = None      # a whole-body status the headers call for (415)

    def describe(self) -> str:
        head = self.data[:160] + (b"..." if len(self.data) > 160 else b"")
        return f"{self.kind} body {head!r} ({len(self.data)} bytes) headers {self.headers}"


def message_of(doc: Any) -> str:
    """The human-readable message of an error body: `detail` (a sentence, or FastAPI's list of
    `{msg}`), or our refusals' `{"error", "detail"}`; "" when there is none."""
    if not isinstance(doc, dict):
        return ""
    detail = doc.get("detail")
    if isinstance(detail, str):
        return detail.strip()
    if isinstance(detail, list) and detail:
        msgs = [d.get("msg") for d in detail if isinstance(d, dict)]
        if all(isinstance(m, str) and m.strip() for m in msgs) and len(msgs) == len(detail):
            return "; ".join(msgs)  # type: ignore[arg-type]
    return ""


# -- pieces -------------------------------------------------------------------------------------
def _rfc3339(ts: float, minutes: int) -> str:
    text = datetime.fromtimestamp(ts, timezone(timedelta(minutes=minutes))).isoformat()
    return text[:-6] + "Z" if minutes == 0 and text.endswith("+00:00") else text


@st.composite
def _good(draw: st.DrawFn, now: float) -> bytes:
    metric = draw(st.sampled_from(COUNTERS + GAUGES)
                  | NAMES.filter(lambda m: not m.endswith("_total") and m != "live"))
    counter = metric.endswith("_total") or metric == "live"
    value = draw(st.floats(min_value=0.0 if counter else None, allow_nan=False,
                           allow_infinity=False)
                 | st.integers(min_value=0 if counter else -10 ** 300, max_value=10 ** 300))
    ts: float | str = now - draw(st.floats(1.0, 30 * 86400.0))
    if draw(st.booleans()):
        ts = _rfc3339(ts, draw(st.sampled_from((0, 0, 480, -330))))
    doc: dict[str, Any] = {"stream": draw(NAMES), "metric": metric, "ts": ts, "value": value}
    if draw(st.booleans()):
        doc["labels"] = draw(st.none() | st.dictionaries(NAMES, st.text(max_size=40),
                                                         max_size=16))
    if draw(st.integers(0, 5)) == 0:
        doc["extra"] = draw(st.lists(st.integers(), max_size=3))     # unknown keys: ignored
    keys = draw(st.permutations(list(doc)))
    return json.dumps({k: doc[k] for k in keys}, ensure_ascii=draw(st.booleans())).encode()


def _with(now: float, field: str, raw: str) -> bytes:
    """A sample whose `field` is the raw JSON text `raw` (what an encoder would not write)."""
    doc = {"stream": "fz-bad", "metric": "viewers", "ts": now - 5, "value": 1.0}
    doc[field] = "@RAW@"  # type: ignore[assignment]
    return json.dumps(doc).replace('"@RAW@"', raw).encode()


def _bad(now: float, in_array: bool) -> st.SearchStrategy[bytes]:
    big = "9" * 5000
    raws = {
        "value": ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", big, "9" * 400, '"NaN"',
                  '"12.5"', "true", "null", "[]", "{}", '"inf"'],
        "ts": ["NaN", "1e999", "0", "-1", "946684799", f"{now + 3600}", "1e308", big,
               '"1999-12-31T23:59:59Z"', '"2026-01-01T00:00:00"', '"soon"', "true"],
        "stream": ['""', "1", "null", '["a"]', "{}", '"\\ud800"', '"a\\udfffb"'],
        "metric": ['""', "false", '"\\udc00"'],
        "labels": ["[]", '"x"', '{"k": 1}', '{"k": "\\ud800"}', json.dumps({"k": "v" * 129}),
                   json.dumps({f"k{i}": "v" for i in range(17)}),
                   '{"k": ' + "[" * 20 + "]" * 20 + "}"],
    }
    shaped = [_with(now, f, r) for f, rs in raws.items() for r in rs]
    shaped += [json.dumps({k: v for k, v in {"stream": "fz-miss", "metric": "viewers",
                                             "ts": now - 5, "value": 1}.items() if k != gone}
                          ).encode() for gone in ("stream", "metric", "ts", "value")]
    shaped += [json.dumps({"stream": "fz-neg", "metric": "orders_total", "ts": now - 5,
                           "value": -1.5}).encode(), b"42", b'"x"', b"null", b"true", b"{}"]
    if in_array:
        shaped += [b"[1]", b"[]"]
    return st.sampled_from(shaped)


def _utf8_breaker(text: bytes, junk: bytes) -> bytes:
    at = text.find(b'"', text.find(b'"stream"') + 8) + 1   # inside the stream name
    return text[:at] + junk + text[at:]


@st.composite
def _broken(draw: st.DrawFn, now: float) -> bytes:
    good = draw(_good(now))
    choice = draw(st.integers(0, 4))
    if choice == 0:                                        # truncated: a proper prefix
        return good[:draw(st.integers(1, len(good) - 1))]
    if choice == 1:                                        # not UTF-8 inside a string
        junk = draw(st.sampled_from((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xfe\xfe")))
        return _utf8_breaker(good, junk)
    if choice == 2:
        return b'{"labels": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    if choice == 3:                                        # two samples on one line
        return good + draw(st.sampled_from((b"\r", b" ", b""))) + good
    return draw(st.sampled_from((b"hello", b"{\x01}", b"\x00", b'{"stream":}', b'{"a": 1,}',
                                 b"{'stream': 'x'}", b'{"value": 0x10}', b'{"value": .5}',
                                 b'{"value": +1}', b'{"a" "b"}', b"}")))


def _headers(draw: st.DrawFn) -> tuple[dict[str, str], int | None]:
    headers, refuse = {}, None
    ctype = draw(st.sampled_from(CONTENT_TYPES))
    if ctype is not None:
        headers["Content-Type"] = ctype
    enc = draw(st.sampled_from(ENCODINGS)) if draw(st.integers(0, 5)) == 0 else None
    if enc is not None:
        headers["Content-Encoding"] = enc
        refuse = None if enc.strip().lower() == "identity" else 415
    return headers, refuse


# -- bodies -------------------------------------------------------------------------------------
@st.composite
def ndjson_bodies(draw: st.DrawFn, now: float, max_lines: int = 12) -> Body:
    kinds = draw(st.lists(st.sampled_from(("good", "good", "bad", "blank")), min_size=1,
                          max_size=max_lines))
    for _ in range(draw(st.sampled_from((0, 0, 1, 2)))):   # half the bodies are not NDJSON
        kinds.insert(draw(st.integers(0, len(kinds))), "broken")
    pieces, bad, broken = [], [], None
    for line, kind in enumerate(kinds, start=1):
        if kind == "good":
            pieces.append(draw(_good(now)))
        elif kind == "bad":
            pieces.append(draw(_bad(now, in_array=False)))
            bad.append(line)
        elif kind == "blank":
            pieces.append(draw(st.sampled_from((b"", b" ", b"\t", b"  \t"))))
        else:
            pieces.append(draw(_broken(now)))
            broken = line if broken is None else broken
    ends = [draw(st.sampled_from((b"\n", b"\r\n"))) for _ in pieces]
    if draw(st.booleans()):
        ends[-1] = b""                                    # no final line feed
    data = b"".join(p + e for p, e in zip(pieces, ends))
    if draw(st.integers(0, 4)) == 0:
        data = b"\xef\xbb\xbf" + data                     # a BOM before the first line
    headers, refuse = _headers(draw)
    return Body(data, headers, "ndjson", kinds.count("good"), tuple(bad), broken, refuse)


@st.composite
def array_bodies(draw: st.DrawFn, now: float, max_items: int = 12) -> Body:
    kinds = draw(st.lists(st.sampled_from(("good", "good", "bad")), max_size=max_items))
    items = [draw(_good(now)) if k == "good" else draw(_bad(now, in_array=True)) for k in kinds]
    seps = [draw(st.sampled_from((b",", b", ", b",\n", b"\r\n,\t"))) for _ in items[1:]]
    inner = items[0] if items else b""
    for sep, item in zip(seps, items[1:]):
        inner += sep + item
    data = draw(st.sampled_from((b"", b" ", b"\n"))) + b"[" + inner + b"]"
    broken = None
    how = draw(st.integers(0, 9)) if items else 9
    if how == 0:                                          # truncated before its last `]`
        data, broken = data[:draw(st.integers(data.index(b"[") + 1, len(data) - 1))], 0
    elif how == 1 and kinds.count("good"):                # not UTF-8 inside a sample
        k = kinds.index("good")
        items[k] = _utf8_breaker(items[k], b"\xff")
        data, broken = b"[" + b",".join(items) + b"]", 0
    elif how == 2:
        data, broken = data[:-1] + b", " + b"[" * DEEP + b"]" * DEEP + b"]", 0
    elif how == 3:
        data, broken = data + draw(st.sampled_from((b" x", b"[]", b",", b"\n{}"))), 0
    elif how == 4 and len(items) > 1:                    # a missing comma
        data, broken = b"[" + b" ".join(items) + b"]", 0
    headers, refuse = _headers(draw)
    bad = tuple(i for i, k in enumerate(kinds) if k == "bad")
    return Body(data, headers, "array", kinds.count("good"), bad, broken, refuse)


@st.composite
def random_bodies(draw: st.DrawFn) -> Body:
    data = draw(st.binary(max_size=600) | st.text(max_size=300).map(
        lambda t: t.encode("utf-8", "surrogatepass")))
    headers, refuse = _headers(draw)
    return Body(data, headers, "bytes", 0, (), None, refuse)


# -- the verdict ----------------------------------------------------------------------------------
def judge(body: Body, status: int, doc: Any) -> str | None:
    """None when the answer is what the contract promises for `body`, else what is wrong."""
    if 400 <= status < 500 and not message_of(doc):
        return f"{status} without a human-readable message: {doc!r:.200}"
    if status == 429:                                     # back-pressure is always allowed
        return None
    if body.refuse is not None:
        return None if status == body.refuse else f"expected {body.refuse}, got {status}"
    if body.kind == "bytes":
        if status in (400, 413):
            return None
        if status != 200:
            return f"expected 200 or 400, got {status}"
        return _shape(doc)
    if body.broken is not None:
        if status != 400:
            return f"expected 400 (not JSON at line {body.broken}), got {status}: {doc!r:.300}"
        if body.kind == "ndjson" and doc.get("line") != body.broken:
            return f"400 names line {doc.get('line')}, the first broken one is {body.broken}"
        return None
    if status != 200:
        return f"expected 200 with per-sample errors, got {status}: {doc!r:.300}"
    wrong = _shape(doc)
    if wrong:
        return wrong
    if (doc["accepted"], doc["rejected"]) != (body.goods, len(body.bad)):
        return (f"accepted {doc['accepted']}, rejected {doc['rejected']}; expected "
                f"{body.goods} and {len(body.bad)} (bad at {list(body.bad)}): {doc['errors']}")
    key = "line" if body.kind == "ndjson" else "index"
    named = [e.get(key) for e in doc["errors"]]
    if named != list(body.bad[:len(named)]):
        return f"errors name {key}s {named}, expected {list(body.bad)}"
    return None


def _shape(doc: Any) -> str | None:
    if not (isinstance(doc, dict) and isinstance(doc.get("accepted"), int)
            and isinstance(doc.get("rejected"), int) and isinstance(doc.get("errors"), list)):
        return f"2xx without accepted/rejected/errors: {doc!r:.200}"
    if any(not (isinstance(e, dict) and e.get("reason") and e.get("detail"))
           for e in doc["errors"]):
        return f"an error entry without reason and detail: {doc['errors']!r:.300}"
    if len(doc["errors"]) + doc.get("errors_omitted", 0) != doc["rejected"]:
        return "errors listed + omitted != rejected"
    return None
