"""DetectionStage: binds rules to series, runs every detector over a batch, keeps transitions.

A rule names one metric (or "*": any metric no other rule names, the generic profile). Its
detector rows are streams - one state per room for that rule - except for "*" rules, whose rows are
series. A rule with `per = "<metric>"` is also fed that metric's samples (role 1), so two counters
of one room meet in one state (orders per click).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamwatch.config.rules import Rule
from streamwatch.detect.base import Detector
from streamwatch.detect.debounce import CLEAR, ONSET, WORSE, Debouncer
from streamwatch.detect.registry import build_detector
from streamwatch.detect.table import SeriesTable
from streamwatch.types import CATALOGUE, Floats, Ints

__all__ = ["Transition", "DetectionStage", "ONSET", "WORSE", "CLEAR"]


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
        self._has_per = [bool(r.extra().get("per")) for r in rules]
        self._rule_mids: list[list[int]] = [[] for _ in rules]
        self.max_score: Floats = np.zeros(0)

    def on_new_rows(self) -> None:
        n = len(self.table)
        if n <= self._bound_rows:
            return
        for i, rule in enumerate(self.rules):
            bind = np.full(n, -1, np.int64); bind[: self._bound_rows] = self.bind[i]
            role = np.zeros(n, np.int64); role[: self._bound_rows] = self.role[i]
            per = rule.extra().get("per")
            for r in range(self._bound_rows, n):
                stream, metric = self.table.keys[r]
                sid = int(self.table.row_stream[r])
                if rule.metric == "*":
                    if metric not in self._named:
                        bind[r] = r
                elif metric == rule.metric:
                    bind[r] = sid
                elif per is not None and metric == per:
                    bind[r] = sid
                    role[r] = 1
            self.bind[i], self.role[i] = bind, role
            size = n if rule.metric == "*" else self.table.n_streams
            self.detectors[i].resize(size)
            self.debouncers[i].resize(size)
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

        Left behind per sample: `max_score`, the highest score any rule gave it (NaN where none:
        replay's `--scores` and the live view read it), and `expected`, its series' baseline
        expectation (NaN where none: impact grading reads it, as of each transition)."""
        out: list[Transition] = []
        table = self.table
        self.max_score = np.full(len(rows), np.nan)
        self.expected = np.full(len(rows), np.nan)
        groups = self._groups(table.row_metric[rows])
        for i, rule in enumerate(self.rules):
            parts = [groups[m] for m in self._rule_mids[i] if m in groups]
            if not parts:
                continue
            sel = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts))
            r_rows = self.bind[i][rows[sel]]
            role = self.role[i][rows[sel]]
            det = self.detectors[i]
            scores = (det.update_many(r_rows, ts[sel], x[sel], dt[sel], role=role)
                      if self._has_per[i] else det.update_many(r_rows, ts[sel], x[sel], dt[sel]))
            prev = self.max_score[sel]
            self.max_score[sel] = np.where(np.isnan(prev), scores.score,
                                           np.maximum(prev, scores.score))
            own = sel[role == 0]
            if len(own):
                exp = scores.expected[role == 0]
                ok = ~np.isnan(exp)
                self.expected[own[ok]] = exp[ok]
            idx, kind, lvl = self.debouncers[i].update_many(r_rows, ts[sel], scores.level)
            obs = scores.observed if scores.observed is not None else x[sel]
            for j, k, lv in zip(idx.tolist(), kind.tolist(), lvl.tolist()):
                series = int(rows[sel[j]])
                stream, metric = table.keys[series]
                out.append(Transition(float(ts[sel[j]]), int(positions[sel[j]]), stream,
                                      rule.metric if rule.metric != "*" else metric, rule, k, lv,
                                      float(scores.score[j]), float(obs[j]),
                                      float(scores.expected[j])))
        out.sort(key=lambda t: t.index)     # stable: same sample -> rule order
        return out

    @staticmethod
    def _groups(mids: Ints) -> dict[int, Ints]:
        """Sample positions per metric id, each in arrival order: every rule then touches only
        its own samples instead of masking the whole batch."""
        if len(mids) == 0:
            return {}
        order = np.argsort(mids, kind="stable")
        m_sorted = mids[order]
        cuts = np.flatnonzero(np.diff(m_sorted)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(order)]])
        return {int(m_sorted[a]): order[a:b] for a, b in zip(starts.tolist(), ends.tolist())}

    def end_stream(self, sid: int, ts: float, index: int) -> list[Transition]:
        """Stream went off air or restarted: active anomalies end, learnt state is forgotten."""
        out = []
        stream = self.table.streams[sid]
        for i, rule in enumerate(self.rules):
            if rule.metric == "*":
                rows = np.array([r for r in range(len(self.table))
                                 if self.table.row_stream[r] == sid and self.bind[i][r] >= 0],
                                np.int64)
            else:
                rows = np.array([sid], np.int64) if sid < self.debouncers[i].n else np.zeros(0, np.int64)
            if len(rows) == 0:
                continue
            for _ in self.debouncers[i].force_clear(rows):
                out.append(Transition(ts, index, stream, rule.metric, rule, CLEAR, 0, 0.0, np.nan,
                                      np.nan))
            self.detectors[i].reset(rows)
        return out
