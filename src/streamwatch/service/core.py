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

Durability (service/durability.py): a push is answered once its batch is in the sample journal;
alert events are stored before subscribers see them; a restart (kill -9 included) restores the
store's incidents and events and replays the journal on the detectors' last checkpoint. Operator
actions: service/actions.py.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamwatch.checkpoint import Checkpointer, answer_when
from streamwatch.config.load import Config
from streamwatch.events import AlertEvent
from streamwatch.incidents.index import IncidentIndex
from streamwatch.incidents.silence import Silences
from streamwatch.ingest.batch import Batch, Limits
from streamwatch.ingest.fastpath import LazyLabels
from streamwatch.notify.log import EventLog, LoggedEvent
from streamwatch.pipeline import Pipeline
from streamwatch.service.actions import OperatorActions
from streamwatch.service.durability import Durability
from streamwatch.service.stats import ServiceStats
from streamwatch.store import Store

__all__ = ["Service", "Subscriber"]

log = logging.getLogger("streamwatch.service")

_COALESCE_MAX = 200_000        # samples processed in one pipeline call at most


Subscriber = Callable[[list[LoggedEvent]], None]


@dataclass(slots=True)
class _Item:
    """One queue entry: a batch of samples, or a manual resolve to apply in its place."""
    batch: Batch | None
    accepted_at: float
    done: asyncio.Future[Any] | None = None     # the pusher waits: True once durable
    close: tuple[str, str] | None = None        # (incident id, by)
    entry: dict[str, Any] | None = None         # its timeline entry
    barrier: bool = False                       # `done` once the whole round is over (drain)


def _warm_up(config: Config) -> None:
    """Load (or compile) every numba kernel on a throwaway pipeline before reporting ready, so
    the first real request does not wait for it."""
    from streamwatch.ingest.fastpath import Interned  # noqa: F401  (imported for its kernels)
    p = Pipeline(config.rules, config.pipeline_settings())
    t0 = 1_700_000_000.0
    lines = [b'{"stream":"warm","metric":"%s","ts":%.1f,"value":%d}' % (m, t0 + k, k)
             for k in range(3) for m in (b"viewers", b"orders_total", b"product_clicks_total",
                                         b"live", b"bitrate_kbps", b"error_ratio")]
    res = p.parser.commit(p.parser.parse_ndjson(b"\n".join(lines), now=t0 + 10))
    p.process(res.batch)


