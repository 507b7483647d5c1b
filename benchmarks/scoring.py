"""Detection-quality scoring: simulator labels + replayed alert events -> the issue's metrics.

Pure functions, no I/O beyond the two loaders, so the numbers can be audited and unit-tested on
hand-made fixtures (tests/benchmarks/test_scoring.py). `quality.py` drives the simulator and the
replay and only prints what this module computes.

Definitions (every number the quality report shows comes from exactly these rules)
--------------------------------------------------------------------------------
Page
    An alert event with ``status == "firing"`` and ``level`` in 1..3. Level-4 firing events are
    *notices*: counted and reported, never pages, never matched, never false pages. ``resolved``
    events are ignored except that none are pages.
Match
    A page matches a labelled incident when ``event.stream`` is the incident's ``stream`` or is in
    its ``affected_streams``, and ``start_ts - 10 <= event.ts <= end_ts + 120`` (the incident's
    *window*). One page may match several incidents (a shared payment outage and a room incident
    overlapping in time); it is then "true" for each of them.
Detected, time to detect (TTD)
    An incident is detected when at least one page matches it. An incident labelled level 4
    (an incident graded down to a notice by its tiny impact) is meant not to page: for it, a
    firing event of its own incident type at any level counts as a match too.
    TTD = ts of the earliest matching
    page (ties broken by event ``id``, which sorts in emission order) minus ``start_ts``, clipped
    at 0 (a page in the 10 s before the labelled start counts as instant).
Team and level of a detected incident
    The *deciding* page is the earliest matching page whose stream equals the incident's own stream
    (for a shared outage on ``svc:payment``: a page on ``svc:payment``), or, when there is none, the
    earliest matching page of any affected stream. team = the deciding page's team. level = the most
    severe (minimum) level over all firing events (levels 1..4) that carry the deciding page's
    ``incident_id`` and whose ts lies in the incident's window: an alert regraded from 3 to 1 while
    the incident lasts is credited with level 1. "Team ok" when team == the label's team; "level
    exact" when level == the label's level; "level off by one" when they differ by exactly 1.
    Rates are over detected incidents.
False page
    A page that matches no labelled incident. Per stream, false pages are sorted by ts and merged:
    a false page less than 300 s after the previous false page of the same stream extends that
    group (chained, so a flapping alert counts once until it has been quiet for 5 minutes). Each
    group counts as one false page. For tuning only, each group gets a likely cause, the first
    that applies to its first page: a labelled normal event on that stream whose window (same
    -10 s / +120 s margins) holds it; an artifact on that stream at most 120 s before it; the
    first 300 s of the stream (ramp_up); within 300 s of the stream's end or after it
    (stream_end); the window of an incident on another stream (spillover); else unexplained.
Stream-hours
    Sum over labelled streams of kind "room" (or, if ``kind`` is absent, streams not starting with
    ``svc:``) of (end_ts - start_ts) / 3600. False pages per stream-hour = false pages (all
    streams, ``svc:*`` included) / stream-hours. The per-stream breakdown divides by that stream's
    own hours (session length for a stream without a labelled span).
Groups and TTD targets
    Incidents are reported per type, with checkout_broken split in two because the targets differ:
    ``checkout_broken/svc`` (stream starts with ``svc:``: the shared payment outage) and
    ``checkout_broken/room``. Median TTD is over detected incidents of the group; a group with
    incidents but no detection has no median and FAILs its target; a group absent from the
    sessions is "n/a" (neither PASS nor FAIL).
Pooling
    Several sessions (seeds) are pooled by concatenating their incident outcomes and false pages
    and summing stream-hours; medians and rates are then computed on the pool.
"""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PRE_S", "POST_S", "FALSE_PAGE_MERGE_S", "TTD_TARGETS_S", "Incident", "Event",
    "IncidentOutcome", "FalsePage", "SessionScore", "GroupStats", "Summary", "Target",
    "load_labels", "load_events",
    "parse_incidents", "parse_events", "score_session", "summarize", "targets",
]

PRE_S = 10.0                 # a page up to 10 s before the labelled start still matches
POST_S = 120.0               # ... and up to 120 s after the labelled end (alerts lag, then resolve)
FALSE_PAGE_MERGE_S = 300.0   # false pages of one stream closer than this count once
EDGE_S = 300.0               # cause attribution: "near stream start/end"

# The median time-to-detect targets, by incident group (the rest are in targets()).
TTD_TARGETS_S = {"stream_outage": 30.0, "checkout_broken/svc": 45.0, "checkout_broken/room": 120.0}


