"""The interning fast path gives exactly what the exact parser gives, line for line."""
from __future__ import annotations

import numpy as np
import pytest

from streamwatch.ingest.batch import Batch, ParseResult
from streamwatch.ingest.fastpath import Interned, Staging
from streamwatch.ingest.names import Names, fnv1a, lookup_hash
from streamwatch.ingest.parse import Limits, parse_ndjson

NOW = 1767225600.0 + 3600
T = 1767225600

LINES = [
    # the common shape, keys in any order, whitespace, labels
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":236.0}' % T,
    b'{ "value" : 12 , "ts" : %d.125 , "metric" : "orders_total" , "stream" : "room-1" }' % T,
    b'{"stream":"room-2","metric":"viewers","ts":%d,"value":1,"labels":{"platform":"douyin"}}' % T,
    b'{"stream":"room-2","metric":"viewers","ts":%d,"value":1,"labels":{}}' % T,
    b'{"stream":"room-2","metric":"viewers","ts":%d,"value":1,"labels":null}\r' % T,
    b'',                                                       # blank line: skipped, counted
    b'   ',
    # numbers the fast path declines but the exact parser reads
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":1.5e3}' % T,
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":0.1234567890123456789}' % T,
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":-0.0}' % T,
    b'{"stream":"room-1","metric":"viewers","ts":"2026-01-01T00:00:01Z","value":3}',
    # escapes and unicode names
    b'{"stream":"room-\\u0031","metric":"viewers","ts":%d,"value":2}' % T,
    '{"stream":"直播间-7","metric":"viewers","ts":%d,"value":2}'.encode() % T,
    # unknown extra key (ignored)
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":2,"extra":[1,{"a":"}"}]}' % T,
    # bad samples: each must be rejected with the same reason and field
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":NaN}' % T,
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":"NaN"}' % T,
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":1e999}' % T,
    b'{"stream":"room-1","metric":"orders_total","ts":%d,"value":-1}' % T,
    b'{"stream":"room-1","metric":"viewers","ts":946684799,"value":1}',
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":1}' % (NOW + 301),
    b'{"stream":"","metric":"viewers","ts":%d,"value":1}' % T,
    b'{"stream":"room-1","ts":%d,"value":1}' % T,
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":true}' % T,
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":1,"labels":{"a":1}}' % T,
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":1,"labels":{"%s":"x"}}' % (T, b"k" * 200),
    b'not json at all',
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":01}' % T,
    b'{"stream":"room-1","metric":"viewers","ts":%d,"value":1}}' % T,
    b'[1, 2]',
]


def _both(data: bytes, first_line: int = 1):  # type: ignore[no-untyped-def]
    exact = parse_ndjson(data, now=NOW, limits=Limits(), first_line=first_line)
    fast = Interned(Names(), Names()).parse_ndjson(data, now=NOW, limits=Limits(),
                                                   first_line=first_line)
    return exact, fast


def _same(exact, fast) -> None:  # type: ignore[no-untyped-def]
    a, b = exact.batch, fast.batch
    assert list(a.streams) == list(b.streams) and list(a.metrics) == list(b.metrics)
    assert np.array_equal(a.ts, b.ts) and np.array_equal(a.values, b.values)
    assert np.array_equal(np.signbit(a.values), np.signbit(b.values))
    assert np.array_equal(a.positions, b.positions)
    assert list(a.labels) == list(b.labels)
    assert [(r.position, r.field, r.reason) for r in exact.rejections] == \
        [(r.position, r.field, r.reason) for r in fast.rejections]
    assert b.sids is not None and b.mids is not None


@pytest.mark.parametrize("line", LINES, ids=range(len(LINES)))
def test_each_line_alone(line: bytes) -> None:
    _same(*_both(line + b"\n"))


def test_all_lines_together_keep_order_and_line_numbers() -> None:
    data = b"\n".join(LINES) + b"\n"
    exact, fast = _both(data, first_line=41)
    _same(exact, fast)
    assert len(fast.batch) >= 10 and len(fast.rejections) >= 12


