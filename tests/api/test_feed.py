"""WS /v1/alerts/stream over a real uvicorn server, real HTTP pushes and real websocket clients.

Events are produced the real way: a scenario of rooms (tests/pipeline/scenario.py) with flapping
stream outages, a complaint surge and bot traffic is pushed as NDJSON to POST /v1/samples in
5-minute slices. What the feed must carry is computed independently, by running the same slices
through a fresh Pipeline (the pipeline's output does not depend on how input is cut).
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
import orjson
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from streamwatch.api.app import create_app
from streamwatch.config.load import Config
from streamwatch.events import AlertEvent
from streamwatch.incidents.index import IncidentIndex
from streamwatch.ingest.batch import Batch
from streamwatch.notify.feed import FeedFilter, FeedHub
from streamwatch.notify.log import EventLog
from streamwatch.pipeline import Pipeline
from tests.api.conftest import LiveServer, make_config, wait_until
from tests.pipeline.scenario import T0, Effect, Room, samples

PATH = "/v1/alerts/stream"
AT = 20 * 60.0                  # incidents start after warm-up
MINUTES = 60
SLICE_S = 300.0                 # one POST per 5 minutes of event time
PREFIX_END = T0 + 25 * 60       # incidents of every team are open here
SECTION3 = set(AlertEvent.model_fields)


# -- the scenario and what it must produce -------------------------------------------------
def _flap(start: float, on: float = 40.0, off: float = 40.0) -> list[Effect]:
    out, s = [], start
    while s + on < MINUTES * 60:
        out += [Effect("bitrate_kbps", s, s + on, 0.1), Effect("fps", s, s + on, 0.2)]
        s += on + off
    return out


@dataclass(frozen=True)
class Scenario:
    bodies: list[bytes]                    # NDJSON, one per slice
    events: list[list[dict[str, Any]]]     # the events each slice produces, as JSON would carry
    prefix: int                            # slices up to PREFIX_END

    @property
    def all(self) -> list[dict[str, Any]]:
        return [e for part in self.events for e in part]

    def upto(self, n: int) -> list[dict[str, Any]]:
        return [e for part in self.events[:n] for e in part]


@cache
def scenario() -> Scenario:
    rooms = [Room("room-a", minutes=MINUTES, effects=_flap(AT)),
             Room("room-b", minutes=MINUTES, effects=[Effect("complaints_total", AT, AT + 600, 40),
                                                      Effect("refunds_total", AT, AT + 600, 40)]),
             Room("room-c", minutes=MINUTES, effects=[Effect("viewers", AT, AT + 600, 3.0),
                                                      Effect("entries_total", AT, AT + 600, 3.0)]),
             Room("room-d", minutes=MINUTES)]
    rooms += [Room(f"room-f{i}", minutes=MINUTES, effects=_flap(AT + 8 * i)) for i in range(5)]
    b = samples(rooms)
    cfg = make_config()
    pipeline = Pipeline(cfg.rules, cfg.pipeline_settings())
    cuts = np.searchsorted(b.ts, T0 + np.arange(0, MINUTES * 60 + SLICE_S, SLICE_S))
    bodies, events = [], []
    for a, z in zip(cuts[:-1], cuts[1:]):
        assert a < z, "every slice has samples"
        part = Batch(b.streams[a:z], b.metrics[a:z], b.ts[a:z], b.values[a:z], b.labels[a:z],
                     b.positions[a:z])
        bodies.append(b"\n".join(orjson.dumps({"stream": s, "metric": m, "ts": float(t),
                                               "value": float(v)})
                                 for s, m, t, v in zip(part.streams, part.metrics, part.ts,
                                                       part.values)))
        events.append([orjson.loads(orjson.dumps({"type": "alert", **e.model_dump()}))
                       for e in pipeline.process(part)])
    return Scenario(bodies, events, prefix=int((PREFIX_END - T0) // SLICE_S))


def open_incidents(events: list[dict[str, Any]], flt: FeedFilter) -> list[str]:
    index = IncidentIndex()
    for e in events:
        index.apply(e)
    return [i["id"] for i in index.open() if flt.match(i)]


# -- clients and helpers --------------------------------------------------------------------
async def until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return got


def feed_url(live: LiveServer, **params: Any) -> str:
    query = urlencode(params, doseq=True)
    return f"{live.ws_url}{PATH}" + (f"?{query}" if query else "")


async def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def alerts(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < n:
        m = await recv(ws)
        assert m["type"] == "alert", m
        out.append(m)
    return out


async def closed_with(ws: ClientConnection) -> Close:
    """Read to the end; the server's close frame (any message before it fails the test)."""
    with pytest.raises(ConnectionClosed) as info:
        m = await recv(ws)
        pytest.fail(f"expected the connection to close, got {m}")
    assert info.value.rcvd is not None, "the server sent a close frame"
    return info.value.rcvd