@dataclass(frozen=True)
class Incident:
    """One labelled incident, as the simulator wrote it."""
    id: str
    type: str
    stream: str
    start_ts: float
    end_ts: float
    team: str
    level: int
    affected_streams: frozenset[str] = frozenset()
    silent: bool = False

    @property
    def group(self) -> str:
        """Report/target group: the type, with checkout_broken split into shared vs room."""
        if self.type == "checkout_broken":
            return "checkout_broken/svc" if self.stream.startswith("svc:") else "checkout_broken/room"
        return self.type

    def covers(self, ev: Event) -> bool:
        """The matching rule of the module docstring (stream, then time window)."""
        in_stream = ev.stream == self.stream or ev.stream in self.affected_streams
        return in_stream and self.start_ts - PRE_S <= ev.ts <= self.end_ts + POST_S


@dataclass(frozen=True)
class Event:
    """The fields of one alert event (CONTRACTS §3) that scoring uses."""
    id: str
    ts: float
    stream: str
    level: int
    team: str
    status: str
    incident_id: str
    incident_type: str = ""
    metric: str = ""

    @property
    def is_page(self) -> bool:
        return self.status == "firing" and 1 <= self.level <= 3


@dataclass(frozen=True)
class IncidentOutcome:
    """What the pipeline did about one labelled incident."""
    incident: Incident
    detected: bool
    ttd_s: float | None = None
    team: str | None = None
    level: int | None = None
    deciding_event: str | None = None

    @property
    def team_ok(self) -> bool:
        return self.detected and self.team == self.incident.team

    @property
    def level_ok(self) -> bool:
        return self.detected and self.level == self.incident.level

    @property
    def level_off_by_one(self) -> bool:
        return self.detected and self.level is not None and abs(self.level - self.incident.level) == 1


@dataclass(frozen=True)
class FalsePage:
    """One merged group of unmatched pages on one stream."""
    stream: str
    ts: float
    last_ts: float
    events: int
    level: int           # most severe level in the group
    incident_type: str   # of the group's first event: what the pipeline thought it was
    cause: str           # likely cause, for tuning only


@dataclass
class SessionScore:
    """Everything needed to summarise one session, or a pool of sessions."""
    outcomes: list[IncidentOutcome] = field(default_factory=list)
    false_pages: list[FalsePage] = field(default_factory=list)
    stream_hours: float = 0.0
    hours_by_stream: dict[str, float] = field(default_factory=dict)
    pages: int = 0
    notices: int = 0

    def __add__(self, other: SessionScore) -> SessionScore:
        hours = dict(self.hours_by_stream)
        for stream, h in other.hours_by_stream.items():
            hours[stream] = hours.get(stream, 0.0) + h
        return SessionScore(self.outcomes + other.outcomes, self.false_pages + other.false_pages,
                            self.stream_hours + other.stream_hours, hours,
                            self.pages + other.pages, self.notices + other.notices)


@dataclass(frozen=True)
class GroupStats:
    """One incident group's row of the report (team/level counts are of detected incidents)."""
    count: int
    detected: int
    median_ttd_s: float | None
    team_ok: int
    level_ok: int
    silent: int
    silent_detected: int


@dataclass(frozen=True)
class Summary:
    """The report's numbers for one session or a pool; rates are None when undefined (0/0)."""
    incidents: int
    detected: int
    recall: float | None
    team_ok_rate: float | None
    level_exact_rate: float | None
    level_off_by_one_rate: float | None
    false_pages: int
    stream_hours: float
    false_pages_per_stream_hour: float
    pages: int
    notices: int
    groups: dict[str, GroupStats]
    false_pages_by_stream: dict[str, tuple[int, float]]   # stream -> (count, per its own hour)
    false_pages_by_cause: dict[str, int]


@dataclass(frozen=True)
class Target:
    """One acceptance target evaluated on one summary."""
    name: str
    value: float | None
    op: str              # "<=" or ">="
    threshold: float
    status: str          # "PASS", "FAIL" or "n/a"


def load_labels(path: Path) -> dict[str, Any]:
    labels: dict[str, Any] = json.loads(Path(path).read_bytes())
    return labels


def load_events(path: Path) -> list[dict[str, Any]]:
    """Read alert-event NDJSON; blank lines are skipped, a bad line raises with its number."""
    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not a JSON alert event: {exc}") from None
    return out


