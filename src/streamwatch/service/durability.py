"""The service's durable state: the store (incidents, events, actions) and the sample journal.

A mixin of Service (service/core.py), kept apart so that the queue-and-consumer core reads in one
sitting. Every batch of alert events is written to the store - with the incidents it touched and
the manager's counters, in one transaction - before subscribers see it; when the store cannot be
written, what it could not take is kept and retried with back-off. On start, the store gives back
the event log, the incident index and the manager's counters, and the journal (store/journal.py,
checkpoint.py) the detectors' state and the samples accepted after its last checkpoint, which are
replayed (events the store already had are not published twice).
"""
from __future__ import annotations

import asyncio
import logging
import time

from streamwatch.checkpoint import Checkpointer
from streamwatch.events import AlertEvent
from streamwatch.incidents.manager import OpenIncident
from streamwatch.notify.log import LoggedEvent
from streamwatch.store import Counters, IncidentRecord, Store, StoreError, open_store
from streamwatch.store.journal import Close, Recovery

__all__ = ["Durability"]

log = logging.getLogger("streamwatch.service")

_PENDING_MAX = 200_000         # events kept for the store while it cannot be written
_RETRY_MAX_S = 30.0            # longest wait between store write attempts


class Durability:
    """Store and journal handling for Service (which provides the attributes used here)."""

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
        if self.store is not None:             # never reuse an id the store holds: after a
            c = self.store.counters()          # power loss the journal's unsynced tail (never
            self.pipeline.incidents.restore([], c.event_seq, c.incident_seq)  # answered) may
                                               # be gone while events made from it were stored
        if self.checkpointer is not None:
            self.checkpointer.replayed_samples = samples
        log.info("journal replayed", extra={"entries": len(rec.entries), "samples": samples,
                                            "new_events": len(self._recovered),
                                            "torn_bytes": rec.torn_bytes})

    def _open_store(self, restore_manager: bool = True) -> None:
        try:
            if self.store is None:              # with a journal, events are recomputable:
                self.store = open_store(self.data_dir,  # not fsync'ed one by one (sqlite.py)
                                        synchronous="FULL" if self.checkpointer is None
                                        else "NORMAL")
            if self.checkpointer is not None:
                self.checkpointer.before_checkpoint = self.store.sync_files
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
        t0 = time.perf_counter()
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
        self.stats.store_commit_seconds.observe(time.perf_counter() - t0)
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

    async def _retry_writes(self) -> None:
        """Flush what a failed write left behind even when no new events come."""
        while True:
            await asyncio.sleep(1.0)
            if self._pending_events or self._pending_actions or self._dirty:
                self._flush()