class Service(Durability, OperatorActions):
    """Owns the pipeline and everything stateful of the live service; no HTTP here."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time,
                 data_dir: str | Path | None = None, store: Store | None = None) -> None:
        """`data_dir`: where the store file lives (None with no `store`: an in-memory store,
        nothing survives the process - tests, the demo)."""
        self.config = config
        self.clock = clock
        self.pipeline = Pipeline(config.rules, config.pipeline_settings())
        self.parser = self.pipeline.parser
        ing, srv = config.service.ingest, config.service.server
        self.limits = Limits(max_labels=ing.max_labels, max_label_len=ing.max_label_len,
                             future_skew_s=ing.future_skew, max_streams=ing.max_streams,
                             max_metrics=ing.max_metrics)
        self.max_queued = srv.queue_max_samples
        self.log = EventLog(config.service.feed.replay_buffer)
        self.incidents = IncidentIndex(config.service.storage.keep_resolved)
        self.silences = Silences(clock)       # consulted on the wall clock as events go out
        self.stats = ServiceStats()
        self.queued = 0                       # samples waiting in the queue
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._subscribers: list[Subscriber] = []
        self._consumer: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = False
        self.sources: list = []               # ingest/pull.py SourceState, one per pull source
        self.data_dir = data_dir
        self.store: Store | None = store
        self.store_error: str | None = None   # the last store failure, None while all is stored
        self._pending_events: list[dict[str, Any]] = []
        self._pending_actions: list[tuple[str, dict[str, Any]]] = []
        self._dirty: set[str] = set()         # incident ids whose record is not stored yet
        self._retry_at = 0.0
        self._backoff = 0.0
        self.checkpointer: Checkpointer | None = None   # the sample journal (file store only)
        self._recovered: list[AlertEvent] = []   # replayed after a crash, not yet published
        self._opened = False
        self.stream_labels: dict[str, dict[str, str]] = {}   # newest labels seen per stream

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        """Open the store and the journal and rebuild the state they hold (idempotent); the
        app attaches the store's other users (webhooks, escalation) between this and `start`,
        so they see the events a crash recovery regenerates."""
        if self._opened:
            return
        self._opened = True
        rec = self._open_journal()
        self._open_store(restore_manager=rec is None or rec.state is None)
        if rec is not None and rec.state is not None:
            self._replay_journal(rec)

    async def start(self) -> None:
        self.open()
        if self._recovered:
            events, self._recovered = self._recovered, []
            self._publish(events, force=True)
        if self.checkpointer is not None:      # a fresh log on a state that covers all of it
            await self.checkpointer.checkpoint(self.pipeline, wait=True)
        await asyncio.to_thread(_warm_up, self.config)
        self._consumer = asyncio.create_task(self._consume(), name="streamwatch-consumer")
        if self.store is not None:
            self.spawn(self._retry_writes(), "streamwatch-store-retry")
        if self.checkpointer is not None:
            self.spawn(self._tick(min(1.0, self.checkpointer.interval / 2)),
                       "streamwatch-checkpoint-tick")
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
        if self.checkpointer is not None:
            await self.checkpointer.settle()
        if self.store is not None:
            self._flush(force=True)
            if self.checkpointer is not None and not self.store_pending:
                self.checkpointer.checkpoint_now(self.pipeline)
            self.store.close()
        if self.checkpointer is not None:
            self.checkpointer.close()
        self._opened = False                  # a later start() opens (and restores) anew
        log.info("service stopped", extra={"samples": self.stats.samples_accepted})

    # -- input ------------------------------------------------------------------------------
    def submit(self, batch: Batch, accepted_at: float | None = None,
               done: asyncio.Future[bool] | None = None) -> bool:
        """Queue a batch whole, or refuse it whole when the queue is full (back-pressure).
        `done` (optional) gets True once the batch is in the journal (or there is none: memory
        only), False when it could not be logged (it is detected all the same)."""
        n = len(batch)
        if n == 0:
            if done is not None:
                done.set_result(True)
            return True
        if self.queued + n > self.max_queued:
            self.stats.submits_refused += 1       # the caller decides what it means (429, retry)
            return False
        self.queued += n
        self.stats.samples_accepted += n
        self._queue.put_nowait(_Item(batch, time.perf_counter() if accepted_at is None
                                     else accepted_at, done))
        return True

    async def submit_durable(self, batch: Batch) -> bool | None:
        """`submit`, then wait until the batch is journaled: None = refused (queue full),
        False = queued and detected but not durable (journal failing), True = durable."""
        if self.checkpointer is None:          # memory only: accepted means queued
            return True if self.submit(batch) else None
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not self.submit(batch, done=done):
            return None
        return await done

    async def drain(self) -> None:
        """Wait until everything queued so far has been processed (tests, benchmarks)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(Batch.empty(), time.perf_counter(), done, barrier=True))
        await done

    # -- processing -------------------------------------------------------------------------
    async def _consume(self) -> None:
        while True:
            item = await self._queue.get()
            items = [item]
            total = len(item.batch) if item and item.batch else 0
            while item is not None and total < _COALESCE_MAX and not self._queue.empty():
                item = self._queue.get_nowait()
                items.append(item)
                total += len(item.batch) if item and item.batch else 0
            run: list[_Item] = []
            for it in items:
                if it is not None and it.close is None:
                    run.append(it)
                    continue
                if run:
                    self._log_and_process(run)
                    run = []
                if it is not None:
                    self._apply_close(it)
            if run:
                self._log_and_process(run)
            c = self.checkpointer
            if c is not None and c.due(self.store is not None and not self.store_pending):
                await c.checkpoint(self.pipeline)
            for it in items:
                if it is not None and it.barrier and it.done is not None:
                    it.done.set_result(True)
            if items[-1] is None:
                return
            await asyncio.sleep(0)            # let the loop serve requests between batches

    def _log_and_process(self, run: list[_Item]) -> None:
        """Write the run to the journal, detect, and answer its pushers once the write is
        fsync'ed (checkpoint.py: detection does not wait for the disk)."""
        batches = [it.batch for it in run if it.batch is not None and len(it.batch)]
        waiting = [it.done for it in run
                   if it.done is not None and not it.barrier and not it.done.done()]
        if self.checkpointer is not None and batches:
            durable = self.checkpointer.durable(self.checkpointer.log(batches))
            for done in waiting:
                answer_when(durable, done)
        else:
            for done in waiting:
                done.set_result(True)
        if batches:
            self._process(run)

    def _process(self, work: list[_Item]) -> None:
        batches = [it.batch for it in work if it.batch is not None and len(it.batch)]
        for b in batches:
            self._note_labels(b)
        batch = Batch.concat(batches) if len(batches) > 1 else batches[0]
        try:
            events = self.pipeline.process(batch)
        except Exception:                      # never lose the consumer to one bad batch
            log.exception("pipeline failed on a batch", extra={"samples": len(batch)})
            events = []
        done = time.perf_counter()
        self.queued -= len(batch)
        self.stats.batches += 1
        for it in work:
            self.stats.batch_latency.observe(done - it.accepted_at)
        if not events:
            return
        oldest = min(it.accepted_at for it in work)
        self.stats.alert_latency.observe(done - oldest, len(events))
        self._publish(events)

    def _note_labels(self, b: Batch) -> None:
        """Keep each stream's newest sample labels, for routing on them (incidents/route.py);
        bounded by the streams tracked, and free for the usual batch without labels."""
        labels = b.labels
        where = labels.present() if isinstance(labels, LazyLabels) else \
            [i for i, lab in enumerate(labels) if lab]
        for i in where:
            lab = labels[i]
            if lab:
                self.stream_labels[b.streams[i]] = lab

    def _publish(self, events: list[AlertEvent], *, force: bool = False) -> bool:
        """Log, index, store (before anyone sees them), then fan out; True if stored.
        An event matched by an active silence goes everywhere all the same, flagged
        `"silenced": true` (paging outputs - webhooks - skip it)."""
        extra: dict[str, dict[str, Any]] = {}
        if self.silences:
            now = self.clock()
            for e in events:
                if self.silences.silencing({"stream": e.stream, "metric": e.metric, "team": e.team,
                                            "incident_type": e.incident_type}, now):
                    extra[e.id] = {"silenced": True}
        self.stats.silenced_events += len(extra)
        logged = self.log.append(events, extra)
        for item in logged:
            self.incidents.apply(item.data)
            d = item.data
            self.stats.events[(d["level"], d["team"], d["status"])] += 1
        self._stage(logged)
        stored = self._flush(force=force)
        for fn in list(self._subscribers):
            try:
                fn(logged)
            except Exception:
                log.exception("subscriber failed")
        return stored

    async def _tick(self, every: float) -> None:
        """Wake an idle consumer now and then so a due checkpoint is taken without new input
        (the consumer is the journal's only writer: it checkpoints between runs)."""
        while True:
            await asyncio.sleep(every)
            if self._queue.empty():
                self._queue.put_nowait(_Item(Batch.empty(), time.perf_counter()))

    def _queue_close(self, incident_id: str, by: str, entry: dict[str, Any],
                     done: asyncio.Future[Any]) -> None:
        """A manual resolve, to be applied by the consumer in its place (service/actions.py)."""
        self._queue.put_nowait(_Item(None, time.perf_counter(), done, (incident_id, by), entry))

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