async def push(live: LiveServer, bodies: list[bytes]) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        for body in bodies:
            r = await http.post("/v1/samples", content=body,
                                headers={"content-type": "application/x-ndjson"})
            assert r.status_code == 200, r.text
            assert r.json()["rejected"] == 0, r.text


async def push_and_wait(live: LiveServer, sc: Scenario, start: int, stop: int) -> None:
    """Push slices [start, stop) and wait until the service has emitted their events."""
    await push(live, sc.bodies[start:stop])
    last = next((p[-1]["id"] for p in reversed(sc.events[:stop]) if p), None)
    await until(lambda: live.service.log.last_id == last, f"event {last} to be emitted")


def hub_of(live: LiveServer) -> FeedHub:
    return live.app.state.feed_hub  # type: ignore[no-any-return]


def server_loop(live: LiveServer) -> asyncio.AbstractEventLoop:
    return live.server.servers[0].get_loop()


# -- a server whose sockets buffer little, so a client that does not read stalls soon ------
@contextmanager
def tight_server(cfg: Config) -> Iterator[LiveServer]:
    """Like the shared `live_server`, but accepted sockets get a 4 KiB send buffer (Linux
    inherits it from the listening socket): the kernel then holds few events for a client that
    never reads, and its sender blocks after ~150 events instead of thousands."""
    app = create_app(cfg)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.service, app, cfg,
                      server, thread)
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 10, "the server to start")
        assert server.started, "the server failed to start"
        yield live
    finally:
        live.stop()
        sock.close()


class StalledClient:
    """A websocket client (the `websockets` protocol over a raw socket with a tiny receive
    buffer) that completes the handshake and then reads nothing until told to."""

    def __init__(self, url: str) -> None:
        self.proto = ClientProtocol(parse_uri(url))
        self.proto.send_request(self.proto.connect())
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        uri = parse_uri(url)
        self.sock.connect((uri.host, uri.port))
        self.sock.sendall(b"".join(self.proto.data_to_send()))
        self.sock.setblocking(False)

    async def read_all(self, timeout: float = 10.0) -> tuple[list[dict[str, Any]], Close]:
        """Read everything up to the server's close frame."""
        loop, out = asyncio.get_running_loop(), []
        deadline = time.monotonic() + timeout
        while True:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 16),
                                          max(0.1, deadline - time.monotonic()))
            assert data, "the server closed the TCP connection without a close frame"
            self.proto.receive_data(data)
            for ev in self.proto.events_received():
                if isinstance(ev, Frame) and ev.opcode is Opcode.TEXT:
                    out.append(orjson.loads(ev.data))
                elif isinstance(ev, Frame) and ev.opcode is Opcode.CLOSE:
                    close = Close.parse(ev.data)
                    return out, close

    def close(self) -> None:
        self.sock.close()


# -- tests ------------------------------------------------------------------------------------
async def test_snapshot_first_then_every_event_in_order_and_nothing_more(
        live_server: Callable[..., LiveServer]) -> None:
    sc = scenario()
    live = live_server(feed={"client_queue": 10})        # bursts of one batch exceed this
    await push_and_wait(live, sc, 0, sc.prefix)
    before = sc.upto(sc.prefix)
    async with connect(feed_url(live)) as ws:
        snap = await recv(ws)
        assert snap["type"] == "snapshot"
        assert snap["last_id"] == before[-1]["id"]
        assert [i["id"] for i in snap["incidents"]] == open_incidents(before, FeedFilter())
        assert {i["team"] for i in snap["incidents"]} == {"tech", "customer_service", "live_ops"}
        assert all(i["status"] == "open" for i in snap["incidents"])

        await push(live, sc.bodies[sc.prefix:])
        rest = sc.all[len(before):]
        got = await alerts(ws, len(rest))
        assert got == rest                                # every field, in emission order
        assert all(set(m) == SECTION3 | {"type"} for m in got)
        assert [m["id"] for m in got] == sorted(m["id"] for m in got)

        assert hub_of(live).stats.dropped == 0, "bursts of one batch beyond the queue are fine"
        await asyncio.to_thread(live.stop)                # uvicorn's shutdown closes it: 1012
        close = await closed_with(ws)                     # ... and nothing was sent after
        assert close.code == 1012
    assert not live.thread.is_alive()
    assert hub_of(live).client_count == 0 and hub_of(live).closed   # by the lifespan's end