def parse_incidents(labels: Mapping[str, Any]) -> list[Incident]:
    return [Incident(id=str(d["id"]), type=str(d["type"]), stream=str(d["stream"]),
                     start_ts=float(d["start_ts"]), end_ts=float(d["end_ts"]),
                     team=str(d["team"]), level=int(d["level"]),
                     affected_streams=frozenset(d.get("affected_streams") or ()),
                     silent=bool(d.get("silent", False)))
            for d in labels.get("incidents", ())]


def parse_events(raw: Iterable[Mapping[str, Any]]) -> list[Event]:
    """Typed events sorted by (ts, id) so "earliest" is well defined; no incident_id -> own id."""
    events = [Event(id=str(d["id"]), ts=float(d["ts"]), stream=str(d["stream"]),
                    level=int(d["level"]), team=str(d.get("team", "")), status=str(d["status"]),
                    incident_id=str(d.get("incident_id") or d["id"]),
                    incident_type=str(d.get("incident_type", "")), metric=str(d.get("metric", "")))
              for d in raw]
    events.sort(key=lambda e: (e.ts, e.id))
    return events


def _is_room(stream: Mapping[str, Any]) -> bool:
    kind = stream.get("kind")
    return kind == "room" if kind is not None else not str(stream["stream"]).startswith("svc:")


def _outcome(inc: Incident, pages: Sequence[Event], firing: Sequence[Event]) -> IncidentOutcome:
    if inc.level == 4:
        # a level-4 incident is *meant* to be a notice: a firing event of its type, any level,
        # detects it (a page for it is still right, with a level off by one or more)
        pages = [e for e in firing if e.is_page or e.incident_type == inc.type]
    matches = [e for e in pages if inc.covers(e)]
    if not matches:
        return IncidentOutcome(inc, detected=False)
    own = [e for e in matches if e.stream == inc.stream]
    deciding = own[0] if own else matches[0]
    lo, hi = inc.start_ts - PRE_S, inc.end_ts + POST_S
    level = min(e.level for e in firing
                if e.incident_id == deciding.incident_id and lo <= e.ts <= hi)
    return IncidentOutcome(inc, detected=True, ttd_s=max(0.0, matches[0].ts - inc.start_ts),
                           team=deciding.team, level=level, deciding_event=deciding.id)


def _cause(stream: str, ts: float, labels: Mapping[str, Any], incidents: Sequence[Incident]) -> str:
    """Best guess at why a false page fired; first rule that applies wins."""
    for ne in labels.get("normal_events", ()):
        if ne["stream"] == stream and ne["start_ts"] - PRE_S <= ts <= ne["end_ts"] + POST_S:
            return f"normal:{ne['type']}"
    for art in labels.get("artifacts", ()):   # an artifact can only cause a later page
        if art["stream"] == stream and 0.0 <= ts - art["ts"] <= POST_S:
            return f"artifact:{art['type']}"
    for s in labels.get("streams", ()):
        if s["stream"] == stream:
            if 0 <= ts - s["start_ts"] <= EDGE_S:
                return "ramp_up"
            if abs(ts - s["end_ts"]) <= EDGE_S or ts > s["end_ts"]:
                return "stream_end"
    if any(i.start_ts - PRE_S <= ts <= i.end_ts + POST_S for i in incidents):
        return "spillover"   # during an incident elsewhere, on a stream it does not affect
    return "unexplained"


def _merge_false(unmatched: Sequence[Event], labels: Mapping[str, Any],
                 incidents: Sequence[Incident]) -> list[FalsePage]:
    by_stream: dict[str, list[Event]] = defaultdict(list)
    for ev in unmatched:                      # already in (ts, id) order
        by_stream[ev.stream].append(ev)
    out: list[FalsePage] = []
    for stream, evs in by_stream.items():
        group: list[Event] = []
        for ev in [*evs, None]:
            if group and (ev is None or ev.ts - group[-1].ts >= FALSE_PAGE_MERGE_S):
                first = group[0]
                out.append(FalsePage(stream, first.ts, group[-1].ts, len(group),
                                     min(e.level for e in group), first.incident_type,
                                     _cause(stream, first.ts, labels, incidents)))
                group = []
            if ev is not None:
                group.append(ev)
    out.sort(key=lambda f: (f.ts, f.stream))
    return out


