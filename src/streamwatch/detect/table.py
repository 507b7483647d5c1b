"""SeriesTable: (stream, metric) -> row, and the per-row / per-stream state the stages share.

Struct-of-arrays grown in chunks: the hot kernels take these arrays directly, and Python touches a
row only when it is created. Streams get their own small index so stream-level facts (newest
event time, last sample, on air or not) are one array lookup away.
"""
from __future__ import annotations

from collections.abc import Sequence

import numba as nb
import numpy as np

from streamwatch.ingest.names import Names

from streamwatch.types import Floats, Ints

__all__ = ["SeriesTable", "is_counter"]


@nb.njit(cache=True, nogil=True)
def _gather(grid, sids, mids, out):  # type: ignore[no-untyped-def]
    """out = grid[sids, mids]; how many were -1 (series not seen yet)."""
    missing = 0
    for i in range(len(sids)):
        r = grid[sids[i], mids[i]]
        out[i] = r
        if r < 0:
            missing += 1
    return missing

_CHUNK = 1024


def is_counter(metric: str) -> bool:
    """Prometheus convention (CONTRACTS §1): a name ending in `_total` is a cumulative counter."""
    return metric.endswith("_total")


def _grow(a: np.ndarray, n: int, fill: float | int | bool) -> np.ndarray:
    if len(a) >= n:
        return a
    size = max(n, len(a) * 2, _CHUNK)
    out = np.full(size, fill, dtype=a.dtype)
    out[: len(a)] = a
    return out


class SeriesTable:
    """Row and stream registry plus the arrays every stage reads."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], int] = {}
        self.stream_names = Names()
        self.metric_names = Names()
        self.stream_ids = self.stream_names.ids        # name -> id
        self.streams = self.stream_names.names         # id -> name
        self.metric_ids = self.metric_names.ids
        self.metrics = self.metric_names.names
        self.keys: list[tuple[str, str]] = []
        self._grid: Ints = np.full((0, 0), -1, np.int64)   # (stream id, metric id) -> row
        self._n_streams = 0                                # streams with per-stream arrays
        self._rows_of: dict[str, tuple[int, Ints]] = {}
        self.last_mids: Ints = np.zeros(0, np.int64)       # metric id per sample of last lookup
        self.row_metric: Ints = np.zeros(0, np.int64)
        # per row
        self.row_stream: Ints = np.zeros(0, np.int64)
        self.row_counter: np.ndarray = np.zeros(0, np.bool_)
        self.row_last_ts: Floats = np.zeros(0)       # newest event time admitted for the row
        self.row_value: Floats = np.zeros(0)         # newest raw value (gauge value / counter total)
        self.row_rate: Floats = np.zeros(0)          # newest gauge value or counter rate per minute
        self.row_expected: Floats = np.zeros(0)      # newest baseline expectation (rate per minute)
        self.cnt_ts: Floats = np.zeros(0)            # counter state for rates.py
        self.cnt_val: Floats = np.zeros(0)
        # per stream
        self.stream_newest: Floats = np.zeros(0)     # newest event time seen for the stream
        self.stream_first: Floats = np.zeros(0)      # first event time of the current broadcast
        self.stream_live: Ints = np.zeros(0, np.int64)  # -1 unknown, 0 ended, 1 on air

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def n_streams(self) -> int:
        return self._n_streams

    def stream_id(self, stream: str) -> int:
        sid = self.stream_names.intern(stream)
        n = sid + 1
        if len(self.stream_newest) < n or sid >= self._n_streams:
            self.stream_newest = _grow(self.stream_newest, n, -np.inf)
            self.stream_first = _grow(self.stream_first, n, np.nan)
            self.stream_live = _grow(self.stream_live, n, -1)
            self._n_streams = max(self._n_streams, n)
        return sid

    def metric_id(self, metric: str) -> int:
        return self.metric_names.intern(metric)

    def lookup(self, streams: Sequence[str], metrics: Sequence[str],
               sids: Ints | None = None, mids: Ints | None = None) -> tuple[Ints, list[int]]:
        """Row per sample, creating rows for new series; also the list of rows created.

        With ids from the parser (ingest/fastpath.py) this is one numpy gather; otherwise two
        C-level dict lookups per sample first. Python loops only over series never seen."""
        if sids is None or mids is None:
            sids = self.stream_names.lookup(list(streams))
            mids = self.metric_names.lookup(list(metrics))
        grid = self._grid
        if grid.shape[0] < len(self.streams) or grid.shape[1] < len(self.metrics):
            g = np.full((max(len(self.streams), 2 * grid.shape[0]),
                         max(len(self.metrics), 2 * grid.shape[1])), -1, np.int64)
            g[: grid.shape[0], : grid.shape[1]] = grid
            self._grid = grid = g
        rows = np.empty(len(sids), np.int64)
        created: list[int] = []
        if _gather(grid, sids, mids, rows):
            for sid in np.unique(sids[sids >= self._n_streams]).tolist():
                self.stream_id(self.streams[sid])
            missing = np.flatnonzero(rows < 0)
            key = sids[missing] * (grid.shape[1] + 1) + mids[missing]
            _, first = np.unique(key, return_index=True)
            first = missing[np.sort(first)]                  # arrival order numbers new rows
            for sid, mid in zip(sids[first].tolist(), mids[first].tolist()):
                r = self._add((self.streams[sid], self.metrics[mid]))
                grid[sid, mid] = r
                created.append(r)
            _gather(grid, sids, mids, rows)
        self.last_mids = mids
        return rows, created

    def _add(self, key: tuple[str, str]) -> int:
        r = len(self.keys)
        self.rows[key] = r
        self.keys.append(key)
        n = r + 1
        self.row_stream = _grow(self.row_stream, n, 0)
        self.row_counter = _grow(self.row_counter, n, False)
        self.row_last_ts = _grow(self.row_last_ts, n, -np.inf)
        self.row_value = _grow(self.row_value, n, np.nan)
        self.row_rate = _grow(self.row_rate, n, np.nan)
        self.row_expected = _grow(self.row_expected, n, np.nan)
        self.cnt_ts = _grow(self.cnt_ts, n, np.nan)
        self.cnt_val = _grow(self.cnt_val, n, np.nan)
        self.row_metric = _grow(self.row_metric, n, 0)
        self.row_metric[r] = self.metric_id(key[1])
        self.row_stream[r] = self.stream_id(key[0])
        self.row_counter[r] = is_counter(key[1])
        return r

    def rows_of_metric(self, metric: str) -> Ints:
        """Rows of one metric across streams (cached: rows only ever get added)."""
        got = self._rows_of.get(metric)
        if got is None or got[0] != len(self.keys):
            mid = self.metric_ids.get(metric, -1)
            got = (len(self.keys), np.flatnonzero(self.row_metric[: len(self.keys)] == mid))
            self._rows_of[metric] = got
        return got[1]

    def row_of(self, stream: str, metric: str) -> int | None:
        return self.rows.get((stream, metric))

    def latest(self, stream: str, metric: str) -> float:
        """Newest gauge value or counter rate per minute of a series, NaN if never seen."""
        r = self.rows.get((stream, metric))
        return float(self.row_rate[r]) if r is not None else float("nan")

    def expected(self, stream: str, metric: str) -> float:
        """The baseline's expectation for a series (rate per minute for counters), NaN if none."""
        r = self.rows.get((stream, metric))
        return float(self.row_expected[r]) if r is not None else float("nan")