FILTERS: list[tuple[dict[str, Any], FeedFilter]] = [
    ({"team": "tech"}, FeedFilter(teams=frozenset({"tech"}))),
    ({"team": ["customer_service", "live_ops"]},
     FeedFilter(teams=frozenset({"customer_service", "live_ops"}))),
    ({"team": "customer_service, live_ops", "token": "ignored-for-now"},
     FeedFilter(teams=frozenset({"customer_service", "live_ops"}))),
    ({"min_level": "2"}, FeedFilter(min_level=2)),
    ({"stream": "room-b,room-c", "min_level": 3},
     FeedFilter(streams=frozenset({"room-b", "room-c"}), min_level=3)),
    ({"stream": ["room-a", "room-c"], "team": "tech"},
     FeedFilter(teams=frozenset({"tech"}), streams=frozenset({"room-a", "room-c"}))),
    ({"team": "", "min_level": "", "stream": ""}, FeedFilter()),
    ({"stream": "room-zzz"}, FeedFilter(streams=frozenset({"room-zzz"}))),
]


async def test_filters_apply_to_snapshot_and_events(
        live_server: Callable[..., LiveServer]) -> None:
    sc = scenario()
    live = live_server()
    await push_and_wait(live, sc, 0, sc.prefix)
    before, rest = sc.upto(sc.prefix), sc.all[len(sc.upto(sc.prefix)):]
    clients = [await connect(feed_url(live, **params)) for params, _ in FILTERS]
    try:
        for ws, (params, flt) in zip(clients, FILTERS):
            snap = await recv(ws)
            assert snap["type"] == "snapshot", params
            assert [i["id"] for i in snap["incidents"]] == open_incidents(before, flt), params
        await push(live, sc.bodies[sc.prefix:])
        for ws, (params, flt) in zip(clients, FILTERS):
            want = [e for e in rest if flt.match(e)]
            assert await alerts(ws, len(want)) == want, params
        assert [e for e in rest if FILTERS[0][1].match(e)] != rest, "filters do filter"
        await asyncio.to_thread(live.stop)
        for ws, (params, _) in zip(clients, FILTERS):
            assert (await closed_with(ws)).code == 1012, params   # nothing unwanted came
    finally:
        for ws in clients:
            await ws.close()


async def test_reconnect_with_since_gets_exactly_what_was_missed(
        live_server: Callable[..., LiveServer]) -> None:
    sc = scenario()
    live = live_server(feed={"client_queue": 10})
    tech = FeedFilter(teams=frozenset({"tech"}))
    seen: list[dict[str, Any]] = []
    seen_tech: list[dict[str, Any]] = []
    first_cut, second_cut = sc.prefix, sc.prefix + 3
    async with connect(feed_url(live)) as ws, connect(feed_url(live, team="tech")) as wt:
        assert (await recv(ws))["last_id"] is None          # nothing happened yet
        assert (await recv(wt))["type"] == "snapshot"
        await push(live, sc.bodies[:first_cut])
        seen += await alerts(ws, len(sc.upto(first_cut)))
        seen_tech += await alerts(wt, len([e for e in sc.upto(first_cut) if tech.match(e)]))
    await until(lambda: hub_of(live).client_count == 0, "both clients to be gone")

    await push_and_wait(live, sc, first_cut, second_cut)    # happens while disconnected
    missed = sc.upto(second_cut)[len(seen):]
    assert missed, "the scenario produces events while the clients are away"
    async with connect(feed_url(live, since=seen[-1]["id"])) as ws, \
            connect(feed_url(live, since=seen_tech[-1]["id"], team="tech")) as wt:
        snap = await recv(ws)
        assert snap["type"] == "snapshot" and snap["last_id"] == missed[-1]["id"]
        assert [i["id"] for i in snap["incidents"]] == open_incidents(sc.upto(second_cut),
                                                                      FeedFilter())
        seen += await alerts(ws, len(missed))
        assert (await recv(wt))["type"] == "snapshot"
        seen_tech += await alerts(wt, len([e for e in missed if tech.match(e)]))

        await push(live, sc.bodies[second_cut:])           # then live, seamlessly
        seen += await alerts(ws, len(sc.all) - len(seen))
        seen_tech += await alerts(wt, len([e for e in sc.all if tech.match(e)]) - len(seen_tech))
        await asyncio.to_thread(live.stop)
        assert (await closed_with(ws)).code == (await closed_with(wt)).code == 1012
    assert seen == sc.all                                   # no loss, no duplicate
    assert seen_tech == [e for e in sc.all if tech.match(e)]


