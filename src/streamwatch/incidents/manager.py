"""IncidentManager: open, regrade and resolve incidents; every change becomes an AlertEvent.

One incident per stream and incident type (normal events and unexplained anomalies: per kind).
It fires when its finding first appears, fires again only when its level changes (the ops room is
told when a grade moves, not every time a number wobbles), and resolves when the finding is gone.
Ids are counters, so a replay of the same input yields the same ids: event ids are zero-padded and
sort as strings in emission order (the feed and webhooks resume from them).

The live service persists the counters and the open incidents (store/) and hands them back with
`restore` after a restart, so ids continue and a finding that is still there maps to the same
incident. A restored incident has no `Graded` (the detectors start afresh): until it is graded
again, its events are built from the last event it emitted (`last_event`). An operator can
`close` (manually resolve) an incident; the same finding then stays quiet until it clears or
grows more severe, so the ops room is not paged again for what someone just closed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from streamwatch.assess.correlate import Graded
from streamwatch.assess.signatures import RUNBOOK
from streamwatch.events import AlertEvent, ImpactModel
from streamwatch.incidents.summary import summarise
from streamwatch.types import IncidentType

__all__ = ["IncidentManager", "OpenIncident"]


@dataclass(slots=True)
class OpenIncident:
    id: str
    stream: str
    key: str
    type: str
    level: int
    team: str
    started_at: float
    last: Graded | None                      # None: restored, not graded since the restart
    history: list[str] = field(default_factory=list)
    last_event: AlertEvent | None = None     # the newest event it emitted
    anomaly_started_at: float | None = None  # earliest signal `since` when it first fired


def _num(v: float) -> float | None:
    return None if v != v or v in (float("inf"), float("-inf")) else round(v, 6)


class IncidentManager:
    def __init__(self) -> None:
        self.open: dict[tuple[str, str], OpenIncident] = {}
        self._event_seq = 0
        self._incident_seq = 0
        # manually resolved findings still present: (stream, key) -> level when closed
        self.closed: dict[tuple[str, str], int] = {}

    @property
    def counters(self) -> tuple[int, int]:
        """(event_seq, incident_seq): what a restart must continue from."""
        return self._event_seq, self._incident_seq

    def restore(self, incidents: list[OpenIncident], event_seq: int, incident_seq: int) -> None:
        """Take back the open incidents and counters saved before a restart."""
        self._event_seq = max(self._event_seq, event_seq)
        self._incident_seq = max(self._incident_seq, incident_seq)
        for inc in incidents:
            if inc.anomaly_started_at is None and inc.last_event is not None:
                inc.anomaly_started_at = inc.last_event.anomaly_started_at
            self.open[(inc.stream, inc.key)] = inc

    def find(self, incident_id: str) -> OpenIncident | None:
        for inc in self.open.values():
            if inc.id == incident_id:
                return inc
        return None

    def close(self, incident_id: str, ts: float, by: str) -> AlertEvent | None:
        """Manual resolve: the incident's resolved event, or None if it is not open here."""
        inc = self.find(incident_id)
        if inc is None:
            return None
        del self.open[(inc.stream, inc.key)]
        self.closed[(inc.stream, inc.key)] = inc.level
        return self._event(inc, inc.last, ts, "resolved", f" (resolved by {by})")

    def open_for(self, stream: str) -> list[OpenIncident]:
        return [inc for (s, _), inc in self.open.items() if s == stream]

    def reconcile(self, stream: str, ts: float, graded: list[Graded]) -> list[AlertEvent]:
        """Bring the stream's open incidents in line with what it looks like now."""
        events: list[AlertEvent] = []
        now = {g.key: g for g in graded}
        if self.closed:
            for s, key in [k for k in self.closed if k[0] == stream]:
                g = now.get(key)
                if g is None or int(g.level) < self.closed[(s, key)]:
                    del self.closed[(s, key)]       # cleared, or graver: a new incident
                else:
                    del now[key]                    # still there: stays closed, quietly
        for (s, key), inc in list(self.open.items()):
            if s == stream and key not in now:
                del self.open[(s, key)]
                events.append(self._event(inc, inc.last, ts, "resolved"))
        for key, g in now.items():
            inc = self.open.get((stream, key))
            if inc is None:
                self._incident_seq += 1
                inc = OpenIncident(f"inc-{self._incident_seq:08d}", stream, key,
                                   str(g.finding.type), int(g.level), str(g.team), ts, g)
                if g.finding.signals:
                    inc.anomaly_started_at = round(min(s.since for s in g.finding.signals), 3)
                self.open[(stream, key)] = inc
                events.append(self._event(inc, g, ts, "firing"))
            elif int(g.level) != inc.level:
                inc.level = int(g.level)
                inc.last = g
                events.append(self._event(inc, g, ts, "firing"))
            else:
                inc.last = g
        return events

    def resolve_stream(self, stream: str, ts: float) -> list[AlertEvent]:
        return self.reconcile(stream, ts, [])

    def _event(self, inc: OpenIncident, g: Graded | None, ts: float, status: str,
               note: str = "") -> AlertEvent:
        self._event_seq += 1
        if g is None:
            return self._from_last(inc, ts, status, note)
        p = g.finding.primary
        ftype = g.finding.type
        impact = g.impact
        # built from our own validated state: construct without re-validating (hot-ish path)
        ev = AlertEvent.model_construct(
            id=f"{self._event_seq:012d}", ts=round(ts, 3), stream=inc.stream, metric=p.metric,
            level=inc.level, team=inc.team, status=status, incident_id=inc.id,  # type: ignore[arg-type]
            incident_type=str(ftype), kind=g.finding.kind, score=round(p.score, 6),
            observed=_num(p.observed), expected=_num(p.expected),
            summary=summarise(inc.stream, g, ts) + (note or (" (resolved)" if status == "resolved"
                                                           else "")),
            runbook=RUNBOOK.get(IncidentType(ftype)),
            impact=ImpactModel.model_construct(viewers=round(impact.viewers, 1),
                               gmv_per_min=round(impact.gmv_per_min, 2)),
            anomaly_started_at=inc.anomaly_started_at)
        inc.last_event = ev
        return ev

    def _from_last(self, inc: OpenIncident, ts: float, status: str, note: str) -> AlertEvent:
        """An event of a restored incident not graded since: its last event, moved on."""
        last = inc.last_event
        if last is None:
            raise ValueError(f"incident {inc.id} has neither a grading nor a last event")
        summary = last.summary.removesuffix(" (resolved)")
        ev = last.model_copy(update=dict(
            id=f"{self._event_seq:012d}", ts=round(ts, 3), level=inc.level, status=status,
            summary=summary + (note or (" (resolved)" if status == "resolved" else ""))))
        inc.last_event = ev
        return ev
