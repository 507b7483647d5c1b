"""`ingest.max_streams` and refused bodies over real HTTP: what a sender sees, what is left behind.

- beyond the limit a sample of a NEW stream is rejected alone (reason `stream_limit`, the detail
  names the setting), counted on /metrics; samples of tracked streams are still accepted;
- a body refused as a whole (400, 413, 429) leaves no new name interned, even with 10,000 unique
  names, parsed in several slices while the loop serves other requests in between.
The interned-name count is read from the Service behind the live server (read-only).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamwatch.api.samples import _SLICE
from tests.api.conftest import LiveServer, wait_until

__all__: list[str] = []

NOW = time.time()


def body(streams: list[str], *, array: bool = False, metric: str = "viewers") -> bytes:
    rows = [{"stream": s, "metric": metric, "ts": round(NOW - 60 + i * 1e-3, 3), "value": 1.0}
            for i, s in enumerate(streams)]
    if array:
        return orjson.dumps(rows)
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def push(srv: LiveServer, data: bytes) -> httpx.Response:
    return httpx.post(f"{srv.url}/v1/samples", content=data, timeout=30.0)


def interned(srv: LiveServer) -> tuple[int, int]:
    parser = srv.service.parser
    return len(parser.streams), len(parser.metrics)


def rejected_metric(srv: LiveServer, reason: str) -> float:
    text = httpx.get(f"{srv.url}/metrics").text
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "streamwatch_samples_rejected_total" and s.labels == {"reason": reason}:
                return s.value
    return 0.0


@pytest.mark.parametrize("array", [False, True], ids=["ndjson", "array"])
def test_new_streams_beyond_the_limit_rejected_tracked_ones_accepted(
        live_server: Callable[..., LiveServer], array: bool) -> None:
    srv = live_server(ingest={"max_streams": 5})
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
        assert e["reason"] == "stream_limit" and e["field"] == "stream"
        assert "ingest.max_streams = 5" in e["detail"] and "new" in e["detail"]
    assert "'f'" in ans["errors"][0]["detail"]
    assert interned(srv)[0] == 5 and srv.service.parser.streams.get("f") is None
    # full: every new stream is refused, every tracked one still goes in, and is processed
    again = push(srv, body(["h", "a", "b", "c", "d", "e"], array=array)).json()
    assert (again["accepted"], again["rejected"]) == (5, 1)
    assert wait_until(lambda: srv.service.stats.samples_rejected["stream_limit"] == 3)
    assert rejected_metric(srv, "stream_limit") == 3
    wait_until(lambda: srv.service.queued == 0, what="queue drained")
    streams = {v["stream"] for v in httpx.get(f"{srv.url}/v1/streams").json()["items"]}
    assert streams == {"a", "b", "c", "d", "e"}


UNIQUE = [f"refused-room-{i:05d}" for i in range(10_000)]


@pytest.mark.parametrize("case", ["429-ndjson", "429-array", "413-count", "413-bytes",
                                  "400-last-line"])
def test_a_refused_body_of_10k_new_streams_leaves_no_name(
        live_server: Callable[..., LiveServer], case: str) -> None:
    srv = live_server(server={"queue_max_samples": 5_000, "max_body_bytes": 2_000_000,
                              "max_samples_per_request": 8_000 if case == "413-count" else 20_000})
    assert push(srv, body(["room-known"])).json()["accepted"] == 1
    before = interned(srv)
    data = {"429-ndjson": lambda: body(UNIQUE, metric="unique_metric"),   # over the queue
            "429-array": lambda: body(UNIQUE, array=True, metric="unique_metric"),
            "413-count": lambda: body(UNIQUE),                     # over 8,000 samples
            "413-bytes": lambda: body(UNIQUE * 3),                 # over 2 MB, before parsing
            "400-last-line": lambda: body(UNIQUE[:7_000]) + b"{not json\n"}[case]()
    if case != "413-bytes":
        assert len(data) > _SLICE                  # NDJSON: parsed in more than one slice
    got = push(srv, data)
    assert got.status_code == int(case[:3]), got.text
    assert interned(srv) == before
    assert srv.service.stats.samples_accepted == 1
    # the tables are whole: a refused name sent again is new, and gets the next id
    ok = push(srv, body([UNIQUE[5], "room-known"])).json()
    assert (ok["accepted"], ok["rejected"]) == (2, 0)
    assert srv.service.parser.streams.get(UNIQUE[5]) == before[0]
    assert interned(srv)[0] == before[0] + 1


def test_a_refused_body_interleaved_with_accepted_ones_takes_only_its_own(
        live_server: Callable[..., LiveServer]) -> None:
    """A big body parsed slice by slice, refused (400) at its last line, while other bodies
    bringing new streams are accepted in between: theirs stay, its own are gone."""
    srv = live_server()
    before = interned(srv)[0]
    big = body([f"doomed-{i}" for i in range(40_000)]) + b"{not json\n"   # ~8 slices
    assert len(big) > 5 * _SLICE
    answers: dict[str, int] = {}

    def refused() -> None:
        answers["big"] = push(srv, big).status_code

    t = threading.Thread(target=refused)
    t.start()
    small = [f"kept-{k}-{i}" for k in range(20) for i in range(50)]
    for k in range(20):
        ans = push(srv, body(small[50 * k:50 * k + 50])).json()
        assert ans["accepted"] == 50
    t.join(30)
    assert answers["big"] == 400
    names = srv.service.parser.streams
    assert interned(srv)[0] == before + len(small)
    assert all(names.get(s) is not None for s in small)
    assert names.get("doomed-0") is None and names.get("doomed-39999") is None
    wait_until(lambda: srv.service.queued == 0, what="queue drained")
    listed = {v["stream"] for v in httpx.get(f"{srv.url}/v1/streams").json()["items"]}
    assert set(small) <= listed and not any(s.startswith("doomed") for s in listed)