async def test_resume_point_no_longer_held_is_a_gap_then_snapshot_then_live(
        live_server: Callable[..., LiveServer]) -> None:
    sc = scenario()
    live = live_server(feed={"replay_buffer": 100})
    n = len(sc.bodies) - 2
    await push_and_wait(live, sc, 0, n)
    held = sc.upto(n)
    assert len(held) > 150, "the scenario overflows the replay buffer"
    oldest, newest = held[0]["id"], held[-1]["id"]
    clients = {
        "evicted": await connect(feed_url(live, since=oldest)),
        "unknown": await connect(feed_url(live, since="999999999999")),   # e.g. after a restart
        "held": await connect(feed_url(live, since=held[-50]["id"])),
        "current": await connect(feed_url(live, since=newest)),
    }
    try:
        for name in ("evicted", "unknown"):
            gap = await recv(clients[name])
            assert gap["type"] == "gap", name
            assert gap["since"] in (oldest, "999999999999") and gap["reason"], name
        for name, ws in clients.items():
            snap = await recv(ws)
            assert snap["type"] == "snapshot" and snap["last_id"] == newest, name
            assert [i["id"] for i in snap["incidents"]] == open_incidents(held, FeedFilter())
        assert await alerts(clients["held"], 49) == held[-49:]
        await push(live, sc.bodies[n:])                       # every client continues live
        for name, ws in clients.items():
            assert await alerts(ws, len(sc.all) - len(held)) == sc.all[len(held):], name
        await asyncio.to_thread(live.stop)
        for name, ws in clients.items():
            assert (await closed_with(ws)).code == 1012, name
    finally:
        for ws in clients.values():
            await ws.close()


async def test_slow_client_is_told_and_dropped_while_others_get_everything() -> None:
    sc = scenario()
    cfg = make_config(feed={"client_queue": 10})
    with tight_server(cfg) as live:
        hub = hub_of(live)
        stalled = StalledClient(feed_url(live))
        try:
            async with connect(feed_url(live), max_queue=None) as fast:
                await until(lambda: hub.client_count == 2, "both clients to be connected")
                assert (await recv(fast))["type"] == "snapshot"
                got_fast, _ = await asyncio.gather(alerts(fast, len(sc.all)),
                                                   push(live, sc.bodies))
                assert got_fast == sc.all
                # the consumer went through every batch while one client read nothing at all
                assert live.service.log.last_id == sc.all[-1]["id"]
                assert live.service.queued == 0
                await until(lambda: hub.stats.dropped == 1, "the stalled client to be dropped")
                assert hub.client_count == 1

                got, close = await stalled.read_all()     # it reads at last: what was it told?
                assert close.code == 4008
                assert got[0]["type"] == "snapshot" and got[-1]["type"] == "lagging"
                received = got[1:-1]
                assert received == sc.all[:len(received)], "a gapless prefix of the events"
                assert len(received) < len(sc.all) - 10
                resume = received[-1]["id"] if received else got[0]["last_id"]
                assert got[-1]["last_id"] == resume
                assert hub.stats.cut == 0

            # it resumes with since=last_id and gets exactly the rest
            async with connect(feed_url(live, since=resume)) as again:
                assert (await recv(again))["type"] == "snapshot"
                assert await alerts(again, len(sc.all) - len(received)) == \
                    sc.all[len(received):]
        finally:
            stalled.close()


async def test_client_that_never_drains_is_cut_after_the_grace() -> None:
    sc = scenario()
    with tight_server(make_config(feed={"client_queue": 10})) as live:
        hub = hub_of(live)
        hub.lag_grace = 0.2
        stalled = StalledClient(feed_url(live))
        try:
            async with connect(feed_url(live), max_queue=None) as fast:
                await until(lambda: hub.client_count == 2, "both clients to be connected")
                await recv(fast)
                got_fast, _ = await asyncio.gather(alerts(fast, len(sc.all)),
                                                   push(live, sc.bodies))
                assert got_fast == sc.all
                await until(lambda: hub.stats.cut == 1, "the stalled client to be cut")
                assert hub.stats.dropped == 1 and hub.client_count == 1
        finally:
            stalled.close()


