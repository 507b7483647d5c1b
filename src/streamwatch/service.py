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

Durability (store/): every batch of alert events is written to the store - with the incidents
it touched and the manager's counters, in one transaction - before subscribers see it; operator
actions (`act`) are stored before the caller is answered. On start the service restores the
event log (for `since=` resumes), the incident index and the manager's open incidents and
counters, so ids continue. When the store cannot be written (locked, disk full, corrupt), the
service keeps detecting and publishing, keeps what it could not write, and retries with backoff;
operator actions answer 503 meanwhile, since they could not be stored. A store that cannot even
be opened at start leaves the service running without durability (logged loudly): it is not
retried, because ids issued meanwhile would collide with the stored ones.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamwatch.config.load import Config
from streamwatch.events import AlertEvent
from streamwatch.incidents.index import IncidentIndex
from streamwatch.incidents.manager import OpenIncident
from streamwatch.incidents.silence import Silences
from streamwatch.ingest.batch import Batch, Limits
from streamwatch.ingest.fastpath import LazyLabels
from streamwatch.notify.log import EventLog, LoggedEvent
from streamwatch.pipeline import Pipeline
from streamwatch.checkpoint import Checkpointer
from streamwatch.store import Counters, IncidentRecord, Store, StoreError, open_store
from streamwatch.store.journal import Close, Recovery

__all__ = ["Service", "ServiceStats", "LATENCY_BUCKETS", "ActionError", "ACTIONS"]

log = logging.getLogger("streamwatch.service")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_COALESCE_MAX = 200_000        # samples processed in one pipeline call at most
_PENDING_MAX = 200_000         # events kept for the store while it cannot be written
_RETRY_MAX_S = 30.0            # longest wait between store write attempts
ACTIONS = ("ack", "resolve", "note")


