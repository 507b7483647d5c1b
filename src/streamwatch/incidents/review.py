"""The response-speed review: how fast incidents were detected, acknowledged and resolved, per
team and per level, over incident records (the API's / the store's incident docs).

Pure computation - no I/O - so the HTTP route, the CLI and the tests share one definition.

Definitions (all in seconds):
- Which incidents: those whose `started_at` (event time of the first firing event) lies in
  [from, to). Grouped by team and by the most severe level the incident reached (the smallest
  `level` of its firing timeline entries; the record's `level` if it has none): response speed is
  judged against the worst the incident got, which is what paging policy targets.
- time to detect = `started_at` - `anomaly_started_at`. `anomaly_started_at` is when the anomaly
  began in event time: the earliest `since` of the signals the incident first fired on (the
  correlator dates a signal from the start of the debounce window that confirmed it). Incidents
  stored before this field existed have none and are left out of this statistic (its `n` says
  how many counted).
- time to acknowledge = first ack (`acked_at`, the WALL CLOCK of the operator's action) -
  `started_at` (EVENT TIME). How the two clocks are reconciled: they are not converted; in the
  live service samples arrive within seconds of their event time, so event time ~ wall time and
  the difference is the operator's delay to within the ingest lag. For replayed or backfilled
  data the clocks diverge; a negative difference (an ack "before" the incident) is certainly
  such a case and is left out, counted in `clock_skipped`. A late ack of an already resolved
  incident still counts (it is a response, just a slow one). Unacked incidents are left out.
- time to resolve = `resolved_at` - `started_at`, both event time (a manual resolve's event
  carries the stream's newest event time). Open incidents are left out.
- Statistics: `n`, `median` and `p90` with linear interpolation between closest ranks (numpy's
  default, Excel's PERCENTILE.INC); null when `n` is 0.
- escalations: timeline entries `"action": "escalated"` (incidents/escalate.py writes one per
  step notified, level 1's immediate command-center notice included); `escalated` counts the
  incidents that had at least one.
- false alarms: incidents an operator marked as one, with `"false_alarm": true` on `/ack`,
  `/note` or `/resolve` (a timeline entry carrying it), or by a note containing one of the tags
  `#false-alarm`, `#false_alarm`, `#误报` (case-insensitive). They stay in the timing
  statistics: they still cost a response.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["review", "percentile", "summary", "is_false_alarm", "incident_level",
           "parse_time", "window", "BadBound", "table_rows", "TABLE_HEADER",
           "FALSE_ALARM_TAGS", "TEAMS", "DEFAULT_SPAN_S"]

DEFAULT_SPAN_S = 24 * 3600.0

FALSE_ALARM_TAGS = ("#false-alarm", "#false_alarm", "#误报")
TEAMS = ("live_ops", "tech", "customer_service", "logistics", "command")


def percentile(sorted_xs: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks over an ascending list; None if empty."""
    if not sorted_xs:
        return None
    pos = q * (len(sorted_xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def summary(xs: Iterable[float]) -> dict[str, Any]:
    """`{"n", "median", "p90"}` of durations in seconds (rounded to ms)."""
    s = sorted(xs)
    med, p90 = percentile(s, 0.5), percentile(s, 0.9)
    return {"n": len(s), "median": None if med is None else round(med, 3),
            "p90": None if p90 is None else round(p90, 3)}


def is_false_alarm(incident: dict[str, Any]) -> bool:
    """The last explicit `false_alarm` mark wins (an operator may take it back); without one,
    a tagged note marks it."""
    tagged = False
    for e in reversed(incident.get("timeline") or ()):
        if isinstance(e.get("false_alarm"), bool):
            return bool(e["false_alarm"])
        note = e.get("note")
        tagged = tagged or (isinstance(note, str)
                            and any(t in note.lower() for t in FALSE_ALARM_TAGS))
    return tagged


def incident_level(incident: dict[str, Any]) -> int:
    levels = [int(e["level"]) for e in incident.get("timeline") or ()
              if e.get("action") == "firing" and isinstance(e.get("level"), int)]
    return min(levels) if levels else int(incident["level"])


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass
class _Group:
    incidents: int = 0
    open: int = 0
    acked: int = 0
    resolved: int = 0
    false_alarms: int = 0
    escalations: int = 0
    escalated: int = 0
    clock_skipped: int = 0
    detect: list[float] = field(default_factory=list)
    ack: list[float] = field(default_factory=list)
    resolve: list[float] = field(default_factory=list)

    def add(self, inc: dict[str, Any]) -> None:
        self.incidents += 1
        status = inc.get("status")
        if status in ("open", "acked", "resolved"):
            setattr(self, str(status), getattr(self, str(status)) + 1)
        self.false_alarms += is_false_alarm(inc)
        steps = sum(1 for e in inc.get("timeline", ()) if e.get("action") == "escalated")
        self.escalations += steps
        self.escalated += steps > 0
        started = float(inc["started_at"])
        anomaly = _num(inc.get("anomaly_started_at"))
        if anomaly is not None:
            self.detect.append(max(0.0, started - anomaly))
        acked = _num(inc.get("acked_at"))
        if acked is not None:
            if acked >= started:
                self.ack.append(acked - started)
            else:
                self.clock_skipped += 1
        resolved = _num(inc.get("resolved_at"))
        if resolved is not None and status == "resolved":
            self.resolve.append(max(0.0, resolved - started))

    def row(self, **key: Any) -> dict[str, Any]:
        return {**key, "incidents": self.incidents, "open": self.open, "acked": self.acked,
                "resolved": self.resolved, "false_alarms": self.false_alarms,
                "escalations": self.escalations, "escalated": self.escalated,
                "time_to_detect_s": summary(self.detect),
                "time_to_ack_s": summary(self.ack), "time_to_resolve_s": summary(self.resolve),
                "clock_skipped": self.clock_skipped}


def review(incidents: Iterable[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """The review of the incidents that started in [start, end): `rows` per (team, level)
    that had any, `teams` per team (level null), `total`; teams in their canonical order."""
    cells: dict[tuple[str, int], _Group] = defaultdict(_Group)
    teams: dict[str, _Group] = defaultdict(_Group)
    total = _Group()
    for inc in incidents:
        if not start <= float(inc["started_at"]) < end:
            continue
        team, level = str(inc["team"]), incident_level(inc)
        for g in (cells[(team, level)], teams[team], total):
            g.add(inc)

    def order(team: str) -> tuple[int, str]:
        return (TEAMS.index(team) if team in TEAMS else len(TEAMS), team)

    return {
        "from": start, "to": end,
        "rows": [cells[k].row(team=k[0], level=k[1])
                 for k in sorted(cells, key=lambda k: (order(k[0]), k[1]))],
        "teams": [teams[t].row(team=t, level=None) for t in sorted(teams, key=order)],
        "total": total.row(team=None, level=None),
        "escalations_tracked": True,
        "notes": {
            "time_to_detect": "first firing event time - anomaly start (earliest signal "
                              "`since`), event time",
            "time_to_ack": "first ack wall clock - first firing event time (event time ~ wall "
                           "time live; negative differences skipped, see clock_skipped)",
            "time_to_resolve": "resolved event time - first firing event time",
            "level": "most severe level the incident reached",
            "escalations": "escalation steps notified (timeline entries 'escalated'); "
                           "escalated = incidents with at least one",
            "false_alarms": "marked by an operator: false_alarm=true on ack/note/resolve, or "
                            "a note containing " + " or ".join(FALSE_ALARM_TAGS),
            "percentiles": "linear interpolation between closest ranks",
        },
    }


class BadBound(ValueError):
    """A `from`/`to` that is not a time; `name` says which."""

    def __init__(self, name: str, value: str | None, message: str) -> None:
        super().__init__(f"{name!r}: {message}")
        self.name, self.value, self.message = name, value, message


def parse_time(text: str) -> float:
    """Unix seconds or RFC 3339 with an offset (a time without one is refused, not guessed);
    ValueError saying why not."""
    try:
        v = float(text)
    except ValueError:
        try:
            d = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"{text[:60]!r} is neither unix seconds nor an RFC 3339 time"
                             ) from None
        if d.tzinfo is None:
            raise ValueError(f"{text[:60]!r} has no UTC offset (add Z or +08:00)") from None
        v = d.timestamp()
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{text[:60]!r} is not a time (finite, not negative)")
    return v


def window(start: str | None, end: str | None, now: float) -> tuple[float, float]:
    """[from, to): default the last 24 h before `now`; either bound alone extends 24 h from
    the other. BadBound naming the parameter."""
    bounds: dict[str, float] = {}
    for name, text in (("from", start), ("to", end)):
        if text is not None:
            try:
                bounds[name] = parse_time(text)
            except ValueError as exc:
                raise BadBound(name, text, str(exc)) from None
    t1 = bounds.get("to", bounds["from"] + DEFAULT_SPAN_S if "from" in bounds else now)
    t0 = bounds.get("from", t1 - DEFAULT_SPAN_S)
    if t0 >= t1:
        raise BadBound("from", start, f"must be before 'to' ({t0} >= {t1})")
    return t0, t1


TABLE_HEADER = ("team", "level", "incidents", "open", "acked", "resolved", "false alarms",
                "escalations", "detect med/p90", "ack med/p90 (n)", "resolve med/p90 (n)")


def _dur(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 120:
        return f"{v:.0f}s"
    if v < 7200:
        return f"{v / 60:.1f}m"
    return f"{v / 3600:.1f}h"


def _pair(d: dict[str, Any], with_n: bool = False) -> str:
    text = f"{_dur(d['median'])} / {_dur(d['p90'])}"
    return f"{text} ({d['n']})" if with_n else text


def table_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """The report as strings for a human table (TABLE_HEADER): per team its levels, then the
    team's total; the overall total last."""
    out: list[tuple[str, ...]] = []

    def line(r: dict[str, Any], team: str, level: str) -> tuple[str, ...]:
        return (team, level, str(r["incidents"]), str(r["open"]), str(r["acked"]),
                str(r["resolved"]), str(r["false_alarms"]), str(r["escalations"]),
                _pair(r["time_to_detect_s"]), _pair(r["time_to_ack_s"], True),
                _pair(r["time_to_resolve_s"], True))

    for t in report["teams"]:
        for r in report["rows"]:
            if r["team"] == t["team"]:
                out.append(line(r, r["team"], f"L{r['level']}"))
        out.append(line(t, t["team"], "all"))
    out.append(line(report["total"], "ALL", "all"))
    return out