def test_no_trailing_newline_and_many_names() -> None:
    rng = np.random.default_rng(3)
    lines = [b'{"stream":"room-%d","metric":"m%d_total","ts":%d.%03d,"value":%d}' % (
        rng.integers(0, 300), rng.integers(0, 40), T + i, rng.integers(0, 1000),
        rng.integers(0, 10**9)) for i in range(5000)]
    _same(*_both(b"\n".join(lines)))


def test_ids_follow_the_interning() -> None:
    streams, metrics = Names(), Names()
    parser = Interned(streams, metrics)
    data = b"\n".join(LINES[:5]) + b"\n"
    r1 = parser.parse_ndjson(data, now=NOW)
    r2 = parser.parse_ndjson(data, now=NOW)     # second time: names known to the hash table
    assert np.array_equal(r1.batch.sids, r2.batch.sids)
    assert [streams.names[i] for i in r2.batch.sids.tolist()] == list(r2.batch.streams)


# -- the stream limit (ingest/newnames.py): both routes, and a plain reference ------------------
KNOWN = ["room-1", "room-2"]


def _with_known() -> Interned:
    streams = Names()
    for s in KNOWN:
        streams.intern(s)
    return Interned(streams, Names())


def _limit_lines() -> list[bytes]:
    """New streams in every form the two paths treat differently (fast, escaped, unicode, a
    number only the exact parser reads, a bad sample of a new stream), between known ones."""
    out = []
    for i in range(40):
        out += [b'{"stream":"new-%d","metric":"viewers","ts":%d,"value":%d}' % (i, T, i),
                b'{"stream":"room-1","metric":"viewers","ts":%d,"value":1}' % (T + i)]
        if i % 4 == 0:
            out.append(b'{"stream":"esc-\\u00%02x-%d","metric":"orders_total","ts":%d,"value":1}'
                       % (0x41 + i % 26, i, T))
        if i % 5 == 0:
            out.append('{"stream":"直播-%d","metric":"viewers","ts":%d,"value":1.5e3}'
                       .encode() % (i, T))
        if i % 6 == 0:              # rejected for its value: must not take a place in the limit
            out.append(b'{"stream":"nan-%d","metric":"viewers","ts":%d,"value":NaN}' % (i, T))
        if i % 7 == 0:
            out.append(b'{"stream":"new-%d","metric":"new_metric_%d","ts":%d,"value":2}'
                       % (i, i, T + 1))
    return out + LINES


def _reference(exact, limit: int) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    """(positions kept, positions refused) by the rule in words: in input order, a sample of a
    tracked stream is kept; a new stream is tracked while fewer than `limit` are."""
    tracked, kept, refused = set(KNOWN), [], []
    for stream, pos in zip(exact.batch.streams, exact.batch.positions.tolist()):
        if stream in tracked or len(tracked) < limit:
            tracked.add(stream)
            kept.append(pos)
        else:
            refused.append(pos)
    return kept, refused


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 30, 1000])
def test_stream_limit_same_on_both_paths_and_as_the_rule_says(limit: int) -> None:
    data = b"\n".join(_limit_lines()) + b"\n"
    limits = Limits(max_streams=limit)
    exact_parse = parse_ndjson(data, now=NOW, limits=limits)
    exact = _with_known().commit(exact_parse, None, limits)
    fast_parser = _with_known()
    fast = fast_parser.parse_ndjson(data, now=NOW, limits=limits)
    _same(exact, fast)
    kept, refused = _reference(exact_parse, limit)
    assert fast.batch.positions.tolist() == kept
    assert [r.position for r in fast.rejections if r.reason == "stream_limit"] == refused
    assert len(fast_parser.streams) == max(limit, len(KNOWN)) if refused else True
    assert set(fast_parser.streams.names) == set(KNOWN) | set(fast.batch.streams)
    for r in fast.rejections:
        if r.reason == "stream_limit":
            assert r.field == "stream" and f"ingest.max_streams = {limit}" in r.detail
    if limit <= len(KNOWN):        # full already: only the known streams' samples get in
        assert set(fast.batch.streams) == {"room-1", "room-2"} and refused