async def test_max_clients_refused_with_1013_until_one_leaves(
        live_server: Callable[..., LiveServer]) -> None:
    live = live_server(feed={"max_clients": 2})
    hub = hub_of(live)
    a = await connect(feed_url(live))
    b = await connect(feed_url(live))
    try:
        assert (await recv(a))["type"] == (await recv(b))["type"] == "snapshot"
        async with connect(feed_url(live)) as c:
            close = await closed_with(c)
            assert close.code == 1013 and "too many" in close.reason
        assert hub.stats.refused == 1 and hub.client_count == 2
        await a.close()
        await until(lambda: hub.client_count == 1, "the slot to be freed")
        async with connect(feed_url(live)) as d:
            assert (await recv(d))["type"] == "snapshot"
            assert hub.client_count == 2
    finally:
        await a.close()
        await b.close()


@pytest.fixture(scope="module")
def shared_server(live_server_module: Callable[..., LiveServer]) -> LiveServer:
    """One server for the tests that leave no state behind."""
    return live_server_module()


@pytest.mark.parametrize("query,param", [
    ("min_level=0", "min_level"), ("min_level=5", "min_level"), ("min_level=abc", "min_level"),
    ("min_level=1.5", "min_level"), ("min_level=1&min_level=2", "min_level"),
    ("team=marketing", "team"), ("team=tech,nobody", "team"),
    ("since=" + "1" * 65, "since"), ("since=1%202", "since"), ("since=a&since=b", "since"),
    ("stream=" + "x" * 300, "stream"),
])
async def test_bad_parameters_close_with_1008_naming_the_parameter(
        shared_server: LiveServer, query: str, param: str) -> None:
    live = shared_server
    hub = hub_of(live)
    connected = hub.stats.connected
    async with connect(f"{live.ws_url}{PATH}?{query}") as ws:
        close = await closed_with(ws)
    assert close.code == 1008
    assert close.reason.startswith(f"bad {param}:"), close.reason
    assert ("once" in close.reason) == ("&" in query), close.reason
    assert hub.stats.connected == connected and hub.client_count == 0


async def test_closing_the_hub_closes_clients_with_1001_and_refuses_new_ones(
        live_server: Callable[..., LiveServer]) -> None:
    live = live_server()
    hub = hub_of(live)
    async with connect(feed_url(live)) as ws:
        assert (await recv(ws))["type"] == "snapshot"
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(hub.close(),
                                                                   server_loop(live)))
        assert (await closed_with(ws)).code == 1001
    async with connect(feed_url(live)) as late:
        assert (await closed_with(late)).code == 1001
    assert hub.client_count == 0


def test_live_events_already_replayed_are_skipped_and_shared_by_clients() -> None:
    log = EventLog(1000)
    events = [AlertEvent.model_validate({k: v for k, v in e.items() if k != "type"})
              for e in scenario().all[:20]]
    held = log.append(events[:10])
    hub = FeedHub(log, IncidentIndex(), client_queue=100)
    resumed = hub.connect(FeedFilter(), since=held[4].id)
    fresh = hub.connect(FeedFilter())
    assert [p for _, p in resumed.initial] == [held[4].id] + [e.id for e in held[5:]] + \
        [held[-1].id]                          # snapshot, the 5 missed, then caught up to last
    hub.publish(held)                          # a publish of what was already replayed
    assert not resumed.buf and not fresh.buf
    new = log.append(events[10:])
    hub.publish(new)
    assert [i for _, i in resumed.buf] == [i for _, i in fresh.buf] == [e.id for e in new]
    assert all(a[0] is b[0] for a, b in zip(resumed.buf, fresh.buf)), "decoded once, shared"


async def test_only_clients_whose_socket_pushes_back_are_dropped() -> None:
    log = EventLog(1000)
    events = [AlertEvent.model_validate({k: v for k, v in e.items() if k != "type"})
              for e in scenario().all[:30]]
    hub = FeedHub(log, IncidentIndex(), client_queue=10)
    waiting, stuck = hub.connect(FeedFilter()), hub.connect(FeedFilter())
    stuck.sending = True                       # as if suspended in a send the socket refuses
    for e in events:
        hub.publish(log.append([e]))
    assert len(waiting.buf) == 30, "its sender has not had a turn yet: the server was busy"
    assert hub.client_count == 1 and hub.stats.dropped == 1
    assert len(stuck.buf) == 1, "its backlog was discarded for the lagging notice"
    hub.disconnect(stuck)
