"""The one pipeline, Batch -> AlertEvents, used by `serve` and `replay` alike.

    parse (ingest/parse.py, by the caller)
      -> rows           detect/table.py      (stream, metric) -> row
      -> admit          ingest/order.py      duplicates, late, out of order, on event time
      -> observations   ingest/rates.py      counters -> increments; gauges pass
      -> detect         detect/engine.py     every rule's method, then debounce -> transitions
      -> absence        detect/absence.py    rooms whose collectors all stopped
      -> assess         assess/correlate.py  signals -> typed findings graded by impact
      -> incidents      incidents/manager.py lifecycle -> AlertEvents

Everything runs on event time and in arrival order, so the same input gives the same events,
byte for byte, however it was cut into batches.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from streamwatch.assess.correlate import Correlator, is_service
from streamwatch.assess.grade import GradePolicy
from streamwatch.config.rules import Rule
from streamwatch.detect.absence import AbsenceCheck
from streamwatch.detect.engine import DetectionStage, Transition
from streamwatch.detect.table import SeriesTable
from streamwatch.events import AlertEvent
from streamwatch.incidents.manager import IncidentManager
from streamwatch.ingest.order import DUPLICATE, LATE, REORDERED, admit
from streamwatch.ingest.parse import Batch
from streamwatch.ingest.rates import to_observations
from streamwatch.types import IncidentType

__all__ = ["Pipeline", "PipelineSettings", "PipelineStats"]


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    allowed_lateness: float = 30.0     # seconds behind the stream's newest sample still accepted
    silence_after: float = 25.0        # seconds without any sample before a live room is silent
    grade: GradePolicy = GradePolicy()


@dataclass(slots=True)
class PipelineStats:
    samples: int = 0
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    counter_resets: int = 0
    alerts: int = 0
    by_level: Counter[int] = field(default_factory=Counter)


class Pipeline:
    def __init__(self, rules: list[Rule], settings: PipelineSettings = PipelineSettings()) -> None:
        self.settings = settings
        self.table = SeriesTable()
        self.detection = DetectionStage(rules, self.table)
        self.absence = AbsenceCheck(self.table, settings.silence_after)
        self.correlator = Correlator(self.table, settings.grade)
        self.incidents = IncidentManager()
        self.stats = PipelineStats()
        self._live_metric = "live"
        self.last_scores: np.ndarray = np.zeros(0)   # per sample of the last batch, NaN = unscored

    def process(self, batch: Batch) -> list[AlertEvent]:
        n = len(batch)
        if n == 0:
            return []
        t = self.table
        rows, created = t.lookup(batch.streams, batch.metrics)
        if created:
            self.detection.on_new_rows()
        sids = t.row_stream[rows]
        ts = batch.ts
        status = admit(rows, sids, ts, t.row_last_ts, t.stream_newest,
                       self.settings.allowed_lateness)
        x, dt, valid = self._observe(rows, ts, batch.values, status)
        self._note_first(sids, ts, status)
        sel = np.flatnonzero(valid)
        transitions = self.detection.run(rows[sel], ts[sel], x[sel], dt[sel])
        self.last_scores = np.full(n, np.nan)
        self.last_scores[sel] = self.detection.max_score
        events: list[AlertEvent] = []
        live_idx = [i for i, m in enumerate(batch.metrics) if m == self._live_metric] \
            if self._live_metric in set(batch.metrics) else []
        lifecycle = [(float(ts[i]), int(sids[i]), float(batch.values[i])) for i in live_idx
                     if status[i] < DUPLICATE]
        events.extend(self._handle(transitions, lifecycle))
        events.extend(self._check_absence())
        self.stats.samples += n
        self.stats.alerts += len(events)
        for e in events:
            self.stats.by_level[e.level] += 1
        return events

    def _observe(self, rows, ts, values, status):  # type: ignore[no-untyped-def]
        t = self.table
        self.stats.duplicates += int((status == DUPLICATE).sum())
        self.stats.late += int((status == LATE).sum())
        self.stats.reordered += int((status == REORDERED).sum())
        x, dt, valid, resets = to_observations(rows, ts, values, status, t.row_counter,
                                               t.cnt_ts, t.cnt_val)
        self.stats.counter_resets += resets
        ok = status < DUPLICATE
        t.row_value[rows[ok]] = values[ok]
        counter = t.row_counter[rows]
        rate_ok = valid & (~counter | (dt > 0))
        rate = np.where(counter, x / np.where(dt > 0, dt, 1.0) * 60.0, x)
        t.row_rate[rows[rate_ok]] = rate[rate_ok]
        return x, dt, valid

    def _note_first(self, sids, ts, status) -> None:  # type: ignore[no-untyped-def]
        first = self.table.stream_first
        fresh = np.isnan(first[sids]) & (status < DUPLICATE)
        if fresh.any():
            for s, t0 in zip(sids[fresh].tolist(), ts[fresh].tolist()):
                if first[s] != first[s] or t0 < first[s]:
                    first[s] = t0

    def _handle(self, transitions: list[Transition],
                lifecycle: list[tuple[float, int, float]]) -> list[AlertEvent]:
        """Transitions and on-air changes, interleaved in event-time order."""
        items: list[tuple[float, int, object]] = [(tr.ts, 1, tr) for tr in transitions]
        items += [(ts, 0, (sid, v)) for ts, sid, v in lifecycle]
        items.sort(key=lambda it: (it[0], it[1]))
        events: list[AlertEvent] = []
        for ts, kind, obj in items:
            if kind == 0:
                sid, v = obj  # type: ignore[misc]
                events.extend(self._lifecycle(ts, sid, v))
            else:
                tr: Transition = obj  # type: ignore[assignment]
                self.correlator.apply(tr)
                events.extend(self._reassess(tr.stream, ts))
        return events

    def _lifecycle(self, ts: float, sid: int, value: float) -> list[AlertEvent]:
        t = self.table
        was = int(t.stream_live[sid])
        now = 1 if value > 0 else 0
        t.stream_live[sid] = now
        stream = t.streams[sid]
        if now == 0 and was != 0:          # goodbye: whatever was open is over
            self.detection.end_stream(sid, ts)
            self.correlator.clear_stream(stream)
            return self.incidents.resolve_stream(stream, ts)
        if now == 1 and was == 0:          # a new broadcast: learn it afresh
            self.detection.end_stream(sid, ts)
            self.correlator.clear_stream(stream)
            t.stream_first[sid] = ts
        return []

    def _check_absence(self) -> list[AlertEvent]:
        watermark, fell, back = self.absence.check()
        events: list[AlertEvent] = []
        t = self.table
        for sid in fell:
            stream = t.streams[sid]
            self.correlator.set_silent(stream, watermark, True, float(t.stream_newest[sid]))
            events.extend(self._reassess(stream, watermark))
        for sid in back:
            stream = t.streams[sid]
            newest = float(t.stream_newest[sid])
            self.correlator.set_silent(stream, newest, False, newest)
            events.extend(self._reassess(stream, newest))
        return events

    def _reassess(self, stream: str, ts: float) -> list[AlertEvent]:
        graded = self.correlator.assess(stream, ts)
        events = self.incidents.reconcile(stream, ts, graded)
        if is_service(stream):
            shared = any(inc.type == IncidentType.CHECKOUT_BROKEN and is_service(inc.stream)
                         for inc in self.incidents.open.values())
            if shared != self.correlator.shared_checkout_open:
                # a shared payment failure opened (rooms' own checkout incidents fold into it)
                # or closed (rooms are read afresh)
                self.correlator.shared_checkout_open = shared
                for room in [s for s in self.correlator.streams if not is_service(s)]:
                    events.extend(self.incidents.reconcile(room, ts,
                                                           self.correlator.assess(room, ts)))
        return events
