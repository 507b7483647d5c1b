"""IncidentIndex: what the REST API and the feed's snapshot say about incidents.

Built from the alert events alone (the same events every output sees), so it never disagrees
with the feed: an incident is open from its first firing event to its resolved event, carries its
current level and a timeline of every change. Operator actions (ack, manual resolve, note) add
timeline entries `{"ts", "action", "by", "note"?}`, `ts` being the wall clock of the action (event
entries carry event time). `preview` computes an action's result without applying it, so the
service can store it durably first and `put` it afterwards. After a restart the service hands
back the stored records with `restore`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

__all__ = ["IncidentIndex"]


class IncidentIndex:
    def __init__(self, keep_resolved: int = 5000) -> None:
        self.keep_resolved = keep_resolved
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._resolved = 0

    def apply(self, event: dict[str, Any]) -> None:
        iid = event["incident_id"]
        inc = self._items.get(iid)
        if inc is None:
            inc = self._items[iid] = {
                "id": iid, "status": "open", "type": event["incident_type"],
                "stream": event["stream"], "team": event["team"], "level": event["level"],
                "started_at": event["ts"], "acked_at": None, "acked_by": None,
                "resolved_at": None, "summary": event["summary"], "runbook": event["runbook"],
                "impact": event.get("impact"), "last_event_id": event["id"],
                "anomaly_started_at": event.get("anomaly_started_at"), "timeline": []}
        inc["timeline"].append({"ts": event["ts"], "action": event["status"],
                                "level": event["level"], "event_id": event["id"],
                                "summary": event["summary"]})
        inc["last_event_id"] = event["id"]
        if event["status"] == "resolved":
            if inc["status"] != "resolved":
                self._resolved += 1
            inc["status"] = "resolved"
            inc["resolved_at"] = event["ts"]
            self._evict()
        else:
            inc.update(level=event["level"], type=event["incident_type"], team=event["team"],
                       summary=event["summary"], impact=event.get("impact"))

    def _evict(self) -> None:
        while self._resolved > self.keep_resolved:
            for iid, inc in self._items.items():
                if inc["status"] == "resolved":
                    del self._items[iid]
                    self._resolved -= 1
                    break

    def preview(self, incident_id: str, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The incident as it would be after the operator action `entry` (a copy), or None for
        an unknown id. The first ack sets `acked_at`/`acked_by` (and status `acked` while not
        resolved); later ones, and notes, only add to the timeline."""
        inc = self._items.get(incident_id)
        if inc is None:
            return None
        out = {**inc, "timeline": [*inc["timeline"], entry]}
        if isinstance(entry.get("false_alarm"), bool):
            out["false_alarm"] = entry["false_alarm"]
        if entry["action"] == "ack" and out["acked_at"] is None:
            out["acked_at"], out["acked_by"] = entry["ts"], entry.get("by")
            if out["status"] == "open":
                out["status"] = "acked"
        return out

    def put(self, record: dict[str, Any]) -> None:
        """Replace (or add) an incident record as it is: from `preview`, or restored."""
        old = self._items.get(record["id"])
        was = old is not None and old["status"] == "resolved"
        self._items[record["id"]] = record
        self._resolved += (record["status"] == "resolved") - was
        self._evict()

    def restore(self, records: list[dict[str, Any]]) -> None:
        """Stored incidents, oldest first (before any event is applied)."""
        for rec in records:
            self.put(rec)

    def get(self, incident_id: str) -> dict[str, Any] | None:
        return self._items.get(incident_id)

    def query(self, *, status: str | None = None, team: str | None = None,
              min_level: int | None = None, stream: str | None = None) -> list[dict[str, Any]]:
        """Newest first; `min_level=N` keeps levels 1..N (CONTRACTS §5)."""
        out = []
        for inc in reversed(self._items.values()):
            if status and inc["status"] != status:
                continue
            if team and inc["team"] != team:
                continue
            if min_level is not None and inc["level"] > min_level:
                continue
            if stream and inc["stream"] != stream:
                continue
            out.append(inc)
        return out

    def open(self) -> list[dict[str, Any]]:
        """Every incident not resolved yet (status `open` or `acked`)."""
        return [i for i in self._items.values() if i["status"] != "resolved"]
