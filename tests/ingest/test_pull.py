"""Pull sources against a real HTTP server on 127.0.0.1, on a fake clock (no real waiting).

The server answers per path: good samples, room stats, Prometheus text, garbage, 500s, or hangs
past the timeout. The fake clock advances by whatever a source sleeps, so intervals, back-off and
"silent for 3 intervals" run in milliseconds; only the hang test spends real time (its timeout).
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from streamwatch.config.load import Config, load_config
from streamwatch.config.schema import SourceSettings
from streamwatch.ingest.batch import Batch
from streamwatch.ingest.pull import SourceState, start_sources
from streamwatch.ingest.sources import parse_selector
from streamwatch.service import Service

REPO = Path(__file__).resolve().parents[2]
HANG = object()
Route = Callable[[int], Any]          # request number (1-based) -> (status, body) or HANG


# -- a real HTTP server -----------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        app: TestServer = self.server.app  # type: ignore[attr-defined]
        with app.lock:
            app.hits[self.path] += 1
            n = app.hits[self.path]
        route = app.routes.get(self.path)
        res = route(n) if route else (404, b"not found")
        if res is HANG:
            app.release.wait(10)
            return
        status, body = res
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except ConnectionError:           # the client gave up (a test ending mid-request)
            pass

    def log_message(self, *args: object) -> None:
        pass


class TestServer:
    __test__ = False

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.app = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class FakeTime:
    """clock() starts at the real time (so sample timestamps stay plausible) and advances only
    when a source sleeps; sleep() records who slept how long and yields to the loop."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[tuple[str, float]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, d: float) -> None:
        task = asyncio.current_task()
        self.sleeps.append((task.get_name() if task else "", d))
        self.now += d
        await asyncio.sleep(0.002)

    def of(self, source: str) -> list[float]:
        return [d for name, d in self.sleeps if name == f"streamwatch-source-{source}"]


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def record(svc: Service, clock: Callable[[], float] = time.time,
           at: list[float] | None = None) -> list[Batch]:
    """The batches the service accepted, in order (the real submit still does the work), and
    in `at` the clock's time of each."""
    got: list[Batch] = []
    real = svc.submit

    def submit(batch: Batch, accepted_at: float | None = None) -> bool:
        ok = real(batch, accepted_at)
        if ok and len(batch):
            got.append(batch)
            if at is not None:
                at.append(clock())
        return ok
    svc.submit = submit  # type: ignore[method-assign]
    return got


def samples(stream: str, n: int = 3, metric: str = "viewers") -> bytes:
    t = time.time()
    return b"".join(json.dumps({"stream": stream, "metric": metric, "ts": t - n + i,
                                "value": 100 + i}).encode() + b"\n" for i in range(n))


def src(name: str, url: str, **kw: Any) -> SourceSettings:
    base: dict[str, Any] = {"kind": "http_json", "interval": 5.0, "timeout": 2.0, "jitter": 0.0,
                            "max_backoff": 60.0}
    return SourceSettings(name=name, url=url, **{**base, **kw})


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def config() -> Config:
    """(The first batch a pipeline processes loads its compiled kernels: done here, once.)"""
    cfg = load_config(REPO / "config", REPO / "detectors")
    Service(cfg).pipeline.process(Batch(["warm-up"], ["viewers"], np.array([time.time()]),
                                        np.array([1.0]), [None], np.array([0])))
    return cfg


@pytest.fixture
def server() -> Iterator[TestServer]:
    s = TestServer()
    yield s
    s.close()


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


@pytest.fixture
async def service(config: Config, client: httpx.AsyncClient) -> AsyncIterator[Service]:
    """(Stopped before the client closes: sources go first.)"""
    svc = Service(config)
    await svc.start()
    yield svc
    await svc.stop()


def start(svc: Service, sources: list[SourceSettings], client: httpx.AsyncClient,
          fake: FakeTime) -> dict[str, SourceState]:
    states = start_sources(svc, sources, client=client, clock=fake.clock, sleep=fake.sleep)
    assert svc.sources is states
    return {s.name: s for s in states}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- (a) http_json ----------------------------------------------------------------------------
