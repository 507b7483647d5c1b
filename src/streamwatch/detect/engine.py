"""DetectionStage: binds rules to series, runs every detector over a batch, keeps transitions.

A rule names one metric (or "*": any metric no other rule names, the generic profile). Its
detector rows are streams - one state per room for that rule - except for "*" rules, whose rows are
the series they watch, numbered densely (the generic profile keeps ~12 KB of history per row:
sizing it by every series of the table cost 240 MB at 20k catalogue series it never watches). A rule with `per = "<metric>"` is also fed that metric's samples (role 1), so two counters
of one room meet in one state (orders per click).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from streamwatch.config.rules import Rule
from streamwatch.detect.base import Detector
from streamwatch.detect.debounce import CLEAR, ONSET, WORSE, Debouncer
from streamwatch.detect.registry import build_detector
from streamwatch.detect.table import SeriesTable
from streamwatch.types import CATALOGUE, Floats, Ints

__all__ = ["Transition", "DetectionStage", "ONSET", "WORSE", "CLEAR"]


@nb.njit(cache=True, nogil=True)
def _counting_order(keys, starts, out):  # type: ignore[no-untyped-def]
    pos = starts.copy()
    for i in range(len(keys)):
        k = keys[i]
        out[pos[k]] = i
        pos[k] += 1


@dataclass(frozen=True, slots=True)
class _View:
    """One metric group's samples, gathered once for every rule that watches it."""
    sel: Ints        # positions in the batch, arrival order
    series: Ints
    streams: Ints
    ts: Floats
    x: Floats
    dt: Floats

    @staticmethod
    def of(key: tuple[int, ...], groups: dict[int, Ints], rows: Ints, ts: Floats, x: Floats,
           dt: Floats, row_stream: Ints) -> "_View":
        sel = groups[key[0]] if len(key) == 1 else np.sort(np.concatenate([groups[m]
                                                                           for m in key]))
        series = rows[sel]
        return _View(sel, series, row_stream[series], ts[sel], x[sel], dt[sel])


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule's anomaly on one stream started (ONSET), worsened (WORSE) or ended (CLEAR)."""
    ts: float
    index: int          # position in the batch of the sample that caused it (arrival order)
    stream: str
    metric: str
    rule: Rule
    kind: int
    level: int
    score: float
    observed: float
    expected: float


