"""`ingest.max_metrics` at commit (ingest/newnames.py), beside `ingest.max_streams`.

- both parse routes (the exact parser + commit, the fast path) keep and refuse the same samples,
  and exactly those the rule in words gives: in input order, a sample is kept if each of its
  names is tracked or has room under its limit; a refused sample makes none of its names known;
- a commit of a batch with no new name hands the very result back (the usual batch pays for no
  limit), and a 429's rollback takes the new metric names back out exactly;
- pulled samples (a JSON array from an http_json source, the simulator's dicts) obey the limit.
"""
from __future__ import annotations

from dataclasses import replace

import httpx
import numpy as np
import pytest

from streamwatch.config.load import Config
from streamwatch.config.schema import SourceSettings
from streamwatch.ingest.batch import Batch, Limits, ParseResult
from streamwatch.ingest.fastpath import Interned, Staging
from streamwatch.ingest.names import Names
from streamwatch.ingest.parse import parse_ndjson
from streamwatch.ingest.pull import start_sources
from streamwatch.service import Service
from tests.ingest.test_fastpath import LINES, NOW, T, _same
from tests.ingest.test_pull import (FakeTime, TestServer, client, config, fake,  # noqa: F401
                                    record, server, src, start, until)

__all__: list[str] = []

KNOWN_STREAMS = ["room-1", "room-2"]
KNOWN_METRICS = ["viewers"]


def _parser() -> Interned:
    streams, metrics = Names(), Names()
    for s in KNOWN_STREAMS:
        streams.intern(s)
    for m in KNOWN_METRICS:
        metrics.intern(m)
    return Interned(streams, metrics)


def _line(stream: str, metric: str, value: str = "1", ts: int = T) -> bytes:
    return ('{"stream":"%s","metric":"%s","ts":%d,"value":%s}' % (stream, metric, ts, value)
            ).encode()


def _mixed_lines() -> list[bytes]:
    """New and known streams and metrics in every form the two paths treat differently (fast,
    escaped, unicode, a number only the exact parser reads, a bad sample of a new metric)."""
    out = []
    for i in range(60):
        stream = KNOWN_STREAMS[i % 2] if i % 3 else f"s-{i % 11}"
        metric = KNOWN_METRICS[0] if i % 4 == 0 else f"m-{i % 7}"
        out.append(_line(stream, metric, str(i), T + i))
        if i % 5 == 0:
            out.append(_line("room-1", "esc-\\u00%02x-%d" % (0x41 + i % 26, i % 3)))
        if i % 6 == 0:
            out.append(_line(f"s-{i}", f"直播-{i % 4}", "1.5e3"))
        if i % 8 == 0:              # rejected for its value: must not take a place in a limit
            out.append(_line("room-2", f"nan-{i}", "NaN"))
    return out + LINES


def _reference(exact: ParseResult, max_streams: int | None, max_metrics: int | None
               ) -> tuple[list[int], list[tuple[int, str]]]:
    """(positions kept, (position, reason) refused) by the rule in words."""
    streams, metrics = set(KNOWN_STREAMS), set(KNOWN_METRICS)
    kept, refused = [], []
    for s, m, pos in zip(exact.batch.streams, exact.batch.metrics,
                         exact.batch.positions.tolist()):
        if s not in streams and max_streams is not None and len(streams) >= max_streams:
            refused.append((pos, "stream_limit"))
        elif m not in metrics and max_metrics is not None and len(metrics) >= max_metrics:
            refused.append((pos, "metric_limit"))
        else:
            streams.add(s)
            metrics.add(m)
            kept.append(pos)
    return kept, refused


@pytest.mark.parametrize("max_streams,max_metrics", [(None, 1), (None, 4), (5, 3), (3, 30),
                                                     (4, 6), (1000, 1000), (None, None)])
def test_metric_limit_same_on_both_paths_and_as_the_rule_says(
        max_streams: int | None, max_metrics: int | None) -> None:
    data = b"\n".join(_mixed_lines()) + b"\n"
    limits = Limits(max_streams=max_streams, max_metrics=max_metrics)
    exact_parse = parse_ndjson(data, now=NOW, limits=limits)
    exact = _parser().commit(exact_parse, None, limits)
    fast_parser = _parser()
    fast = fast_parser.parse_ndjson(data, now=NOW, limits=limits)
    _same(exact, fast)
    kept, refused = _reference(exact_parse, max_streams, max_metrics)
    assert fast.batch.positions.tolist() == kept
    limited = [(r.position, r.reason) for r in fast.rejections
               if r.reason in ("stream_limit", "metric_limit")]
    assert limited == refused
    if max_metrics is not None and max_metrics < 30:
        assert any(reason == "metric_limit" for _, reason in refused)
    # only the names of kept samples are known, ids in order of first acceptance
    got = fast.batch
    assert fast_parser.metrics.names == list(dict.fromkeys(KNOWN_METRICS + list(got.metrics)))
    assert fast_parser.streams.names == list(dict.fromkeys(KNOWN_STREAMS + list(got.streams)))
    assert [fast_parser.metrics.names[i] for i in fast.batch.mids.tolist()] == \
        list(fast.batch.metrics)
    for r in fast.rejections:
        if r.reason == "metric_limit":
            assert r.field == "metric" and f"ingest.max_metrics = {max_metrics}" in r.detail
            assert f"{max_metrics} metrics are tracked already" in r.detail