async def test_healthy_source_flows_while_others_fail(server: TestServer, service: Service,
                                                      client: httpx.AsyncClient,
                                                      fake: FakeTime) -> None:
    server.routes |= {"/good": lambda n: (200, samples("room-pull")),
                      "/hang": lambda n: HANG,
                      "/500": lambda n: (500, b"oops"),
                      "/garbage": lambda n: (200, b"<html><body>gateway error</body></html>\n")}
    st = start(service, [src("good", server.url + "/good"),
                         src("hang", server.url + "/hang", timeout=30.0),
                         src("e500", server.url + "/500"),
                         src("garbage", server.url + "/garbage"),
                         src("refused", f"http://127.0.0.1:{free_port()}/x")], client, fake)
    # the good source polls on while the hanging one still waits for its first answer
    await until(lambda: st["good"].polls >= 5 and server.hits["/hang"] == 1)
    assert st["hang"].polls == 0
    server.release.set()                  # the hung request now ends without an answer
    await until(lambda: all(st[k].consecutive_failures >= 2
                            for k in ("hang", "e500", "garbage", "refused")))
    assert st["hang"].last_error.startswith("RemoteProtocolError: Server disconnected")
    assert st["e500"].last_error == f"HTTP 500 from {server.url}/500"
    assert st["garbage"].last_error.startswith("no valid sample in the body: 1 rejected")
    assert "ConnectError" in st["refused"].last_error
    for k in ("hang", "e500", "garbage", "refused"):
        assert st[k].state == "failing" and st[k].samples == 0 and st[k].last_success is None
        assert st[k].failures == st[k].polls >= st[k].consecutive_failures
    good = st["good"]
    assert (good.state, good.consecutive_failures, good.last_error, good.failures) == (
        "ok", 0, None, 0)
    assert good.samples == 3 * good.polls and good.last_success is not None
    assert service.stats.samples_rejected["malformed"] == st["garbage"].samples_rejected >= 2
    await until(lambda: service.queued == 0)
    view = {v["stream"]: v for v in service.streams_view()}
    assert "viewers" in view["room-pull"]["metrics"]
    assert set(view) == {"room-pull"}


