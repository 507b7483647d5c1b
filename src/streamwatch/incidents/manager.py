"""IncidentManager: open, regrade and resolve incidents; every change becomes an AlertEvent.

One incident per stream and incident type (normal events and unexplained anomalies: per kind).
It fires when its finding first appears, fires again only when its level changes (the ops room is
told when a grade moves, not every time a number wobbles), and resolves when the finding is gone.
Ids are counters, so a replay of the same input yields the same ids: event ids are zero-padded and
sort as strings in emission order (the feed and webhooks resume from them).
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
    last: Graded
    history: list[str] = field(default_factory=list)


def _num(v: float) -> float | None:
    return None if v != v or v in (float("inf"), float("-inf")) else round(v, 6)


class IncidentManager:
    def __init__(self) -> None:
        self.open: dict[tuple[str, str], OpenIncident] = {}
        self._event_seq = 0
        self._incident_seq = 0

    def open_for(self, stream: str) -> list[OpenIncident]:
        return [inc for (s, _), inc in self.open.items() if s == stream]

    def reconcile(self, stream: str, ts: float, graded: list[Graded]) -> list[AlertEvent]:
        """Bring the stream's open incidents in line with what it looks like now."""
        events: list[AlertEvent] = []
        now = {g.key: g for g in graded}
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

    def _event(self, inc: OpenIncident, g: Graded, ts: float, status: str) -> AlertEvent:
        self._event_seq += 1
        p = g.finding.primary
        ftype = g.finding.type
        impact = g.impact
        # built from our own validated state: construct without re-validating (hot-ish path)
        return AlertEvent.model_construct(
            id=f"{self._event_seq:012d}", ts=round(ts, 3), stream=inc.stream, metric=p.metric,
            level=inc.level, team=inc.team, status=status, incident_id=inc.id,  # type: ignore[arg-type]
            incident_type=str(ftype), kind=g.finding.kind, score=round(p.score, 6),
            observed=_num(p.observed), expected=_num(p.expected),
            summary=summarise(inc.stream, g, ts) + (" (resolved)" if status == "resolved" else ""),
            runbook=RUNBOOK.get(IncidentType(ftype)),
            impact=ImpactModel.model_construct(viewers=round(impact.viewers, 1),
                               gmv_per_min=round(impact.gmv_per_min, 2)))