def test_limit_spans_calls_and_known_streams_always_pass() -> None:
    parser = _with_known()
    limits = Limits(max_streams=3)
    first = parser.parse_ndjson(b'{"stream":"a","metric":"viewers","ts":%d,"value":1}\n' % T,
                                now=NOW, limits=limits)
    assert len(first.batch) == 1 and len(parser.streams) == 3
    data = b"".join(b'{"stream":"%s","metric":"viewers","ts":%d,"value":1}\n' % (s, T + 1)
                    for s in (b"b", b"room-2", b"a", b"c", b"room-1"))
    res = parser.parse_ndjson(data, now=NOW, limits=limits)
    assert list(res.batch.streams) == ["room-2", "a", "room-1"]
    assert [(r.position, r.reason) for r in res.rejections] == [(1, "stream_limit"),
                                                                (4, "stream_limit")]
    assert len(parser.streams) == 3 and parser.streams.get("b") is None
    # a refused sample interns nothing, its metric included
    metrics = len(parser.metrics)
    res = parser.parse_ndjson(b'{"stream":"z","metric":"brand_new","ts":%d,"value":1}\n' % T,
                              now=NOW, limits=limits)
    assert not len(res.batch) and res.rejections[0].reason == "stream_limit"
    assert len(parser.metrics) == metrics and parser.metrics.get("brand_new") is None


def test_staged_parse_interns_nothing_until_commit_and_rollback_forgets() -> None:
    parser = _with_known()
    body = b"".join(b'{"stream":"s-%d","metric":"m-%d","ts":%d,"value":1}\n' % (i, i % 3, T)
                    for i in range(300))
    staging = Staging()
    parts = [parser.parse_ndjson(body[:len(body) // 2 + 7].rsplit(b"\n", 1)[0] + b"\n",
                                 now=NOW, staging=staging)]
    cut = len(parts[0].batch)
    rest = b"".join(body.splitlines(keepends=True)[cut:])
    parts.append(parser.parse_ndjson(rest, now=NOW, staging=staging, first_line=cut + 1))
    assert len(parser.streams) == len(KNOWN) and len(parser.metrics) == 0   # nothing yet
    assert list(parts[0].batch.streams)[:2] == ["s-0", "s-1"]               # named all the same
    mark = parser.mark()
    res = parser.commit(ParseResult(Batch.concat([p.batch for p in parts]), []), staging)
    assert len(res.batch) == 300 and len(parser.streams) == 302 and len(parser.metrics) == 3
    assert [parser.streams.names[i] for i in res.batch.sids.tolist()] == list(res.batch.streams)
    assert parser.rollback(mark)
    assert len(parser.streams) == len(KNOWN) and len(parser.metrics) == 0
    again = parser.parse_ndjson(body, now=NOW)                 # as if never seen: ids re-given
    assert len(again.batch) == 300 and len(parser.streams) == 302
    assert list(again.batch.streams) == [f"s-{i}" for i in range(300)]


def test_rollback_refuses_when_names_were_interned_since() -> None:
    parser = _with_known()
    mark = parser.mark()
    parser.parse_ndjson(b'{"stream":"x","metric":"viewers","ts":%d,"value":1}\n' % T, now=NOW)
    parser.streams.intern("someone-else")            # e.g. another body's commit
    assert not parser.rollback(mark)
    assert parser.streams.get("x") is not None and parser.streams.get("someone-else") is not None


def test_truncate_keeps_every_other_name_findable() -> None:
    names = Names(capacity=16)
    for i in range(3000):                            # through several rehashes
        names.intern(f"room-{i}")
    assert names.truncate(700) == 2300
    assert len(names) == 700 and names.get("room-700") is None
    for i in range(3000):
        want = i if i < 700 else -1
        assert lookup_hash(names.keys, names.vals, np.uint64(fnv1a(f"room-{i}"))) == want
    assert names.intern("room-2999") == 700 and names.intern("fresh") == 701
    assert lookup_hash(names.keys, names.vals, np.uint64(fnv1a("fresh"))) == 701