def score_session(labels: Mapping[str, Any], raw_events: Iterable[Mapping[str, Any]]) -> SessionScore:
    """Score one simulated session: per-incident outcomes, merged false pages, exposure."""
    incidents = parse_incidents(labels)
    events = parse_events(raw_events)
    firing = [e for e in events if e.status == "firing"]
    pages = [e for e in firing if e.is_page]
    outcomes = [_outcome(inc, pages, firing) for inc in incidents]
    unmatched = [e for e in pages if not any(inc.covers(e) for inc in incidents)]
    session_h = (float(labels.get("end_ts", 0.0)) - float(labels.get("start_ts", 0.0))) / 3600.0
    hours = {str(s["stream"]): (float(s["end_ts"]) - float(s["start_ts"])) / 3600.0
             for s in labels.get("streams", ())}
    room_hours = sum(hours[str(s["stream"])] for s in labels.get("streams", ()) if _is_room(s))
    for fp_stream in {e.stream for e in unmatched} - hours.keys():
        hours[fp_stream] = session_h
    return SessionScore(outcomes=outcomes, false_pages=_merge_false(unmatched, labels, incidents),
                        stream_hours=room_hours, hours_by_stream=hours, pages=len(pages),
                        notices=sum(1 for e in firing if e.level == 4))


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def summarize(score: SessionScore) -> Summary:
    """Turn outcomes into the report's numbers (see the module docstring for each definition)."""
    outs = score.outcomes
    det = [o for o in outs if o.detected]
    groups: dict[str, GroupStats] = {}
    by_group: dict[str, list[IncidentOutcome]] = defaultdict(list)
    for o in outs:
        by_group[o.incident.group].append(o)
    for name in sorted(by_group):
        g = by_group[name]
        ttds = [o.ttd_s for o in g if o.ttd_s is not None]
        groups[name] = GroupStats(
            count=len(g), detected=sum(o.detected for o in g),
            median_ttd_s=statistics.median(ttds) if ttds else None,
            team_ok=sum(o.team_ok for o in g), level_ok=sum(o.level_ok for o in g),
            silent=sum(o.incident.silent for o in g),
            silent_detected=sum(o.incident.silent and o.detected for o in g))
    fp_count: dict[str, int] = defaultdict(int)
    causes: dict[str, int] = defaultdict(int)
    for fp in score.false_pages:
        fp_count[fp.stream] += 1
        causes[fp.cause] += 1
    by_stream = {s: (n, n / score.hours_by_stream[s] if score.hours_by_stream.get(s) else float("inf"))
                 for s, n in sorted(fp_count.items(), key=lambda kv: (-kv[1], kv[0]))}
    n_fp = len(score.false_pages)
    fp_rate = n_fp / score.stream_hours if score.stream_hours else (float("inf") if n_fp else 0.0)
    return Summary(
        incidents=len(outs), detected=len(det), recall=_rate(len(det), len(outs)),
        team_ok_rate=_rate(sum(o.team_ok for o in det), len(det)),
        level_exact_rate=_rate(sum(o.level_ok for o in det), len(det)),
        level_off_by_one_rate=_rate(sum(o.level_off_by_one for o in det), len(det)),
        false_pages=n_fp, stream_hours=score.stream_hours, false_pages_per_stream_hour=fp_rate,
        pages=score.pages, notices=score.notices, groups=groups,
        false_pages_by_stream=by_stream, false_pages_by_cause=dict(sorted(causes.items())))


def _target(name: str, value: float | None, op: str, threshold: float, present: bool) -> Target:
    if not present:
        return Target(name, value, op, threshold, "n/a")
    ok = value is not None and (value <= threshold if op == "<=" else value >= threshold)
    return Target(name, value, op, threshold, "PASS" if ok else "FAIL")


def targets(s: Summary) -> list[Target]:
    """The issue's acceptance targets, evaluated on one summary (a seed or the pool)."""
    out = [
        _target("incident recall", s.recall, ">=", 0.95, s.incidents > 0),
        _target("false pages / stream-hour", s.false_pages_per_stream_hour, "<=", 0.3,
                s.stream_hours > 0 or s.false_pages > 0),
        _target("right team", s.team_ok_rate, ">=", 0.90, s.incidents > 0),
        _target("exact level", s.level_exact_rate, ">=", 0.75, s.incidents > 0),
    ]
    for group, limit in TTD_TARGETS_S.items():
        g = s.groups.get(group)
        out.append(_target(f"median TTD {group} (s)", g.median_ttd_s if g else None, "<=", limit,
                           g is not None and g.count > 0))
    return out