class ActionError(Exception):
    """An operator action refused: `status` is the HTTP answer (404, 409, 503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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
    store_commits: int = 0                                          # transactions written
    store_errors: int = 0                                           # failed store writes
    store_dropped: int = 0                  # events never stored (store down too long)
    silenced_events: int = 0                # events published flagged "silenced" (not paged)


Subscriber = Callable[[list[LoggedEvent]], None]


@dataclass(slots=True)
class _Item:
    """One queue entry: a batch of samples, or a manual resolve to apply in its place."""
    batch: Batch | None
    accepted_at: float
    done: asyncio.Future[Any] | None = None     # the pusher waits: True once durable
    close: tuple[str, str] | None = None        # (incident id, by)
    entry: dict[str, Any] | None = None         # its timeline entry


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
                             future_skew_s=ing.future_skew, max_streams=ing.max_streams)
        self.max_queued = srv.queue_max_samples
        self.log = EventLog(config.service.feed.replay_buffer)
        self.incidents = IncidentIndex()
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
            await self.checkpointer.checkpoint(self.pipeline)
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
        self._queue.put_nowait(_Item(Batch.empty(), time.perf_counter(), done))
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
                    await self._log_and_process(run)
                    run = []
                if it is not None:
                    await self._apply_close(it)
            if run:
                await self._log_and_process(run)
            c = self.checkpointer
            if c is not None and c.due(self.store is not None and not self.store_pending):
                await c.checkpoint(self.pipeline)
            if items[-1] is None:
                return
            await asyncio.sleep(0)            # let the loop serve requests between batches

    async def _log_and_process(self, run: list[_Item]) -> None:
        """Journal the run (its pushers are answered now), then detect."""
        batches = [it.batch for it in run if it.batch is not None and len(it.batch)]
        durable = True
        if self.checkpointer is not None and batches:
            durable = await self.checkpointer.log(batches)
        for it in run:
            if it.done is not None and not it.done.done():
                it.done.set_result(durable)
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

    # -- durability -------------------------------------------------------------------------
    def _open_journal(self) -> Recovery | None:
        """The journal under the data dir (none for an in-memory service) and what it holds."""
        st = self.config.service.storage
        if self.data_dir is None or not st.journal:
            return None
        try:
            self.checkpointer = Checkpointer(self.data_dir, self.config,
                                             interval=st.checkpoint_interval)
            return self.checkpointer.recover()
        except (StoreError, OSError) as exc:
            self.checkpointer = None
            log.error("journal unavailable: pushes are acknowledged when queued, not stored",
                      extra={"error": str(exc)})
            return None

    def _replay_journal(self, rec: Recovery) -> None:
        """Resume from the checkpoint and replay what was logged after it. Events the store
        already has (ids up to its counter) were published before the crash: not again."""
        self.pipeline = rec.state
        self.parser = self.pipeline.parser
        stored = self.store.counters().event_seq if self.store is not None else 0
        samples = 0
        for _, entry in rec.entries:
            if isinstance(entry, Close):
                ev = self.pipeline.incidents.close(entry.incident_id, entry.ts, entry.by)
                events = [ev] if ev is not None else []
            else:
                samples += len(entry)
                events = self.pipeline.process(entry)
            self._recovered += [e for e in events if int(e.id) > stored]
        if self.checkpointer is not None:
            self.checkpointer.replayed_samples = samples
        log.info("journal replayed", extra={"entries": len(rec.entries), "samples": samples,
                                            "new_events": len(self._recovered),
                                            "torn_bytes": rec.torn_bytes})

    def _open_store(self, restore_manager: bool = True) -> None:
        try:
            if self.store is None:
                self.store = open_store(self.data_dir)
            self._restore(self.store, restore_manager)
            self.silences.attach(self.store)
        except StoreError as exc:
            self.store_error = str(exc)
            if self.store is not None:
                self.store.close()
                self.store = None
            log.error("store unavailable: running WITHOUT durable state (incidents, acks and "
                      "the alert feed's resume position will not survive a restart)",
                      extra={"error": str(exc)})

    def _restore(self, store: Store, restore_manager: bool = True) -> None:
        """Rebuild the event log and incident index from the store; and the incident manager's
        open incidents, unless a journal checkpoint holds the manager (it is then exact)."""
        counters = store.counters()
        records = store.load_recent_incidents(self.incidents.keep_resolved)
        self.incidents.restore([r.doc for r in records])
        reopened = []
        for r in records:
            last = (r.state or {}).get("last_event")
            if r.status != "resolved" and r.key and last:
                d = r.doc
                reopened.append(OpenIncident(r.id, r.stream, r.key, d["type"], int(d["level"]),
                                             d["team"], float(d["started_at"]), None,
                                             last_event=AlertEvent.model_validate(last)))
        if restore_manager:
            self.pipeline.incidents.restore(reopened, counters.event_seq,
                                            counters.incident_seq)
        events = store.load_recent_events(self.log.capacity)
        self.log.append([AlertEvent.model_validate(e) for e in events],
                        {e["id"]: {"silenced": True} for e in events if e.get("silenced")})
        self.log.dropped += max(0, store.count_events() - len(events))
        log.info("state restored", extra={"store": store.path, "events": len(events),
                                          "incidents": len(records),
                                          "open_incidents": len(reopened),
                                          "event_seq": counters.event_seq})

    def _stage(self, logged: list[LoggedEvent]) -> None:
        if self.store is None:
            return
        self._pending_events.extend(item.data for item in logged)
        self._dirty.update(item.data["incident_id"] for item in logged)
        over = len(self._pending_events) - _PENDING_MAX
        if over > 0:
            del self._pending_events[:over]
            self.stats.store_dropped += over

    @property
    def store_pending(self) -> int:
        """Events and actions waiting to be stored."""
        return len(self._pending_events) + len(self._pending_actions)

    def _flush(self, *, force: bool = False) -> bool:
        """Write whatever is pending in one transaction; True when nothing is left pending.
        On failure keep it all and back off (unless `force`: an operator is waiting)."""
        if self.store is None:
            return False
        if not (self._pending_events or self._pending_actions or self._dirty):
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        by_id = {inc.id: inc for inc in self.pipeline.incidents.open.values()}
        records = [r for r in (self._record(i, by_id) for i in sorted(self._dirty)) if r]
        seq = self.pipeline.incidents.counters
        try:
            self.store.append_events(self._pending_events, records, Counters(*seq),
                                     self._pending_actions)
        except StoreError as exc:
            self.stats.store_errors += 1
            self._backoff = min(_RETRY_MAX_S, max(0.5, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            if self.store_error != str(exc) or self._backoff >= _RETRY_MAX_S:
                log.error("store write failed; kept in memory, will retry",
                          extra={"error": str(exc), "pending": self.store_pending,
                                 "retry_in_s": self._backoff})
            self.store_error = str(exc)
            return False
        if self.store_error is not None:
            log.info("store writable again", extra={"written": self.store_pending})
        self._pending_events, self._pending_actions = [], []
        self._dirty.clear()
        self._backoff, self.store_error = 0.0, None
        self.stats.store_commits += 1
        return True

    def _record(self, incident_id: str, open_by_id: dict[str, OpenIncident]
                ) -> IncidentRecord | None:
        doc = self.incidents.get(incident_id)
        if doc is None:
            return None
        inc = open_by_id.get(incident_id)
        state = ({"last_event": inc.last_event.model_dump()}
                 if inc is not None and inc.last_event is not None else None)
        return IncidentRecord(incident_id, doc["status"], doc["stream"],
                              inc.key if inc is not None else None, doc, state)

    async def _tick(self, every: float) -> None:
        """Wake an idle consumer now and then so a due checkpoint is taken without new input
        (the consumer is the journal's only writer: it checkpoints between runs)."""
        while True:
            await asyncio.sleep(every)
            if self._queue.empty():
                self._queue.put_nowait(_Item(Batch.empty(), time.perf_counter()))

    async def _retry_writes(self) -> None:
        """Flush what a failed write left behind even when no new events come."""
        while True:
            await asyncio.sleep(1.0)
            if self._pending_events or self._pending_actions or self._dirty:
                self._flush()

    # -- operator actions -------------------------------------------------------------------
    async def act(self, incident_id: str, action: str, by: str, note: str | None = None,
                  *, false_alarm: bool | None = None) -> dict[str, Any]:
        """Ack, resolve (manually) or annotate an incident, stored before returning; the
        incident as it is now. ActionError: 404 unknown id, 409 resolving a resolved incident,
        503 the action could not be stored. Acking a resolved incident is recorded (a late ack
        is still a response the review should see). A resolve is applied by the consumer in
        its place among the queued batches (and journaled there): it changes detection state."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        doc = self.incidents.get(incident_id)
        if doc is None:
            raise ActionError(404, f"incident {incident_id!r} not found (unknown, or resolved "
                                   "long enough ago to be evicted)")
        if action == "resolve" and doc["status"] == "resolved":
            raise ActionError(409, f"incident {incident_id} is already resolved (at "
                                   f"{doc['resolved_at']})")
        if self.store is None or not self._flush(force=True):
            raise ActionError(503, f"{action} not recorded: the store is unavailable "
                                   f"({self.store_error}); try again")
        entry: dict[str, Any] = {"ts": round(self.clock(), 3), "action": action, "by": by}
        if note is not None:
            entry["note"] = note
        if false_alarm is not None:
            entry["false_alarm"] = false_alarm
        new = self.incidents.preview(incident_id, entry)
        assert new is not None
        if action != "resolve":
            by_id = {inc.id: inc for inc in self.pipeline.incidents.open.values()}
            record = self._record(incident_id, by_id)
            assert record is not None
            record = IncidentRecord(record.id, new["status"], record.stream, record.key, new,
                                    record.state)
            try:
                self.store.record_action(incident_id, entry, record)
            except StoreError as exc:
                self.stats.store_errors += 1
                self.store_error = str(exc)
                raise ActionError(503, f"{action} not recorded: {exc}; try again") from None
            self.incidents.put(new)
            return new
        done: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(None, time.perf_counter(), done, (incident_id, by),
                                     entry))
        stored = await done
        if stored is None:
            now = self.incidents.get(incident_id) or {}
            raise ActionError(409, f"incident {incident_id} was resolved meanwhile (at "
                                   f"{now.get('resolved_at')})")
        if not stored:
            raise ActionError(503, f"resolved, but not stored durably yet ({self.store_error});"
                                   " it will be retried")
        return self.incidents.get(incident_id) or new

    async def _apply_close(self, it: _Item) -> None:
        """A manual resolve, at its place in the queue: journal, close, publish, store."""
        assert it.close is not None and it.done is not None and it.entry is not None
        incident_id, by = it.close
        doc = self.incidents.get(incident_id)
        if doc is None or doc["status"] == "resolved":
            it.done.set_result(None)
            return
        new = self.incidents.preview(incident_id, it.entry)
        assert new is not None
        ts = self._event_time(new)
        if self.checkpointer is not None and self.pipeline.incidents.find(incident_id):
            await self.checkpointer.log_close(incident_id, ts, by)   # failing: detect anyway
        self.incidents.put(new)
        self._pending_actions.append((incident_id, it.entry))
        self._dirty.add(incident_id)
        event = self.pipeline.incidents.close(incident_id, ts, by)
        if event is not None:
            stored = self._publish([event], force=True)
        else:                          # not open in the manager: close the record alone
            self.incidents.put({**new, "status": "resolved", "resolved_at": it.entry["ts"]})
            stored = self._flush(force=True)
        it.done.set_result(stored)

    def annotate(self, incident_id: str, entry: dict[str, Any]) -> None:
        """A timeline entry made by streamwatch itself (an escalation): indexed now, stored
        with the next write when the store fails now (never refused: nobody is waiting)."""
        new = self.incidents.preview(incident_id, entry)
        if new is None:
            return
        self.incidents.put(new)
        if self.store is None:
            return
        self._pending_actions.append((incident_id, entry))
        self._dirty.add(incident_id)
        self._flush()

    def _event_time(self, incident: dict[str, Any]) -> float:
        """Event time for a manual resolve: the newest sample seen for the stream (alert `ts`
        is event time, CONTRACTS §3), else the incident's last event time."""
        t = self.pipeline.table
        sid = t.stream_ids.get(incident["stream"])
        if sid is not None and sid < len(t.stream_newest):
            newest = float(t.stream_newest[sid])
            if np.isfinite(newest):
                return newest
        return max([float(e["ts"]) for e in incident["timeline"] if "event_id" in e]
                   or [float(incident["started_at"])])

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