class DetectionStage:
    def __init__(self, rules: list[Rule], table: SeriesTable) -> None:
        self.rules = rules
        self.table = table
        self.detectors: list[Detector] = [build_detector(r) for r in rules]
        self.debouncers = [Debouncer(r.min_duration, r.clear_after) for r in rules]
        self.bind: list[Ints] = [np.full(0, -1, np.int64) for _ in rules]
        self.role: list[Ints] = [np.zeros(0, np.int64) for _ in rules]
        # "*" rules watch metrics outside the catalogue (CONTRACTS §1) that no rule names;
        # `live` is the broadcast lifecycle (pipeline.py), never a metric to score
        self._named = set(CATALOGUE) | {r.metric for r in rules} | {
            str(r.extra()["per"]) for r in rules if r.extra().get("per")}
        # per rule: which rule-row each series row feeds (and how), grown as series appear
        self._bound_rows = 0
        self._sized = [0 for _ in rules]          # rows each rule's detector has room for
        self._n_rows = [0 for _ in rules]         # rows a "*" rule has given out
        self._has_per = [bool(r.extra().get("per")) for r in rules]
        self._rule_mids: list[list[int]] = [[] for _ in rules]
        self.max_score: Floats = np.zeros(0)
        self.want_scores = False      # per-sample max score: replay --scores and the live view

    def on_new_rows(self) -> None:
        """Bind the series created since the last call; state grows geometrically, so a room
        going on air costs time proportional to its own series, not to all of them."""
        n = len(self.table)
        if n <= self._bound_rows:
            return
        old = self._bound_rows
        cap = len(self.bind[0]) if self.rules else 0
        if n > cap:
            cap = max(n, 2 * cap, 1024)
            for i in range(len(self.rules)):
                bind = np.full(cap, -1, np.int64); bind[:old] = self.bind[i][:old]
                role = np.zeros(cap, np.int64); role[:old] = self.role[i][:old]
                self.bind[i], self.role[i] = bind, role
        keys = self.table.keys
        row_stream = self.table.row_stream
        for i, rule in enumerate(self.rules):
            bind, role = self.bind[i], self.role[i]
            per = rule.extra().get("per")
            for r in range(old, n):
                metric = keys[r][1]
                if rule.metric == "*":
                    if metric not in self._named:
                        bind[r] = self._n_rows[i]
                        self._n_rows[i] += 1
                elif metric == rule.metric:
                    bind[r] = row_stream[r]
                elif per is not None and metric == per:
                    bind[r] = row_stream[r]
                    role[r] = 1
            need = self._n_rows[i] if rule.metric == "*" else self.table.n_streams
            if need > self._sized[i]:
                self._sized[i] = max(need, 2 * self._sized[i], 64)
                self.detectors[i].resize(self._sized[i])
                self.debouncers[i].resize(self._sized[i])
        self._bound_rows = n
        mids_of = self.table.metric_ids
        self._rule_mids = []
        for i, rule in enumerate(self.rules):
            if rule.metric == "*":
                mids = [mid for m, mid in mids_of.items() if m not in self._named]
            else:
                names = [rule.metric] + ([str(rule.extra()["per"])] if self._has_per[i] else [])
                mids = [mids_of[m] for m in names if m in mids_of]
            self._rule_mids.append(mids)

    def run(self, rows: Ints, ts: Floats, x: Floats, dt: Floats, positions: Ints
            ) -> list[Transition]:
        """Every rule over the batch (already admitted, in arrival order); transitions in order.

        Left behind per sample: `max_score` (if `want_scores`), the highest score any rule gave
        it (NaN where none: replay's `--scores` reads it), and `expected`, its series' baseline
        expectation (NaN where none: impact grading reads it, as of each transition)."""
        out: list[Transition] = []
        table = self.table
        self.max_score = np.full(len(rows), np.nan)
        self.expected = np.full(len(rows), np.nan)
        groups = self._groups(table.row_metric[rows])
        views: dict[tuple[int, ...], _View] = {}     # rules on the same metrics share gathers
        for i, rule in enumerate(self.rules):
            key = tuple(m for m in self._rule_mids[i] if m in groups)
            if not key:
                continue
            v = views.get(key)
            if v is None:
                v = views[key] = _View.of(key, groups, rows, ts, x, dt, table.row_stream)
            # rule rows: the stream for named-metric rules, the series for "*" rules
            r_rows = self.bind[i][v.series] if rule.metric == "*" else v.streams
            det = self.detectors[i]
            if self._has_per[i]:
                role = self.role[i][v.series]
                scores = det.update_many(r_rows, v.ts, v.x, v.dt, role=role)
                own, exp = v.sel[role == 0], scores.expected[role == 0]
            else:
                scores = det.update_many(r_rows, v.ts, v.x, v.dt)
                own, exp = v.sel, scores.expected
            if self.want_scores:
                prev = self.max_score[v.sel]
                self.max_score[v.sel] = np.where(np.isnan(prev), scores.score,
                                                 np.maximum(prev, scores.score))
            ok = ~np.isnan(exp)
            self.expected[own[ok]] = exp[ok]
            idx, kind, lvl = self.debouncers[i].update_many(r_rows, v.ts, scores.level)
            obs = scores.observed if scores.observed is not None else v.x
            for j, k, lv in zip(idx.tolist(), kind.tolist(), lvl.tolist()):
                stream, metric = table.keys[int(v.series[j])]
                out.append(Transition(float(v.ts[j]), int(positions[v.sel[j]]), stream,
                                      rule.metric if rule.metric != "*" else metric, rule, k, lv,
                                      float(scores.score[j]), float(obs[j]),
                                      float(scores.expected[j])))
        out.sort(key=lambda t: t.index)     # stable: same sample -> rule order
        return out

    @staticmethod
    def _groups(mids: Ints) -> dict[int, Ints]:
        """Sample positions per metric id, each in arrival order: every rule then touches only
        its own samples instead of masking the whole batch (a counting sort, O(n))."""
        if len(mids) == 0:
            return {}
        counts = np.bincount(mids)
        order = np.empty(len(mids), np.int64)
        _counting_order(mids, np.concatenate(([0], np.cumsum(counts)[:-1])), order)
        ends = np.cumsum(counts)
        return {m: order[ends[m] - counts[m]:ends[m]] for m in np.flatnonzero(counts).tolist()}

    def end_stream(self, sid: int, ts: float, index: int) -> list[Transition]:
        """Stream went off air or restarted: active anomalies end, learnt state is forgotten."""
        out = []
        stream = self.table.streams[sid]
        series = np.flatnonzero(self.table.row_stream[: len(self.table)] == sid)
        for i, rule in enumerate(self.rules):
            if rule.metric == "*":
                rows = self.bind[i][series]
                rows = rows[rows >= 0]
            else:
                rows = np.array([sid], np.int64) if sid < self.debouncers[i].n else np.zeros(0, np.int64)
            if len(rows) == 0:
                continue
            for _ in self.debouncers[i].force_clear(rows):
                out.append(Transition(ts, index, stream, rule.metric, rule, CLEAR, 0, 0.0, np.nan,
                                      np.nan))
            self.detectors[i].reset(rows)
        return out
