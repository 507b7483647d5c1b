"""The one pipeline, Batch -> AlertEvents, used by `serve` and `replay` alike.

    parse (ingest/parse.py, by the caller)
      -> rows           detect/table.py      (stream, metric) -> row
      -> admit          ingest/order.py      duplicates, late, out of order, on event time
      -> observations   ingest/rates.py      counters -> increments; gauges pass
      -> detect         detect/engine.py     every rule's method, then debounce -> transitions
      -> absence        detect/absence.py    rooms whose collectors all stopped
      -> assess         assess/correlate.py  signals -> typed findings graded by impact
      -> incidents      incidents/manager.py lifecycle -> AlertEvents

Everything runs on event time and in arrival order. The vectorised stages run over the whole
batch; then transitions, silences and on-air changes are replayed in arrival order, and before each
one the table is advanced to exactly "after that sample", so an assessment sees what it would have
seen had the samples come one at a time. Hence the same input gives the same events, byte for byte,
however it was cut into batches (tests/test_pipeline.py checks it).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from streamwatch.assess.correlate import Correlator, is_service
from streamwatch.assess.grade import GradePolicy
from streamwatch.config.rules import Rule
from streamwatch.detect.absence import FELL, AbsenceCheck
from streamwatch.detect.engine import DetectionStage, Transition
from streamwatch.detect.table import SeriesTable
from streamwatch.events import AlertEvent
from streamwatch.incidents.manager import IncidentManager
from streamwatch.ingest.fastpath import Interned
from streamwatch.ingest.order import DUPLICATE, LATE, REORDERED, admit
from streamwatch.ingest.batch import Batch
from streamwatch.ingest.rates import to_observations
from streamwatch.types import Floats, IncidentType, Ints

__all__ = ["Pipeline", "PipelineSettings", "PipelineStats"]

_LIFECYCLE, _TRANSITION, _ABSENCE = 0, 1, 2


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


@dataclass(slots=True)
class _Cursor:
    """Per-sample updates of the table, applied up to a position on demand."""
    rows: Ints
    value: Floats      # raw value, NaN = not admitted
    rate: Floats       # gauge value or counter rate per minute, NaN = none
    expected: Floats   # baseline expectation, NaN = none
    done: int = 0

    def advance(self, table: SeriesTable, upto: int) -> None:
        if upto > self.done:
            _apply(self.rows, self.value, self.rate, self.expected, self.done, upto,
                   table.row_value, table.row_rate, table.row_expected)
            self.done = upto


@nb.njit(cache=True, nogil=True)
def _apply(rows, value, rate, expected, a, b, row_value, row_rate, row_expected):  # type: ignore[no-untyped-def]
    """Samples a..b-1 into the table, in order (the last sample of a row wins); NaN = none."""
    for i in range(a, b):
        r = rows[i]
        if value[i] == value[i]:
            row_value[r] = value[i]
        if rate[i] == rate[i]:
            row_rate[r] = rate[i]
        if expected[i] == expected[i]:
            row_expected[r] = expected[i]


class Pipeline:
    def __init__(self, rules: list[Rule], settings: PipelineSettings = PipelineSettings()) -> None:
        self.settings = settings
        self.table = SeriesTable()
        self.detection = DetectionStage(rules, self.table)
        self.absence = AbsenceCheck(settings.silence_after)
        self.correlator = Correlator(self.table, settings.grade)
        self.incidents = IncidentManager()
        self.stats = PipelineStats()
        self.last_scores: np.ndarray = np.zeros(0)   # per sample of the last batch, NaN = unscored
        # the parse stage bound to this pipeline's name ids (ingest/fastpath.py)
        self.parser = Interned(self.table.stream_names, self.table.metric_names)

    def process(self, batch: Batch) -> list[AlertEvent]:
        n = len(batch)
        if n == 0:
            return []
        t = self.table
        rows, created = t.lookup(batch.streams, batch.metrics, batch.sids, batch.mids)
        if created:
            self.detection.on_new_rows()
            self.absence.add_streams(t.streams)
        sids = t.row_stream[rows]
        ts = batch.ts
        status = admit(rows, sids, ts, t.row_last_ts, t.stream_newest,
                       self.settings.allowed_lateness)
        admitted = status < DUPLICATE
        self._count(status)
        x, dt, valid, resets = to_observations(rows, ts, batch.values, status, t.row_counter,
                                               t.cnt_ts, t.cnt_val)
        self.stats.counter_resets += resets
        self._note_first(sids, ts, admitted)
        sel = np.flatnonzero(valid)
        transitions = self.detection.run(rows[sel], ts[sel], x[sel], dt[sel], sel)
        self.last_scores = np.full(n, np.nan)
        self.last_scores[sel] = self.detection.max_score
        cursor = self._cursor(rows, batch.values, x, dt, valid, admitted, sel)
        live = self._live_values(batch, admitted)
        absence = self.absence.scan(sids, ts, admitted, live)
        events = self._replay(transitions, absence, live, sids, ts, cursor)
        cursor.advance(t, n)
        self.stats.samples += n
        self.stats.alerts += len(events)
        for e in events:
            self.stats.by_level[e.level] += 1
        return events

    # -- vectorised bookkeeping -------------------------------------------------------------
    def _count(self, status: Ints) -> None:
        self.stats.duplicates += int((status == DUPLICATE).sum())
        self.stats.late += int((status == LATE).sum())
        self.stats.reordered += int((status == REORDERED).sum())

    def _cursor(self, rows: Ints, values: Floats, x: Floats, dt: Floats, valid: np.ndarray,
                admitted: np.ndarray, sel: Ints) -> _Cursor:
        counter = self.table.row_counter[rows]
        with np.errstate(over="ignore", invalid="ignore"):   # finite but absurd (1e308): no rate
            rate = np.where(counter, x / np.where(dt > 0, dt, 1.0) * 60.0, x)
        rate[~valid | (counter & (dt <= 0)) | ~np.isfinite(rate)] = np.nan
        expected = np.full(len(rows), np.nan)
        expected[sel] = self.detection.expected
        return _Cursor(rows, np.where(admitted, values, np.nan), rate, expected)

    def _note_first(self, sids: Ints, ts: Floats, admitted: np.ndarray) -> None:
        first = self.table.stream_first
        if not np.isnan(first[: self.table.n_streams]).any():
            return                          # every stream's broadcast start is known
        fresh = np.isnan(first[sids]) & admitted
        earliest = np.full(len(first), np.inf)
        np.minimum.at(earliest, sids[fresh], ts[fresh])
        got = np.isfinite(earliest)
        first[got] = earliest[got]

    def _live_values(self, batch: Batch, admitted: np.ndarray) -> Floats:
        live = np.full(len(batch), np.nan)
        mid = self.table.metric_ids.get("live")
        if mid is not None:
            idx = np.flatnonzero((self.table.last_mids == mid) & admitted)
            live[idx] = batch.values[idx]
        return live

    # -- the rare path, in arrival order ----------------------------------------------------
    def _replay(self, transitions: list[Transition],
                absence: list[tuple[int, int, int, float, float]],
                live: Floats, sids: Ints, ts: Floats, cursor: _Cursor) -> list[AlertEvent]:
        items: list[tuple[int, int, object]] = [(tr.index, _TRANSITION, tr) for tr in transitions]
        items += [(a[0], _ABSENCE, a[1:]) for a in absence]
        items += [(i, _LIFECYCLE, None) for i in self._live_changes(live, sids)]
        items.sort(key=lambda it: (it[0], it[1]))
        events: list[AlertEvent] = []
        for i, what, obj in items:
            cursor.advance(self.table, i + 1)
            if what == _LIFECYCLE:
                events.extend(self._lifecycle(float(ts[i]), int(sids[i]), float(live[i]), i))
            elif what == _TRANSITION:
                tr: Transition = obj  # type: ignore[assignment]
                self.correlator.apply(tr)
                events.extend(self._reassess(tr.stream, tr.ts))
            else:
                sid, kind, when, newest = obj  # type: ignore[misc]
                stream = self.table.streams[sid]
                self.correlator.set_silent(stream, when, kind == FELL, newest)
                events.extend(self._reassess(stream, when))
        return events

    def _live_changes(self, live: Floats, sids: Ints) -> list[int]:
        """Positions of `live` samples that change a stream's on-air state (most repeat it)."""
        state = {}
        out = []
        for i in np.flatnonzero(~np.isnan(live)).tolist():
            s = int(sids[i])
            now = 1 if live[i] > 0 else 0
            was = state.get(s, int(self.table.stream_live[s]))
            if now != was:
                out.append(i)
            state[s] = now
        return out

    def _lifecycle(self, ts: float, sid: int, value: float, index: int) -> list[AlertEvent]:
        t = self.table
        was = int(t.stream_live[sid])
        now = 1 if value > 0 else 0
        t.stream_live[sid] = now
        stream = t.streams[sid]
        if now == 0 and was != 0:          # goodbye: whatever was open is over
            self.detection.end_stream(sid, ts, index)
            self.correlator.clear_stream(stream)
            return self.incidents.resolve_stream(stream, ts)
        if now == 1 and was == 0:          # a new broadcast: learn it afresh
            self.detection.end_stream(sid, ts, index)
            self.correlator.clear_stream(stream)
            t.stream_first[sid] = ts
        return []

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
                if not shared:
                    self.correlator.shared_checkout_closed_at = ts
                for room in [s for s in self.correlator.streams if not is_service(s)]:
                    events.extend(self.incidents.reconcile(room, ts,
                                                           self.correlator.assess(room, ts)))
        return events
