"""Operator actions on incidents: ack, resolve (manually), note - stored before answered.

A mixin of Service (service/core.py). A resolve changes detection state (the incident manager's
open incidents, an event id), so it is not applied here but queued: the consumer applies it in
its place among the batches and journals it there, which keeps a crash replay exact.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import numpy as np

from streamwatch.checkpoint import answer_when
from streamwatch.store import IncidentRecord, StoreError

if TYPE_CHECKING:
    from streamwatch.service.core import _Item

__all__ = ["OperatorActions", "ActionError", "ACTIONS"]

ACTIONS = ("ack", "resolve", "note")


class ActionError(Exception):
    """An operator action refused: `status` is the HTTP answer (404, 409, 503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OperatorActions:
    """Operator actions for Service (which provides the attributes used here)."""

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
        self._queue_close(incident_id, by, entry, done)
        stored = await done
        if stored is None:
            now = self.incidents.get(incident_id) or {}
            raise ActionError(409, f"incident {incident_id} was resolved meanwhile (at "
                                   f"{now.get('resolved_at')})")
        if not stored:
            raise ActionError(503, f"resolved, but not stored durably yet ({self.store_error});"
                                   " it will be retried")
        return self.incidents.get(incident_id) or new

    def _apply_close(self, it: _Item) -> None:
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
        durable = None
        if self.checkpointer is not None and self.pipeline.incidents.find(incident_id):
            durable = self.checkpointer.durable(      # failing: resolved all the same
                self.checkpointer.log_close(incident_id, ts, by))
        self.incidents.put(new)
        self._pending_actions.append((incident_id, it.entry))
        self._dirty.add(incident_id)
        event = self.pipeline.incidents.close(incident_id, ts, by)
        if event is not None:
            stored = self._publish([event], force=True)
        else:                          # not open in the manager: close the record alone
            self.incidents.put({**new, "status": "resolved", "resolved_at": it.entry["ts"]})
            stored = self._flush(force=True)
        if durable is None:
            it.done.set_result(stored)
        else:                                   # the operator is answered after the fsync
            answer_when(durable, it.done, stored)

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
