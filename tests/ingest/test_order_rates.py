"""Event-time admission and counter rates: duplicates, lateness, disorder, resets."""
from __future__ import annotations

import numpy as np

from streamwatch.ingest.order import DUPLICATE, LATE, OK, REORDERED, admit
from streamwatch.ingest.rates import to_observations


def _admit(rows: list[int], sids: list[int], ts: list[float], lateness: float = 30.0):  # type: ignore[no-untyped-def]
    row_last = np.full(4, -np.inf)
    newest = np.full(2, -np.inf)
    st = admit(np.array(rows, np.int64), np.array(sids, np.int64), np.array(ts, float),
               row_last, newest, lateness)
    return st.tolist(), newest


def test_in_order_samples_are_ok() -> None:
    st, newest = _admit([0, 0, 1], [0, 0, 0], [10, 20, 21])
    assert st == [OK, OK, OK] and newest[0] == 21


def test_same_event_time_twice_is_a_duplicate() -> None:
    st, _ = _admit([0, 0, 0], [0, 0, 0], [10, 20, 20])
    assert st == [OK, OK, DUPLICATE]


def test_older_within_lateness_is_reordered_not_dropped() -> None:
    st, _ = _admit([0, 0, 0], [0, 0, 0], [10, 40, 25])
    assert st == [OK, OK, REORDERED]


def test_lateness_is_judged_per_stream_not_per_series() -> None:
    # series 1 is new, but its stream already saw t=100: 60 s behind is late
    st, _ = _admit([0, 1], [0, 0], [100, 40])
    assert st == [OK, LATE]


def test_streams_do_not_make_each_other_late() -> None:
    st, _ = _admit([0, 2], [0, 1], [1000, 10])
    assert st == [OK, OK]


def test_backfill_in_order_is_processed_like_a_replay() -> None:
    ts = [1_700_000_000 + 10 * i for i in range(360)]   # an hour, arriving all at once
    st, _ = _admit([0] * 360, [0] * 360, ts)
    assert set(st) == {OK}


def _obs(values: list[float], ts: list[float], counter: bool = True,
         status: list[int] | None = None):  # type: ignore[no-untyped-def]
    n = len(values)
    return to_observations(np.zeros(n, np.int64), np.array(ts, float), np.array(values, float),
                           np.array(status or [OK] * n, np.int64), np.array([counter]),
                           np.full(1, np.nan), np.full(1, np.nan))


def test_counter_increments_and_intervals() -> None:
    x, dt, valid, resets = _obs([100, 110, 130], [0, 10, 30])
    assert valid.tolist() == [False, True, True]
    assert x[1:].tolist() == [10, 20] and dt[1:].tolist() == [10, 20] and resets == 0


def test_counter_reset_counts_from_zero_like_promql_rate() -> None:
    x, _, valid, resets = _obs([500, 520, 7, 12], [0, 10, 20, 30])
    assert x[2] == 7 and x[3] == 5 and resets == 1 and valid[2]


def test_out_of_order_counter_sample_is_absorbed() -> None:
    x, _, valid, resets = _obs([100, 130, 120], [0, 20, 10], status=[OK, OK, REORDERED])
    assert valid.tolist() == [False, True, False] and resets == 0


def test_dropped_samples_give_no_observation() -> None:
    _, _, valid, _ = _obs([1, 2, 3], [0, 10, 10], counter=False, status=[OK, OK, DUPLICATE])
    assert valid.tolist() == [True, True, False]


def test_reordered_gauge_is_scored_without_moving_time() -> None:
    x, dt, valid, _ = _obs([5, 6, 7], [0, 10, 5], counter=False, status=[OK, OK, REORDERED])
    assert valid.all() and dt.tolist() == [0, 10, 0] and x.tolist() == [5, 6, 7]