async def test_backoff_doubles_to_the_cap_then_recovers(server: TestServer, service: Service,
                                                       client: httpx.AsyncClient, fake: FakeTime,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    server.routes["/flaky"] = lambda n: (500, b"") if n <= 6 else (200, samples("room-f"))
    caplog.set_level(logging.INFO, "streamwatch.ingest.pull")
    st = start(service, [src("flaky", server.url + "/flaky", max_backoff=30.0)], client, fake)
    s = st["flaky"]
    await until(lambda: s.polls >= 9)
    # start spread (jitter 0), back-off 5 10 20 30 30 30 after failures 1..6, then the interval
    assert fake.of("flaky")[:9] == [0.0, 5.0, 10.0, 20.0, 30.0, 30.0, 30.0, 5.0, 5.0]
    assert (s.state, s.consecutive_failures, s.last_error) == ("ok", 0, None)
    assert s.samples == 3 * (s.polls - 6) and s.failures == 6
    silent = [r for r in caplog.records if r.getMessage() == "pull source silent"]
    assert len(silent) == 1 and silent[0].source == "flaky"  # type: ignore[attr-defined]
    assert silent[0].error == f"HTTP 500 from {server.url}/flaky"  # type: ignore[attr-defined]
    assert silent[0].silent_s > 15                              # type: ignore[attr-defined]
    assert [r.getMessage() for r in caplog.records].count("pull source recovered") == 1


async def test_jitter_spreads_intervals_and_backoff(server: TestServer, service: Service,
                                                  client: httpx.AsyncClient) -> None:
    server.routes |= {"/ok": lambda n: (200, samples("room-j")), "/bad": lambda n: (500, b"")}
    f_ok, f_bad = FakeTime(), FakeTime()          # one clock each: schedules stay exact
    ok_st = start(service, [src("ok", server.url + "/ok", jitter=0.2)], client, f_ok)["ok"]
    bad_st = start(service, [src("bad", server.url + "/bad", jitter=0.2, max_backoff=40.0)],
                   client, f_bad)["bad"]
    await until(lambda: ok_st.polls >= 20 and bad_st.polls >= 6)
    assert 0.0 <= f_ok.of("ok")[0] <= 1.0          # start spread: up to jitter x interval
    ok = f_ok.of("ok")[1:20]
    assert all(4.0 <= d <= 6.0 for d in ok) and len({round(d, 6) for d in ok}) > 10
    bad = f_bad.of("bad")[1:7]
    for k, d in enumerate(bad):
        base = min(40.0, 5.0 * 2 ** k)
        assert base * 0.8 <= d <= min(40.0, base * 1.2), (k, d)


async def test_silent_source_turns_failing_and_says_so_once(
        server: TestServer, service: Service, client: httpx.AsyncClient, fake: FakeTime,
        caplog: pytest.LogCaptureFixture) -> None:
    # answers fine, but with no samples after the first two polls: silence, not an error
    server.routes["/quiet"] = lambda n: (200, samples("room-q") if n <= 2 else b"[]")
    caplog.set_level(logging.WARNING, "streamwatch.ingest.pull")
    st = start(service, [src("quiet", server.url + "/quiet")], client, fake)["quiet"]
    await until(lambda: st.polls >= 4)
    assert st.state == "ok"                   # 10 s quiet: not yet 3 intervals
    await until(lambda: st.polls >= 8)
    assert st.state == "failing" and st.consecutive_failures == 0
    assert st.last_error is not None and st.last_error.startswith("silent: no sample for")
    assert st.lag_s is not None and st.lag_s > 15
    assert [r.getMessage() for r in caplog.records] == ["pull source silent"]


@pytest.mark.parametrize("settings,route,expected", [
    ({}, lambda n: (200, b'[{"stream": "a", "metric": "viewers", "ts": '),
     "body is not samples: line 1"),
    ({}, lambda n: (503, b'{"error": "busy"}'), "HTTP 503 from "),
    ({}, lambda n: (200, b'{"stream":"a","metric":"viewers","ts":1,"value":1}\n'),
     "no valid sample in the body: 1 rejected (first: line 1 ts: "),
    ({"mapping": {"data.online": "viewers"}}, lambda n: (200, b"<html>"), "body is not JSON"),
    ({"mapping": {"data.online": "viewers"}}, lambda n: (200, b'{"data": {}}'),
     "no mapped field found in the body (looked for data.online)"),
    ({"mapping": {"data.rooms[].online": "viewers"}}, lambda n: (200, b'{"data": {"rooms": 3}}'),
     "data.rooms is not a list"),
    ({"kind": "prometheus", "stream": "svc:x", "mapping": {"up": "error_ratio"}},
     lambda n: (200, b"<html><body>login</body></html>"), "not Prometheus text format"),
    ({"kind": "prometheus", "stream": "svc:x", "mapping": {"up": "error_ratio"}},
     lambda n: (200, b"other_metric 1\n"), "no mapped series in the scrape (looked for up)"),
    ({"timeout": 0.3}, lambda n: HANG, "timeout after 0.3s"),
], ids=["broken-array", "503", "all-rejected", "stats-not-json", "stats-no-field",
        "stats-not-list", "prom-garbage", "prom-no-series", "hang"])
async def test_bad_answers_fail_the_poll_with_a_reason(
        server: TestServer, service: Service, client: httpx.AsyncClient, fake: FakeTime,
        settings: dict[str, Any], route: Route, expected: str) -> None:
    server.routes["/x"] = route
    st = start(service, [src("x", server.url + "/x", **settings)], client, fake)["x"]
    await until(lambda: st.consecutive_failures >= 2)
    assert st.state == "failing" and st.samples == 0
    assert st.last_error is not None and st.last_error.startswith(expected), st.last_error
    assert service.stats.samples_accepted == 0


async def test_full_queue_holds_the_batch_and_loses_nothing(
        server: TestServer, config: Config, client: httpx.AsyncClient, fake: FakeTime) -> None:
    small = config.service.model_copy(update={"server": config.service.server.model_copy(
        update={"queue_max_samples": 1000})})
    svc = Service(replace(config, service=small))           # consumer not started: queue fills
    server.routes["/big"] = lambda n: (200, samples("room-big", 600))
    st = start(svc, [src("big", server.url + "/big")], client, fake)["big"]
    await until(lambda: st.pending == 600)
    polls = st.polls
    await until(lambda: len(fake.of("big")) >= 7)                # refused, retrying ...
    assert fake.of("big")[2:7] == [0.05, 0.1, 0.2, 0.4, 0.8]     # ... with a short back-off
    assert st.polls == polls == 2 and server.hits["/big"] == 2   # holding: no new polls
    assert st.state == "ok" and svc.stats.samples_accepted == 600
    await svc.start()                                              # room again
    await until(lambda: st.pending == 0 and st.polls >= 5)
    await svc.stop()                                               # cancels, then drains
    assert svc.stats.samples_accepted == st.samples and st.samples % 600 == 0
    assert svc.queued == 0 and st.pending == 0


async def test_room_stats_mapping(server: TestServer, service: Service,
                                  client: httpx.AsyncClient, fake: FakeTime) -> None:
    body = {"code": 0, "server_time": int(time.time() * 1000) - 2000, "data": {"rooms": [
        {"room_id": "douyin:1", "online_count": "1234", "gmv": 99.5, "is_live": True},
        {"room_id": 2, "online_count": 50, "gmv": -3, "is_live": False},
        {"online_count": "NaN"}]}}
    server.routes["/stats"] = lambda n: (200, json.dumps(body).encode())
    server.routes["/one"] = lambda n: (200, b'{"data": {"online_count": 7, "like_count": 3}}')
    got = record(service)
    t0 = fake.now
    mapping = {"data.rooms[].room_id": "stream", "server_time": "ts",
               "data.rooms[].online_count": "viewers", "data.rooms[].gmv": "gmv_total",
               "data.rooms[].is_live": "live"}
    st = start(service, [
        src("stats", server.url + "/stats", stream="room-default", mapping=mapping),
        src("one", server.url + "/one", interval=600.0, stream="room-042",
            mapping={"data.online_count": "viewers", "data.like_count": "likes_total",
                     "data.missing": "shares_total"})], client, fake)
    await until(lambda: st["stats"].polls >= 1 and st["one"].polls >= 1)
    by_src = {b.streams[0]: b for b in got[:2]}
    b = by_src["douyin:1"]
    rows = sorted(zip(b.streams, b.metrics, b.values.tolist(), b.ts.tolist()))
    ts = body["server_time"] / 1000
    assert rows == [("2", "live", 0.0, ts), ("2", "viewers", 50.0, ts),
                    ("douyin:1", "gmv_total", 99.5, ts), ("douyin:1", "live", 1.0, ts),
                    ("douyin:1", "viewers", 1234.0, ts)]
    # gmv -3 is a negative counter, "NaN" is not finite: refused like a push would refuse them
    assert st["stats"].samples_rejected == 2
    assert service.stats.samples_rejected["negative_count"] >= 1
    assert service.stats.samples_rejected["non_finite"] >= 1
    one = by_src["room-042"]
    assert sorted(zip(one.metrics, one.values.tolist())) == [("likes_total", 3.0),
                                                            ("viewers", 7.0)]
    assert len(set(one.ts.tolist())) == 1                                     # poll time
    assert t0 <= one.ts[0] <= st["one"].last_success
    assert st["stats"].lag_s == pytest.approx(st["stats"].last_success - ts)


async def test_source_whose_clock_runs_ahead_is_refused_counted_and_not_healthy(
        server: TestServer, service: Service, client: httpx.AsyncClient,
        fake: FakeTime) -> None:
    """Samples more than ingest.future_skew (5 min) ahead of our clock are refused one by one,
    like a push; a source that sends nothing else is failing with the reason, never "ok"."""
    ahead = time.time() + 3600
    rows = [{"stream": "room-sk", "metric": "viewers", "ts": ahead + i, "value": 10 + i}
            for i in range(3)]
    mixed = rows[:1] + [dict(r, ts=time.time() - 2 + i) for i, r in enumerate(rows[1:])]
    stats = {"server_time": int(ahead * 1000), "data": {"online_count": 7}}
    server.routes |= {"/ahead": lambda n: (200, "\n".join(map(json.dumps, rows)).encode()),
                      "/stats": lambda n: (200, json.dumps(stats).encode()),
                      "/mixed": lambda n: (200, "\n".join(map(json.dumps, mixed)).encode())}
    st = start(service, [src("ahead", server.url + "/ahead"),
                         src("stats", server.url + "/stats", stream="room-st",
                             mapping={"server_time": "ts", "data.online_count": "viewers"}),
                         src("mixed", server.url + "/mixed")], client, fake)
    await until(lambda: st["ahead"].consecutive_failures >= 2 and st["mixed"].polls >= 2
                and st["stats"].consecutive_failures >= 2)
    for name, n in (("ahead", 3), ("stats", 1)):
        s = st[name]
        assert s.state == "failing" and s.samples == 0 and s.last_success is None
        assert s.last_error is not None and s.last_error.startswith(
            f"no valid sample in the body: {n} rejected (first: line 1 ts: ts "), s.last_error
        assert "s ahead of the server clock (at most 300 s allowed)" in s.last_error
        assert s.samples_rejected == n * s.polls
    mix = st["mixed"]                      # the good samples of a partly skewed body flow
    assert (mix.state, mix.samples, mix.samples_rejected) == ("ok", 2 * mix.polls, mix.polls)
    assert service.stats.samples_rejected["absurd_timestamp"] == sum(
        s.samples_rejected for s in st.values())
    await until(lambda: service.queued == 0)
    seen = {v["stream"]: v for v in service.streams_view()}
    assert seen["room-sk"]["last_ts"] < fake.now and seen["room-sk"]["metrics"]
    assert seen.get("room-st", {"last_ts": None})["last_ts"] is None   # nothing admitted


# -- (b) prometheus ---------------------------------------------------------------------------
def _exposition(n: int) -> bytes:
    return f"""# HELP process_cpu_seconds_total CPU time.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {2.5 * n}
# TYPE latency_p99_ms gauge
latency_p99_ms{{stream="svc:search"}} 120
latency_p99_ms 80
# TYPE http_requests_total counter
http_requests_total{{code="500",path="/pay"}} {n}
http_requests_total{{code="500",path="/refund"}} {2 * n}
http_requests_total{{code="200",path="/pay"}} 1000
# TYPE queue_depth gauge
queue_depth 4 {int(time.time() * 1000) - 7000}
broken_ratio NaN
unrelated_total 5
""".encode()


async def test_prometheus_scrape_maps_series(server: TestServer, service: Service,
                                             client: httpx.AsyncClient, fake: FakeTime) -> None:
    server.routes["/metrics"] = lambda n: (200, _exposition(n))
    got = record(service)
    mapping = {"rate(process_cpu_seconds_total)": "cpu_utilization",
               "latency_p99_ms": "latency_p99_ms",
               'http_requests_total{code="500"}': "errors_total",
               "queue_depth": "queue_depth", "broken_ratio": "error_ratio"}
    st = start(service, [src("prom", server.url + "/metrics", kind="prometheus",
                             stream="svc:payment", mapping=mapping)], client, fake)["prom"]
    await until(lambda: st.polls >= 3)
    first, second = ({(s, m): (v, t) for s, m, v, t in zip(b.streams, b.metrics,
                                                            b.values.tolist(), b.ts.tolist())}
                     for b in got[:2])
    assert ("svc:payment", "cpu_utilization") not in first     # a rate needs two scrapes
    assert second[("svc:payment", "cpu_utilization")][0] == pytest.approx(2.5 / 5.0)
    assert first[("svc:search", "latency_p99_ms")][0] == 120
    assert first[("svc:payment", "latency_p99_ms")][0] == 80
    assert first[("svc:payment", "errors_total")][0] == 3       # code 500 only, summed
    assert second[("svc:payment", "errors_total")][0] == 6
    v, t = first[("svc:payment", "queue_depth")]
    assert v == 4 and t < st.last_success - 6                   # its own timestamp
    assert ("svc:payment", "error_ratio") not in first
    assert service.stats.samples_rejected["non_finite"] == st.samples_rejected == st.polls
    assert st.state == "ok"


@pytest.mark.parametrize("text,ok", [
    ("up", True), ('http_requests_total{code="500", path="/x"}', True),
    ("rate(process_cpu_seconds_total)", True), ("rate(x", False), ("x)", False),
    ("x{code=500}", False), ("9x", False), ("", False)])
def test_selector_syntax(text: str, ok: bool) -> None:
    if ok:
        sel = parse_selector(text)
        assert sel.matches(sel.name, dict(sel.labels))
        assert not sel.matches(sel.name + "_other", dict(sel.labels))
    else:
        with pytest.raises(ValueError, match="not a series selector"):
            parse_selector(text)


# -- (c) simulator ----------------------------------------------------------------------------
@pytest.mark.parametrize("speed", [1.0, 20.0])
async def test_simulator_source_on_a_fake_clock(service: Service, fake: FakeTime, speed: float,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "streamwatch.ingest.pull")
    at: list[float] = []
    got = record(service, fake.clock, at)
    t0, wall = fake.now, time.monotonic()
    st = start_sources(service, [SourceSettings(name="sim", kind="simulator", seed=3, rooms=2,
                                                minutes=1.0, speed=speed)],
                       clock=fake.clock, sleep=fake.sleep)[0]
    await until(lambda: st.state == "ended")
    assert time.monotonic() - wall < 5.0                         # a minute of session, no wait
    assert fake.now - t0 == pytest.approx(60.0 / speed, abs=2.0 / speed)
    assert np.median(fake.of("sim")) == pytest.approx(1.0 / speed, rel=0.05)
    assert st.samples == sum(len(b) for b in got) == service.stats.samples_accepted > 100
    streams = {s for b in got for s in b.streams}
    assert {"svc:payment"} <= streams and len([s for s in streams if s.startswith("room")]) == 2
    start_ts = math.floor(t0)
    ts = np.concatenate([b.ts for b in got])
    assert ts.min() >= start_ts and ts.max() <= start_ts + 62
    # event time follows the clock: never ahead of it, and (at speed 1) about live
    event_lag = [(now - t0) * speed - (float(b.ts.max()) - start_ts) for b, now in zip(got, at)]
    assert min(event_lag) >= -1.0 and np.median(event_lag) < 2.0
    assert "simulator session ended" in [r.getMessage() for r in caplog.records]
    await until(lambda: service.queued == 0)
    assert {v["stream"] for v in service.streams_view()} == streams


# -- settings and lifecycle ---------------------------------------------------------------------
async def test_unusable_settings_are_reported_not_started(service: Service) -> None:
    bad = [SourceSettings(name="p", kind="prometheus", url="ftp://host/metrics"),
           SourceSettings(name="j", kind="http_json", url="http://127.0.0.1:1/",
                          mapping={"a[].x": "viewers", "b[].y": "stream"})]
    tasks = len(service._tasks)
    states = start_sources(service, bad)
    assert [s.state for s in states] == ["failing", "failing"]
    assert "url = 'ftp://host/metrics': must be an http:// or https:// URL" in states[0].last_error
    assert "mapping = {}: name the series to keep" in states[0].last_error
    assert "all [] paths must name the same list" in states[1].last_error
    assert len(service._tasks) == tasks + 1        # only the shared client's keeper


async def test_stop_cancels_a_hanging_poll_and_closes_its_client(
        server: TestServer, config: Config) -> None:
    server.routes["/hang"] = lambda n: HANG
    svc = Service(config)
    await svc.start()
    st = start_sources(svc, [src("h", server.url + "/hang", timeout=30.0)])[0]
    await until(lambda: server.hits["/hang"] == 1)
    t = time.monotonic()
    await svc.stop()
    assert time.monotonic() - t < 2.0
    assert all(task.done() for task in svc._tasks)
    keeper = [task for task in svc._tasks if task.get_name() == "streamwatch-pull-client"]
    assert len(keeper) == 1 and keeper[0].cancelled()
    assert st.polls == 0


# -- the stream limit (ingest.max_streams) applies to pulled samples too -----------------------
def _limited(config: Config, max_streams: int) -> Config:
    data = config.service.model_dump()
    data["ingest"]["max_streams"] = max_streams
    return replace(config, service=type(config.service).model_validate(data))


async def test_pulled_samples_obey_the_stream_limit(server: TestServer, config: Config,
                                                    client: httpx.AsyncClient,
                                                    fake: FakeTime) -> None:
    def rows(n: int) -> bytes:               # a JSON array: names interned after the parse
        return json.dumps([{"stream": s, "metric": "viewers", "ts": fake.now - 5 + n,
                            "value": n} for s in ("p-a", "p-b", "p-c", "p-d")]).encode()
    server.routes["/four"] = lambda n: (200, rows(n))
    svc = Service(_limited(config, 3))
    await svc.start()
    try:
        st = start(svc, [src("four", server.url + "/four")], client, fake)["four"]
        await until(lambda: st.polls >= 3)
        assert st.state == "ok" and st.samples == 3 * st.polls
        assert st.samples_rejected == svc.stats.samples_rejected["stream_limit"] == st.polls
        assert len(svc.parser.streams) == 3 and svc.parser.streams.get("p-d") is None
    finally:
        await svc.stop()


async def test_simulator_source_obeys_the_stream_limit(config: Config, fake: FakeTime) -> None:
    svc = Service(_limited(config, 2))
    await svc.start()
    try:
        got = record(svc)
        st = start_sources(svc, [SourceSettings(name="sim", kind="simulator", seed=3, rooms=3,
                                                minutes=0.5, speed=30.0)],
                           clock=fake.clock, sleep=fake.sleep)[0]
        await until(lambda: st.state == "ended")
        assert st.samples_rejected == svc.stats.samples_rejected["stream_limit"] > 0
        assert len({s for b in got for s in b.streams}) == len(svc.parser.streams) == 2
    finally:
        await svc.stop()
