"""`ingest.max_metrics` and refused bodies over real HTTP: what a sender sees, what is left behind.

- beyond the limit a sample of a NEW metric is rejected alone (reason `metric_limit`, the detail
  names the setting), counted on /metrics by reason; samples of tracked metrics are still
  accepted, and a refused sample makes its new stream no more known than its metric;
- a body refused as a whole (400, 413, 429 - also a 429 for a body that hit the limit) leaves no
  new metric name interned, with 10,000 unique names parsed in several slices.
The interned-name count is read from the Service behind the live server (read-only).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamwatch.api.samples import _SLICE
from tests.api.conftest import LiveServer, wait_until
from tests.api.test_stream_limit import interned, push, rejected_metric

__all__: list[str] = []

NOW = time.time()


def body(metrics: list[str], *, array: bool = False, stream: str = "room-m",
         streams: list[str] | None = None) -> bytes:
    names = streams or [stream] * len(metrics)
    rows = [{"stream": s, "metric": m, "ts": round(NOW - 60 + i * 1e-3, 3), "value": 1.0}
            for i, (s, m) in enumerate(zip(names, metrics))]
    if array:
        return orjson.dumps(rows)
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def gauge(srv: LiveServer, name: str) -> float:
    for fam in text_string_to_metric_families(httpx.get(f"{srv.url}/metrics").text):
        for s in fam.samples:
            if s.name == name:
                return s.value
    raise AssertionError(f"{name} not on /metrics")


@pytest.mark.parametrize("array", [False, True], ids=["ndjson", "array"])
def test_new_metrics_beyond_the_limit_rejected_tracked_ones_accepted(
        live_server: Callable[..., LiveServer], array: bool) -> None:
    srv = live_server(ingest={"max_metrics": 5})
    first = push(srv, body(["a", "b", "c"], array=array)).json()
    assert (first["accepted"], first["rejected"]) == (3, 0)
    mixed = ["d", "a", "e", "f", "b", "g", "e", "c"]          # room for two new: d and e
    got = push(srv, body(mixed, array=array))
    assert got.status_code == 200
    ans = got.json()
    assert (ans["accepted"], ans["rejected"]) == (6, 2)
    where = "index" if array else "line"
    assert [e[where] for e in ans["errors"]] == ([3, 5] if array else [4, 6])   # f and g
    for e in ans["errors"]:
        assert e["reason"] == "metric_limit" and e["field"] == "metric"
        assert "ingest.max_metrics = 5" in e["detail"] and "new" in e["detail"]
    assert "'f'" in ans["errors"][0]["detail"] and "'g'" in ans["errors"][1]["detail"]
    assert interned(srv) == (1, 5) and srv.service.parser.metrics.get("f") is None
    # full: every new metric is refused - its new stream with it - every tracked one goes in
    again = push(srv, body(["h", "a", "b", "c", "d", "e", "a"], array=array,
                           streams=["room-m"] * 6 + ["room-new"])).json()
    assert (again["accepted"], again["rejected"]) == (6, 1)
    assert interned(srv) == (2, 5) and srv.service.parser.metrics.get("h") is None
    late = push(srv, body(["i"], array=array, stream="room-late")).json()
    assert (late["accepted"], late["rejected"]) == (0, 1)
    assert srv.service.parser.streams.get("room-late") is None
    assert wait_until(lambda: srv.service.stats.samples_rejected["metric_limit"] == 4)
    assert rejected_metric(srv, "metric_limit") == 4
    assert rejected_metric(srv, "stream_limit") == 0
    wait_until(lambda: srv.service.queued == 0, what="queue drained")
    assert wait_until(lambda: gauge(srv, "streamwatch_metrics_tracked") == 5)
    rooms = {v["stream"]: v for v in httpx.get(f"{srv.url}/v1/streams").json()["items"]}
    assert set(rooms) == {"room-m", "room-new"}
    assert set(rooms["room-m"]["metrics"]) == {"a", "b", "c", "d", "e"}


UNIQUE = [f"refused-metric-{i:05d}" for i in range(10_000)]


@pytest.mark.parametrize("case", ["429-ndjson", "429-array", "429-at-the-limit", "413-count",
                                  "413-bytes", "400-last-line"])
def test_a_refused_body_of_10k_new_metrics_leaves_no_name(
        live_server: Callable[..., LiveServer], case: str) -> None:
    at_limit = case == "429-at-the-limit"   # 5 known + 999 new kept (the rest metric_limit)
    srv = live_server(
        ingest={"max_metrics": 1_000 if at_limit else 50_000},
        server={"queue_max_samples": 1_000 if at_limit else 5_000, "max_body_bytes": 2_500_000,
                "max_samples_per_request": 8_000 if case == "413-count" else 20_000})
    assert push(srv, body(["viewers"])).json()["accepted"] == 1
    wait_until(lambda: srv.service.queued == 0, what="queue drained")
    before = interned(srv)
    assert before == (1, 1) and gauge(srv, "streamwatch_metrics_tracked") == 1
    data = {"429-ndjson": lambda: body(UNIQUE),                         # over the queue
            "429-array": lambda: body(UNIQUE, array=True),
            "429-at-the-limit": lambda: body(["viewers"] * 5 + UNIQUE),
            "413-count": lambda: body(UNIQUE),                          # over 8,000 samples
            "413-bytes": lambda: body(UNIQUE * 3),                      # over 2.5 MB
            "400-last-line": lambda: body(UNIQUE[:7_000]) + b"{not json\n"}[case]()
    if case != "413-bytes":
        assert len(data) > _SLICE                  # NDJSON: parsed in more than one slice
    got = push(srv, data)
    assert got.status_code == int(case[:3]), got.text
    if case.startswith("429"):              # committed, then refused by the queue: rolled back
        assert srv.service.stats.submits_refused == 1
    assert interned(srv) == before
    assert srv.service.stats.samples_accepted == 1
    assert gauge(srv, "streamwatch_metrics_tracked") == 1
    # the tables are whole: a refused name sent again is new, and gets the next id
    ok = push(srv, body([UNIQUE[5], "viewers"])).json()
    assert (ok["accepted"], ok["rejected"]) == (2, 0)
    assert srv.service.parser.metrics.get(UNIQUE[5]) == before[1]
    assert interned(srv)[1] == before[1] + 1
