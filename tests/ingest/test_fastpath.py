"""The interning fast path gives exactly what the exact parser gives, line for line."""
from __future__ import annotations

import numpy as np
import pytest

from streamwatch.ingest.fastpath import Interned
from streamwatch.ingest.names import Names
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
