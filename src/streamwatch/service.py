"""Service: the live runtime around the one pipeline - a bounded queue in, outputs fanned out.

    push (api/samples.py) ─┐
    pull (ingest/pull.py) ─┼─> bounded queue ─> consumer task ─> Pipeline.process ─> EventLog
    simulator source ──────┘   (429 when full)   (one at a time,    (same code as      ├─ IncidentIndex
                                                   in arrival order) replay)           └─ subscribers
                                                                                          (websocket hub, ...)
Accepted samples are never dropped: `submit` either queues a batch whole or refuses it whole
(the caller answers 429 with Retry-After), and `stop` drains the queue before returning. Queued
batches are coalesced before processing; the pipeline's output does not depend on how its input
is cut into batches, so this changes cost, not results.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from streamwatch.config.load import Config
from streamwatch.incidents.index import IncidentIndex
from streamwatch.ingest.batch import Batch, Limits
from streamwatch.notify.log import EventLog, LoggedEvent
from streamwatch.pipeline import Pipeline

__all__ = ["Service", "ServiceStats", "LATENCY_BUCKETS"]

log = logging.getLogger("streamwatch.service")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_COALESCE_MAX = 200_000        # samples processed in one pipeline call at most


@dataclass
class Histogram:
    """Fixed buckets, read by the exporter at scrape time (prometheus histogram semantics)."""
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, v: float, times: int = 1) -> None:
        k = int(np.searchsorted(self.buckets, v, side="left"))
        self.counts[k] += times
        self.total += v * times
        self.n += times


@dataclass
class ServiceStats:
    samples_accepted: int = 0
    samples_rejected: Counter[str] = field(default_factory=Counter)   # by reason
    requests_refused: Counter[str] = field(default_factory=Counter)   # by cause (full, too_large..)
    batches: int = 0
    submits_refused: int = 0                                            # queue full
    events: Counter[tuple[int, str, str]] = field(default_factory=Counter)  # (level, team, status)
    alert_latency: Histogram = field(default_factory=Histogram)     # accepted -> event emitted
    batch_latency: Histogram = field(default_factory=Histogram)     # accepted -> processed


Subscriber = Callable[[list[LoggedEvent]], None]


def _warm_up(config: Config) -> None:
    """Load (or compile) every numba kernel on a throwaway pipeline before reporting ready, so
    the first real request does not wait for it."""
    from streamwatch.ingest.fastpath import Interned  # noqa: F401  (imported for its kernels)
    p = Pipeline(config.rules, config.pipeline_settings())
    t0 = 1_700_000_000.0
    lines = [b'{"stream":"warm","metric":"%s","ts":%.1f,"value":%d}' % (m, t0 + k, k)
             for k in range(3) for m in (b"viewers", b"orders_total", b"product_clicks_total",
                                         b"live", b"bitrate_kbps", b"error_ratio")]
    res = p.parser.parse_ndjson(b"\n".join(lines), now=t0 + 10)
    p.process(res.batch)


class Service:
    """Owns the pipeline and everything stateful of the live service; no HTTP here."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.pipeline = Pipeline(config.rules, config.pipeline_settings())
        self.parser = self.pipeline.parser
        ing, srv = config.service.ingest, config.service.server
        self.limits = Limits(max_labels=ing.max_labels, max_label_len=ing.max_label_len,
                             future_skew_s=ing.future_skew)
        self.max_queued = srv.queue_max_samples
        self.log = EventLog(config.service.feed.replay_buffer)
        self.incidents = IncidentIndex()
        self.stats = ServiceStats()
        self.queued = 0                       # samples waiting in the queue
        self._queue: asyncio.Queue[tuple[Batch, float] | None] = asyncio.Queue()
        self._subscribers: list[Subscriber] = []
        self._consumer: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = False
        self.sources: list = []               # ingest/pull.py SourceState, one per pull source

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(_warm_up, self.config)
        self._consumer = asyncio.create_task(self._consume(), name="streamwatch-consumer")
        self.ready = True
        log.info("service started", extra={"rules": len(self.config.rules)})

    def spawn(self, coro, name: str) -> asyncio.Task[None]:  # type: ignore[no-untyped-def]
        """Run a helper task (a pull source) for the service's lifetime."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def stop(self) -> None:
        """Stop sources, drain what was accepted, then stop the consumer."""
        self.ready = False
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._consumer is not None:
            await self._queue.put(None)
            await self._consumer
        log.info("service stopped", extra={"samples": self.stats.samples_accepted})

    # -- input ------------------------------------------------------------------------------
    def submit(self, batch: Batch, accepted_at: float | None = None) -> bool:
        """Queue a batch whole, or refuse it whole when the queue is full (back-pressure)."""
        n = len(batch)
        if n == 0:
            return True
        if self.queued + n > self.max_queued:
            self.stats.submits_refused += 1       # the caller decides what it means (429, retry)
            return False
        self.queued += n
        self.stats.samples_accepted += n
        self._queue.put_nowait((batch, time.perf_counter() if accepted_at is None
                                else accepted_at))
        return True

    # -- processing -------------------------------------------------------------------------
    async def _consume(self) -> None:
        while True:
            item = await self._queue.get()
            items = [item]
            total = len(item[0]) if item else 0
            while item is not None and total < _COALESCE_MAX and not self._queue.empty():
                item = self._queue.get_nowait()
                items.append(item)
                total += len(item[0]) if item else 0
            stop = items[-1] is None
            work = [it for it in items if it is not None]
            if work:
                self._process(work)
            if stop:
                return
            await asyncio.sleep(0)            # let the loop serve requests between batches

    def _process(self, work: list[tuple[Batch, float]]) -> None:
        batch = Batch.concat([b for b, _ in work]) if len(work) > 1 else work[0][0]
        try:
            events = self.pipeline.process(batch)
        except Exception:                      # never lose the consumer to one bad batch
            log.exception("pipeline failed on a batch", extra={"samples": len(batch)})
            events = []
        done = time.perf_counter()
        self.queued -= len(batch)
        self.stats.batches += 1
        for _, accepted in work:
            self.stats.batch_latency.observe(done - accepted)
        if not events:
            return
        logged = self.log.append(events)
        oldest = min(acc for _, acc in work)
        for item in logged:
            self.incidents.apply(item.data)
            d = item.data
            self.stats.events[(d["level"], d["team"], d["status"])] += 1
        self.stats.alert_latency.observe(done - oldest, len(logged))
        for fn in list(self._subscribers):
            try:
                fn(logged)
            except Exception:
                log.exception("subscriber failed")

    # -- outputs ----------------------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    def streams_view(self) -> list[dict[str, object]]:
        """Each stream's newest values (gauges, counter rates per minute) and state."""
        t = self.pipeline.table
        out = []
        for sid, name in enumerate(t.streams[: t.n_streams]):
            metrics = {}
            for (stream, metric), r in t.rows.items():
                if stream == name:
                    v = float(t.row_rate[r])
                    if v == v:
                        metrics[metric] = round(v, 4)
            live = int(t.stream_live[sid])
            newest = float(t.stream_newest[sid])
            out.append({"stream": name, "live": None if live < 0 else bool(live),
                        "last_ts": newest if np.isfinite(newest) else None,
                        "silent": bool(self.pipeline.absence.silent[sid])
                        if sid < len(self.pipeline.absence.silent) else False,
                        "open_incidents": [i["id"] for i in self.incidents.open()
                                           if i["stream"] == name],
                        "metrics": metrics})
        return out
