"""The storage interface the service writes through, and the records it exchanges.

Kept small on purpose so another backend (PostgreSQL) is one class: everything is a JSON-able
dict plus the few columns a backend must query on (status, stream, key). Every write method is
one transaction: after it returns, what it was given survives a crash (kill -9) of the process.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streamwatch.exceptions import StreamwatchError

__all__ = ["Store", "StoreError", "IncidentRecord", "Counters"]


class StoreError(StreamwatchError):
    """The store cannot be opened, read or written; the message names the file and the cause."""


@dataclass(frozen=True, slots=True)
class Counters:
    """The incident manager's sequence numbers, so ids continue after a restart."""
    event_seq: int = 0
    incident_seq: int = 0


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """One incident as stored.

    `doc` is the incident as the API shows it (IncidentIndex's record, with its timeline);
    `key` and `state` are the IncidentManager's view while the incident is open - its
    (stream, key) identity and the last alert event it emitted - so a finding that persists
    across a restart maps to the same incident; `state` is None once it is resolved.
    """
    id: str
    status: str
    stream: str
    key: str | None
    doc: dict[str, Any]
    state: dict[str, Any] | None = None


class Store(Protocol):
    """What the service needs from durable storage (see module notes)."""

    path: str

    def append_events(self, events: Sequence[dict[str, Any]],
                      incidents: Sequence[IncidentRecord] = (),
                      counters: Counters | None = None,
                      actions: Sequence[tuple[str, dict[str, Any]]] = ()) -> None:
        """Alert events, the incidents they touched, operator actions (incident id, timeline
        entry) and the counters, in one transaction. Re-writing an event or incident that is
        already stored replaces it (a retried batch is idempotent)."""

    def record_action(self, incident_id: str, entry: dict[str, Any],
                      incident: IncidentRecord) -> None:
        """One operator action (ack, note...) with the incident as it is after it."""

    def save_incident(self, incident: IncidentRecord) -> None: ...

    def load_recent_events(self, n: int) -> list[dict[str, Any]]:
        """The newest `n` events, oldest first."""

    def count_events(self) -> int: ...

    def load_open_incidents(self) -> list[IncidentRecord]:
        """Every incident not resolved, oldest first."""

    def load_recent_incidents(self, resolved: int) -> list[IncidentRecord]:
        """Every unresolved incident plus the newest `resolved` resolved ones, oldest first."""

    def load_actions(self, incident_id: str) -> list[dict[str, Any]]: ...

    def load_incidents_started(self, start: float, end: float) -> list[IncidentRecord]:
        """Every incident whose `started_at` (event time) is in [start, end), oldest first
        (the response-speed review, incidents/review.py)."""

    def counters(self) -> Counters: ...

    # webhooks (notify/webhook.py): subscriptions, pending deliveries, dead letters
    def save_webhook(self, doc: dict[str, Any]) -> None: ...

    def delete_webhook(self, webhook_id: str) -> None: ...

    def update_deliveries(self, pending: Sequence[tuple[str, str, dict[str, Any]]] = (),
                          done: Sequence[str] = (),
                          dead: Sequence[tuple[str, str, dict[str, Any]]] = ()) -> None: ...

    def load_webhooks(self) -> list[dict[str, Any]]: ...

    def load_deliveries(self, dead: bool, limit: int = -1
                        ) -> list[tuple[str, str, dict[str, Any]]]: ...

    # silences (incidents/silence.py): kept, expired ones too (the record of who silenced what)
    def save_silence(self, doc: dict[str, Any]) -> None:
        """Insert or replace one silence (by its `id`)."""

    def load_silences(self) -> list[dict[str, Any]]: ...

    # escalation timers (incidents/escalate.py), one row per incident still being watched
    def save_escalation(self, doc: dict[str, Any]) -> None: ...

    def delete_escalation(self, incident_id: str) -> None: ...

    def load_escalations(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...