def test_a_sample_refused_for_one_name_makes_neither_known() -> None:
    parser = _parser()                     # streams room-1, room-2; metric viewers
    limits = Limits(max_streams=4, max_metrics=2)
    data = b"\n".join([
        _line("s-a", "m-1"),               # kept: 3 streams, 2 metrics (full)
        _line("s-b", "m-2"),               # metric over: s-b must not take the last stream place
        _line("s-c", "viewers"),           # kept: s-c gets it
        _line("s-d", "m-3"),               # both over: the stream is named
        _line("room-1", "m-2"),            # a tracked stream does not let a new metric in
        _line("room-1", "m-1"),            # tracked names: kept
    ]) + b"\n"
    res = parser.parse_ndjson(data, now=NOW, limits=limits)
    assert res.batch.positions.tolist() == [1, 3, 6]
    assert [(r.position, r.field, r.reason) for r in res.rejections] == [
        (2, "metric", "metric_limit"), (4, "stream", "stream_limit"),
        (5, "metric", "metric_limit")]
    assert "metric 'm-2' is new and 2 metrics are tracked already" in res.rejections[0].detail
    assert "samples of tracked metrics are still accepted" in res.rejections[0].detail
    assert parser.streams.names == KNOWN_STREAMS + ["s-a", "s-c"]
    assert parser.metrics.names == ["viewers", "m-1"]


def test_a_batch_of_known_names_comes_back_untouched() -> None:
    parser = _parser()
    data = _line("room-1", "viewers") + b"\n" + _line("room-2", "viewers", "2") + b"\n"
    staged = parser.parse_ndjson(data, now=NOW, staging=Staging())
    limits = Limits(max_streams=2, max_metrics=1)          # full, both
    assert parser.commit(staged, Staging(), limits) is staged


def test_rollback_takes_new_metric_names_back_out_exactly() -> None:
    parser = _parser()
    limits = Limits(max_metrics=6)
    body = b"".join(_line(f"room-{1 + i % 2}", f"m-{i}") + b"\n" for i in range(10))
    staging = Staging()
    staged = parser.parse_ndjson(body, now=NOW, staging=staging)
    assert len(parser.metrics) == 1                        # nothing interned while staged
    mark = parser.mark()
    res = parser.commit(staged, staging, limits)
    assert len(res.batch) == 5 and [r.position for r in res.rejections] == [6, 7, 8, 9, 10]
    assert parser.metrics.names == ["viewers"] + [f"m-{i}" for i in range(5)]
    assert parser.rollback(mark)                           # the queue refused it (429)
    assert parser.metrics.names == ["viewers"] and parser.metrics.get("m-0") is None
    again = parser.parse_ndjson(body, now=NOW, limits=limits)   # as if never seen
    assert np.array_equal(again.batch.mids, res.batch.mids)
    assert [r.position for r in again.rejections] == [6, 7, 8, 9, 10]


def test_dicts_without_ids_obey_the_limit_too() -> None:
    """A JSON array and the simulator's dicts come without ids: looked up at commit."""
    parser = _parser()
    b = Batch(["room-1", "room-1", "room-2", "room-2"], ["viewers", "m-1", "m-2", "m-1"],
              np.full(4, float(T)), np.ones(4), [None] * 4, np.arange(4, dtype=np.int64))
    res = parser.commit(ParseResult(b, []), None, Limits(max_metrics=2), "index")
    assert res.batch.positions.tolist() == [0, 1, 3]
    assert [(r.position, r.position_kind, r.reason) for r in res.rejections] == [
        (2, "index", "metric_limit")]
    assert parser.metrics.names == ["viewers", "m-1"]


# -- pulled samples: the service's limits reach the pull sources -----------------------------
def _limited(config: Config, max_metrics: int) -> Config:  # noqa: F811  (the fixture's name)
    data = config.service.model_dump()
    data["ingest"]["max_metrics"] = max_metrics
    return replace(config, service=type(config.service).model_validate(data))


async def test_pulled_samples_obey_the_metric_limit(  # noqa: F811  (fixtures by name)
        server: TestServer, config: Config, client: httpx.AsyncClient, fake: FakeTime) -> None:
    def rows(n: int) -> bytes:               # a JSON array: names interned after the parse
        return b"[" + b",".join(
            b'{"stream":"p-a","metric":"%s","ts":%.3f,"value":%d}' % (m, fake.now - 5 + n, n)
            for m in (b"viewers", b"fps", b"likes_total", b"custom_x")) + b"]"
    server.routes["/four"] = lambda n: (200, rows(n))
    svc = Service(_limited(config, 3))
    await svc.start()
    try:
        st = start(svc, [src("four", server.url + "/four")], client, fake)["four"]
        await until(lambda: st.polls >= 3)
        assert st.state == "ok" and st.samples == 3 * st.polls
        assert st.samples_rejected == svc.stats.samples_rejected["metric_limit"] == st.polls
        assert len(svc.parser.metrics) == 3 and svc.parser.metrics.get("custom_x") is None
    finally:
        await svc.stop()


async def test_simulator_source_obeys_the_metric_limit(  # noqa: F811  (fixtures by name)
        config: Config, fake: FakeTime) -> None:
    svc = Service(_limited(config, 2))
    await svc.start()
    try:
        got = record(svc)
        st = start_sources(svc, [SourceSettings(name="sim", kind="simulator", seed=3, rooms=2,
                                                minutes=0.5, speed=30.0)],
                           clock=fake.clock, sleep=fake.sleep)[0]
        await until(lambda: st.state == "ended")
        assert st.samples_rejected == svc.stats.samples_rejected["metric_limit"] > 0
        assert len({m for b in got for m in b.metrics}) == len(svc.parser.metrics) == 2
    finally:
        await svc.stop()
