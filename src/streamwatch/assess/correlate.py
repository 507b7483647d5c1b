"""Correlator: per stream, the active signals -> typed, graded findings (one per incident type).

Keeps which rules are active on which stream (from the detection stage's transitions and the
absence check), and on every change re-reads the stream as a whole: signatures first, then normal
events, then grading by impact. A shared-service checkout failure explains the rooms' stopped
orders, so while one is open the rooms' own checkout findings are folded into it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from streamwatch.assess.grade import GradePolicy, Impact, grade
from streamwatch.assess.normal import RAMP_UP_S, recognise_normal
from streamwatch.assess.signals import Signal
from streamwatch.assess.signatures import Finding, match_signatures
from streamwatch.config.rules import Rule
from streamwatch.detect.debounce import CLEAR
from streamwatch.detect.engine import Transition
from streamwatch.detect.table import SeriesTable
from streamwatch.types import TEAM_OF_TYPE, IncidentType, Level, Team

__all__ = ["Correlator", "Graded", "is_service"]

_PAYMENT_WORDS = ("pay", "checkout", "order", "trade", "cashier")


def is_service(stream: str) -> bool:
    return stream.startswith("svc:")


@dataclass(slots=True)
class Graded:
    finding: Finding
    level: Level
    team: Team
    impact: Impact

    @property
    def key(self) -> str:
        f = self.finding
        return f"{f.type}/{f.kind}" if f.type in (IncidentType.NORMAL_EVENT,
                                                   IncidentType.UNKNOWN) else str(f.type)


@dataclass(slots=True)
class _StreamSignals:
    active: dict[str, Signal] = field(default_factory=dict)


class Correlator:
    def __init__(self, table: SeriesTable, policy: GradePolicy = GradePolicy()) -> None:
        self.table = table
        self.policy = policy
        self.streams: dict[str, _StreamSignals] = {}
        self.shared_checkout_open = False
        self._svc_cache = np.zeros(0, np.bool_)
        self.shared_checkout_closed_at = -np.inf   # rooms' stops that began before are its echo

    def apply(self, t: Transition) -> None:
        st = self.streams.setdefault(t.stream, _StreamSignals())
        direction = t.rule.direction
        if direction == "both":
            direction = "up" if t.observed >= t.expected else "down"
        key = f"{t.metric}:{direction}" if t.rule.metric != "*" else f"{t.metric}:{t.rule.name}"
        if t.kind == CLEAR:
            # a "both" rule clears whichever side it had raised
            for k in [k for k, s in st.active.items() if s.rule is t.rule and s.metric == t.metric]:
                del st.active[k]
            return
        prev = st.active.get(key)
        since = prev.since if prev else t.ts - t.rule.min_duration   # when the anomaly began
        st.active[key] = Signal(t.rule, t.metric, direction, t.level, since, t.score,
                                t.observed, t.expected)

    def set_silent(self, stream: str, ts: float, silent: bool, newest: float) -> None:
        st = self.streams.setdefault(stream, _StreamSignals())
        if silent:
            st.active["stream:silent"] = Signal(_SILENT_RULE, "stream", "silent", 1, newest, 1.0,
                                                ts - newest, 0.0)
        else:
            st.active.pop("stream:silent", None)

    def clear_stream(self, stream: str) -> None:
        self.streams.pop(stream, None)

    def assess(self, stream: str, ts: float) -> list[Graded]:
        st = self.streams.get(stream)
        if st is None or not st.active:
            return []
        svc = is_service(stream)
        findings, rest = match_signatures(st.active, svc)
        age = self._age(stream, ts)
        out_findings: list[Finding] = []
        for f in findings:
            if f.type is IncidentType.BOT_TRAFFIC and age < RAMP_UP_S:
                rest.update({s.key: s for s in f.signals})
                continue
            if svc and f.type is IncidentType.SERVICE_DEGRADATION and f.kind == "errors" \
                    and any(w in stream.lower() for w in _PAYMENT_WORDS):
                f.type = IncidentType.CHECKOUT_BROKEN
            if not svc and f.type is IncidentType.CHECKOUT_BROKEN and (
                    self.shared_checkout_open
                    or min(s.since for s in f.signals) <= self.shared_checkout_closed_at):
                continue    # explained by the shared payment incident (or its tail)
            out_findings.append(f)
        out_findings.extend(recognise_normal(rest, age))
        impact = self.impact(stream)
        graded = []
        for f in out_findings:
            level = grade(f.type, impact, is_service=svc, level_hint=f.level_hint,
                          policy=self.policy)
            team = f.signals[0].rule.team if f.type is IncidentType.UNKNOWN else TEAM_OF_TYPE[f.type]
            graded.append(Graded(f, level, Team(team), impact))
        return graded

    def _age(self, stream: str, ts: float) -> float:
        sid = self.table.stream_ids.get(stream)
        first = self.table.stream_first[sid] if sid is not None else np.nan
        return ts - first if first == first else 0.0

    def impact(self, stream: str) -> Impact:
        t = self.table
        viewers = _finite(t.expected(stream, "viewers"), t.latest(stream, "viewers"))
        gmv = _finite(t.expected(stream, "gmv_total"), t.latest(stream, "gmv_total"))
        tot_v, tot_g = self._totals()
        rooms = 1
        if is_service(stream):
            rooms = sum(1 for s, st in self.streams.items() if not is_service(s) and (
                "orders_total:down" in st.active or "stream:silent" in st.active))
            viewers, gmv = tot_v, tot_g
        return Impact(viewers, gmv, viewers / tot_v if tot_v > 0 else 0.0,
                      gmv / tot_g if tot_g > 0 else 0.0, rooms)

    def _totals(self) -> tuple[float, float]:
        """All live rooms' usual viewers and GMV per minute (baseline, else latest value)."""
        t = self.table
        v_rows, g_rows = t.rows_of_metric("viewers"), t.rows_of_metric("gmv_total")
        return (_sum_rooms(v_rows, t.row_stream, t.stream_live, self._service, t.row_expected,
                           t.row_rate),
                _sum_rooms(g_rows, t.row_stream, t.stream_live, self._service, t.row_expected,
                           t.row_rate))

    @property
    def _service(self) -> np.ndarray:
        names = self.table.streams
        if len(self._svc_cache) != len(names):
            self._svc_cache = np.array([is_service(s) for s in names], np.bool_)
        return self._svc_cache


@nb.njit(cache=True, nogil=True)
def _sum_rooms(rows, row_stream, stream_live, service, expected, rate):  # type: ignore[no-untyped-def]
    total = 0.0
    for r in rows:
        s = row_stream[r]
        if stream_live[s] == 0 or service[s]:
            continue
        v = expected[r] if np.isfinite(expected[r]) else rate[r]
        if np.isfinite(v) and v > 0:
            total += v
    return total


def _finite(*values: float) -> float:
    for v in values:
        if v == v and not math.isinf(v):
            return max(0.0, v)
    return 0.0


# the absence check's signal (detect/absence.py) has no rule file: this stands in for one
_SILENT_RULE = Rule(name="stream_silent", metric="stream", method="absence", team=Team.TECH,
                    direction="down", levels={1: 1.0}, source="built-in: absence")
