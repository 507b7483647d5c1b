"""FeedHub: fans the service's alert events out to websocket clients, each at its own pace.

Why it is built this way:

- **The core never waits for a client.** `publish` is a Service subscriber: the consumer calls it
  synchronously after each processed batch. It only appends to per-client bounded buffers and
  wakes the client's sender task, which drains its buffer to the socket. A stuck socket stalls
  that one sender, nothing else.
- **A client too far behind is told and dropped.** A client whose socket is not taking data
  (its sender is stuck in a send) while it holds `client_queue` undelivered events when new ones
  arrive is dropped: its buffer is discarded, it is sent
  `{"type": "lagging", "last_id": ID, "reason": ...}` and closed with `CLOSE_LAGGING` (4008),
  so it can resume with `since=ID` (what it missed is still in the EventLog if it comes back in
  time). 4008 rather than 1013 so a client can tell "you were too slow" from "server full". The
  bound is judged *before* a publish appends, so one large batch (a backfill) may exceed it for a
  moment without dropping clients that keep up; and only against clients whose socket pushes
  back, so a burst the loop has not yet had time to send (the server is busy, not the client)
  drops nobody. A sender that is not stuck drains at its next turn, so memory stays bounded by
  `client_queue` plus what arrives between two turns; the message strings are shared by all
  clients. A client whose socket does not drain at all cannot even receive the notice: its
  sender is cancelled after `lag_grace`.
- **No loss, no duplicates across reconnects.** `connect` registers the client, reads the
  incident snapshot and the EventLog in one synchronous step; as `publish` runs on the same loop,
  no event can slip in between: everything up to the log's newest id comes from the
  snapshot/replay, everything after it live (`after` guards this again). With `since`, the
  snapshot is still sent first (the current state), then the missed events in order: applying
  them on top of the snapshot converges to the same state, and the client needs no special case
  for "first connect" versus "resume". A `since` the log no longer holds (or never held, e.g.
  after a restart) gets `{"type": "gap", ...}` first, then the snapshot, then live events.
- **Encoded once.** Each event's JSON is encoded once by the EventLog and decoded to `str` once
  per publish (ASGI text frames take `str`); every client gets the same string object.

The hub knows nothing of HTTP: it talks to a `FeedSocket` (`send_text`, `close`), which Starlette's
WebSocket is. Query parsing, accepting and the receive side live in api/feed.py.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from streamwatch.incidents.index import IncidentIndex
from streamwatch.notify.log import EventLog, Gap, LoggedEvent

__all__ = ["FeedHub", "FeedFilter", "FeedStats", "FeedClient", "FeedSocket", "FeedFull",
           "FeedClosed", "CLOSE_GOING_AWAY", "CLOSE_POLICY", "CLOSE_TRY_LATER", "CLOSE_LAGGING",
           "LAG_GRACE_S"]

log = logging.getLogger("streamwatch.notify.feed")

CLOSE_GOING_AWAY = 1001      # the hub is closing (service stopping)
CLOSE_POLICY = 1008          # bad query parameters
CLOSE_TRY_LATER = 1013       # too many clients
CLOSE_LAGGING = 4008         # this client fell too far behind: resume with since=last_id
LAG_GRACE_S = 5.0            # a dropped client's socket gets this long to take the notice

# a send to a socket that takes it completes without suspending: yield now and then, so a long
# replay or burst to one client does not hold the loop (the consumer, other clients) for long
_YIELD_EVERY = 64

_LAG = object()              # control items in a client's buffer
_CLOSE = object()


class FeedFull(Exception):
    """`max_clients` are connected already."""


class FeedClosed(Exception):
    """The hub was closed (the service is stopping)."""


class FeedSocket(Protocol):
    """What the hub needs of a connection (Starlette's WebSocket has it)."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """Which events and incidents a client wants; empty sets and None mean "all"."""
    teams: frozenset[str] = frozenset()
    streams: frozenset[str] = frozenset()
    min_level: int | None = None          # keeps levels 1..min_level (CONTRACTS §5)

    @property
    def everything(self) -> bool:
        return not self.teams and not self.streams and self.min_level is None

    def match(self, item: Mapping[str, Any]) -> bool:
        """An alert event or an incident: both carry `team`, `stream` and `level`."""
        return ((not self.teams or item["team"] in self.teams)
                and (not self.streams or item["stream"] in self.streams)
                and (self.min_level is None or item["level"] <= self.min_level))


@dataclass(slots=True)
class FeedStats:
    """Counters for /metrics (monotonic)."""
    connected: int = 0         # clients accepted
    refused: int = 0           # refused: max_clients reached or hub closed
    dropped: int = 0           # dropped for lagging
    cut: int = 0               # dropped clients whose socket did not take the notice in time
    sent: int = 0              # messages handed to sockets


@dataclass(eq=False, slots=True)
class FeedClient:
    """One connected client: its filter, its bounded buffer and where it stands."""
    filter: FeedFilter
    after: str                                  # live events with an id <= this are skipped
    initial: list[tuple[str | None, str | None]] = field(default_factory=list)
    buf: deque[Any] = field(default_factory=deque)   # (text, event id) or a control item
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    position: str | None = None    # everything matching up to this id has been sent
    sending: bool = False          # suspended inside a send: the socket pushes back
    task: asyncio.Task[Any] | None = None
    timer: asyncio.TimerHandle | None = None


def _text(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


class FeedHub:
    """The alert feed's clients and the fan-out to them; see the module notes."""

    def __init__(self, log: EventLog, incidents: IncidentIndex, *, client_queue: int = 1000,
                 max_clients: int = 500, lag_grace: float = LAG_GRACE_S) -> None:
        self.log = log
        self.incidents = incidents
        self.client_queue = client_queue
        self.max_clients = max_clients
        self.lag_grace = lag_grace
        self.stats = FeedStats()
        self.closed = False
        self._clients: dict[FeedClient, None] = {}     # insertion-ordered set
        self._unsubscribe: Callable[[], None] | None = None

    @classmethod
    def for_service(cls, service: Any) -> FeedHub:
        """A hub over the service's log and incidents, subscribed to its events."""
        feed = service.config.service.feed
        hub = cls(service.log, service.incidents, client_queue=feed.client_queue,
                  max_clients=feed.max_clients)
        hub._unsubscribe = service.subscribe(hub.publish)
        return hub

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # -- the consumer's side: never awaits --------------------------------------------------
    def publish(self, events: list[LoggedEvent]) -> None:
        if not self._clients or not events:
            return
        texts: list[str | None] = [None] * len(events)
        behind = []
        for c in self._clients:
            if c.sending and len(c.buf) >= self.client_queue:
                behind.append(c)
                continue
            everything, flt, after, added = c.filter.everything, c.filter, c.after, False
            for k, ev in enumerate(events):
                if ev.id <= after or not (everything or flt.match(ev.data)):
                    continue
                text = texts[k]
                if text is None:
                    text = texts[k] = ev.json.decode()
                c.buf.append((text, ev.id))
                added = True
            if added:
                c.wake.set()
        for c in behind:
            self._drop(c)

    def _drop(self, c: FeedClient) -> None:
        self._clients.pop(c, None)
        self.stats.dropped += 1
        log.warning("feed client too far behind, dropped",
                    extra={"queued": len(c.buf), "last_id": c.position})
        c.buf.clear()
        c.buf.append(_LAG)
        c.wake.set()
        c.timer = asyncio.get_running_loop().call_later(self.lag_grace, self._cut, c)

    def _cut(self, c: FeedClient) -> None:
        if c.task is not None and not c.task.done():
            self.stats.cut += 1
            log.info("dropped feed client did not take the notice; cutting it")
            c.task.cancel()

    # -- a connection's side ----------------------------------------------------------------
    def connect(self, flt: FeedFilter, since: str | None = None) -> FeedClient:
        """Register a client and prepare what it is sent first (gap?, snapshot, replay).

        Synchronous on purpose: nothing can be published between reading the log and
        registering, so the replayed and the live parts neither overlap nor leave a hole.
        """
        if self.closed:
            self.stats.refused += 1
            raise FeedClosed("the alert feed is closing")
        if len(self._clients) >= self.max_clients:
            self.stats.refused += 1
            raise FeedFull(f"{self.max_clients} feed clients are connected already")
        last = self.log.last_id
        c = FeedClient(flt, after=last or "")
        replay: list[LoggedEvent] = []
        resumed = since is not None
        if since is not None:
            gap = None
            if last is None or since > last:
                gap = (f"event {since} is unknown (newest held: {last}); the service may have "
                       f"restarted")
            else:
                try:
                    replay = self.log.since(since)
                except Gap as exc:
                    gap = str(exc)
            if gap is not None:
                resumed = False
                c.initial.append((_text({"type": "gap", "since": since, "reason": gap}), None))
        incidents = [i for i in self.incidents.query() if i["status"] != "resolved"
                     and flt.match(i)]
        incidents.reverse()                                # oldest first
        snapshot = _text({"type": "snapshot", "incidents": incidents, "last_id": last})
        c.initial.append((snapshot, since if resumed else last))
        c.position = since if resumed else None
        for ev in replay:
            if flt.match(ev.data):
                c.initial.append((ev.json.decode(), ev.id))
        if resumed:
            c.initial.append((None, last))                 # filtered-out tail: caught up to last
        self._clients[c] = None
        self.stats.connected += 1
        return c

    async def run(self, c: FeedClient, sock: FeedSocket) -> None:
        """Send the client its opening messages, then its live events, until it is dropped,
        the hub closes, or the socket fails (the exception propagates to the caller)."""
        c.task = asyncio.current_task()
        burst = 0
        try:
            for text, position in c.initial:
                if text is not None:
                    c.sending = True
                    await sock.send_text(text)
                    c.sending = False
                    self.stats.sent += 1
                    burst += 1
                    if burst % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                c.position = position
            c.initial = []
            while True:
                if not c.buf:
                    c.wake.clear()
                    await c.wake.wait()
                    continue
                burst += 1
                if burst % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                item = c.buf.popleft()
                if item is _LAG:
                    await sock.send_text(_text({
                        "type": "lagging", "last_id": c.position,
                        "reason": f"more than {self.client_queue} events behind; reconnect "
                                  f"with since=last_id"}))
                    self.stats.sent += 1
                    await sock.close(CLOSE_LAGGING, "too far behind: resume with since=last_id")
                    return
                if item is _CLOSE:
                    await sock.close(CLOSE_GOING_AWAY, "service stopping")
                    return
                text, event_id = item
                c.sending = True
                await sock.send_text(text)
                c.sending = False
                self.stats.sent += 1
                c.position = event_id
        finally:
            if c.timer is not None:
                c.timer.cancel()
            self._clients.pop(c, None)

    def disconnect(self, c: FeedClient) -> None:
        """Forget a client (it went away); idempotent."""
        self._clients.pop(c, None)
        if c.timer is not None:
            c.timer.cancel()

    async def close(self, timeout: float = 2.0) -> None:
        """Stop taking events and clients; close every client with 1001 after what it has
        queued (sockets that do not drain within `timeout` are cut)."""
        if self.closed:
            return
        self.closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        clients = list(self._clients)
        for c in clients:
            c.buf.append(_CLOSE)
            c.wake.set()
        tasks = [c.task for c in clients if c.task is not None and not c.task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                t.cancel()
        self._clients.clear()
