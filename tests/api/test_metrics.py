"""/metrics: streamwatch_* families read at scrape time, moving with what the service does."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace

import httpx
import orjson
import prometheus_client
import websockets
from fastapi import FastAPI
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamwatch.api.app import create_app
from streamwatch.exporter import build_registry
from streamwatch.ingest.pull import SourceState
from streamwatch.service import Service
from tests.api.conftest import LiveServer, make_config, wait_until

__all__: list[str] = []

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(family name -> type, (sample name, sorted labels) -> value) of an exposition."""
    types, values = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, values


def scrape(srv: LiveServer) -> Samples:
    r = httpx.get(f"{srv.url}/metrics", timeout=10.0)
    assert r.status_code == 200
    return parse(r.text)[1]


def v(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def body(rows: list[str]) -> bytes:
    return "\n".join(rows).encode() + b"\n"


def good(stream: str, metric: str, value: float, dt: float = 0.0) -> str:
    return orjson.dumps({"stream": stream, "metric": metric, "ts": time.time() - 30 + dt,
                         "value": value}).decode()


def test_counters_and_gauges_move_after_pushes(live_server: Callable[..., LiveServer]) -> None:
    srv = live_server(server={"max_body_bytes": 2048})
    before = scrape(srv)
    assert v(before, "streamwatch_samples_ingested_total") == 0
    assert v(before, "streamwatch_streams_tracked") == 0
    assert v(before, "streamwatch_queue_capacity_samples") == 2_000_000
    t = f"{time.time() - 30:.3f}"
    r = httpx.post(f"{srv.url}/v1/samples", content=body([
        good("room-m", "viewers", 10), good("room-m", "fps", 30), good("room-n", "viewers", 5),
        '{"stream":"room-m","metric":"viewers","ts":%s,"value":NaN}' % t,
        '{"stream":"room-m","metric":"likes_total","ts":%s,"value":-1}' % t]))
    assert r.json()["accepted"] == 3
    assert httpx.post(f"{srv.url}/v1/samples", content=b"x" * 5000).status_code == 413
    assert httpx.post(f"{srv.url}/v1/samples", content=b"[1,").status_code == 400
    after = wait_until(lambda: (s := scrape(srv)) and v(s, "streamwatch_series_tracked") == 3
                       and s, what="the pushed samples to be processed")
    assert v(after, "streamwatch_samples_ingested_total") == 3
    assert v(after, "streamwatch_samples_rejected_total", reason="non_finite") == 1
    assert v(after, "streamwatch_samples_rejected_total", reason="negative_count") == 1
    assert v(after, "streamwatch_requests_refused_total", cause="413_body") == 1
    assert v(after, "streamwatch_requests_refused_total", cause="400_malformed") == 1
    assert v(after, "streamwatch_streams_tracked") == 2
    assert v(after, "streamwatch_queue_depth_samples") == 0
    assert v(after, "streamwatch_batches_processed_total") >= 1
    assert v(after, "streamwatch_batch_latency_seconds_count") >= 1
    assert v(after, "streamwatch_batch_latency_seconds_sum") > 0
    # a duplicate sample is accepted, then discarded by the pipeline, and counted as such
    dup = good("room-n", "viewers", 5)
    httpx.post(f"{srv.url}/v1/samples", content=body([dup, dup]))
    wait_until(lambda: v(scrape(srv), "streamwatch_samples_discarded_total",
                         reason="duplicate") >= 1, what="the duplicate to be counted")


def test_exposition_is_well_formed_and_only_ours(live_server: Callable[..., LiveServer]) -> None:
    srv = live_server()
    r = httpx.get(f"{srv.url}/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=")
    types, values = parse(r.text)
    assert types and all(name.startswith("streamwatch_") for name in types), types
    for name, kind in types.items():       # the parser strips `_total` from counter families
        assert kind in ("counter", "gauge", "histogram"), (name, kind)
        assert not name.endswith("_total")
    assert types["streamwatch_samples_ingested"] == "counter"
    assert types["streamwatch_queue_depth_samples"] == "gauge"
    assert types["streamwatch_detector_latency_seconds"] == "histogram"
    buckets = [(float(dict(k[1])["le"]), val) for k, val in values.items()
               if k[0] == "streamwatch_detector_latency_seconds_bucket"]
    assert [b for b, _ in sorted(buckets)][-1] == float("inf") and len(buckets) >= 10
    counts = [val for _, val in sorted(buckets)]
    assert counts == sorted(counts), "cumulative buckets"
    assert len([k for k in values if k[0] == "streamwatch_open_incidents"]) == 4 * 5


def test_each_app_has_its_own_registry() -> None:
    cfg = make_config()
    one, two = create_app(cfg), create_app(cfg)
    one.state.service.stats.samples_accepted = 7
    text_one = generate_latest(one.state.metrics_registry).decode()
    text_two = generate_latest(two.state.metrics_registry).decode()
    assert "streamwatch_samples_ingested_total 7.0" in text_one
    assert "streamwatch_samples_ingested_total 0.0" in text_two
    assert "streamwatch_" not in generate_latest(prometheus_client.REGISTRY).decode()


def test_sources_and_websocket_clients_are_read_at_scrape_time() -> None:
    service = Service(make_config())
    ok = SourceState("room-stats", "http_json", state="ok", samples=120, lag_s=2.5, polls=10)
    bad = SourceState("exporter", "prometheus", state="failing", consecutive_failures=3,
                      polls=5)
    setattr(bad, "failures", 4)            # a cumulative count, when the source keeps one
    app = FastAPI()
    app.state.feed_hub = SimpleNamespace(client_count=3)
    registry = build_registry(service, app)
    service.sources = [ok, bad]
    _, values = parse(generate_latest(registry).decode())
    assert v(values, "streamwatch_source_up", source="room-stats", kind="http_json") == 1
    assert v(values, "streamwatch_source_up", source="exporter", kind="prometheus") == 0
    assert v(values, "streamwatch_source_lag_seconds", source="room-stats") == 2.5
    assert ("streamwatch_source_lag_seconds", (("source", "exporter"),)) not in values
    assert v(values, "streamwatch_source_samples_total", source="room-stats") == 120
    assert v(values, "streamwatch_source_failures_total", source="exporter") == 4
    assert v(values, "streamwatch_websocket_clients") == 3
    app.state.feed_hub = None
    ok.state = "failing"
    _, values = parse(generate_latest(registry).decode())
    assert v(values, "streamwatch_websocket_clients") == 0
    assert v(values, "streamwatch_source_up", source="room-stats", kind="http_json") == 0
    ok.state = "ended"                     # a finite session (the simulator) that finished
    _, values = parse(generate_latest(registry).decode())
    assert v(values, "streamwatch_source_up", source="room-stats", kind="http_json") == 1


async def test_websocket_clients_gauge_follows_the_feed(
        live_server: Callable[..., LiveServer]) -> None:
    srv = live_server()

    async def clients() -> float:
        async with httpx.AsyncClient() as c:
            return v(parse((await c.get(f"{srv.url}/metrics")).text)[1],
                     "streamwatch_websocket_clients")

    async def until(want: float) -> None:
        deadline = time.monotonic() + 10
        while (got := await clients()) != want:
            assert time.monotonic() < deadline, f"websocket clients {got}, want {want}"
            await asyncio.sleep(0.02)

    assert await clients() == 0
    async with websockets.connect(f"{srv.ws_url}/v1/alerts/stream") as ws:
        assert orjson.loads(await ws.recv())["type"] == "snapshot"
        await until(1)
    await until(0)
