"""Counters (`*_total`) -> increments over intervals, with PromQL `rate()` semantics.

A counter is cumulative and may restart from 0 when its collector restarts: a value lower than the
previous one is a reset, and the increment is the new value itself (what was counted since the
restart), exactly as Prometheus' `rate()` treats it. The first sample of a series, and a sample
older than the newest (out of order), give no interval: the detectors see nothing for them.

Gauges pass through: x is the value and dt the time since the row's previous sample (0 for an
out-of-order one, so it is scored but does not advance time).
"""
from __future__ import annotations

import numba as nb
import numpy as np

from streamwatch.types import Bools, Floats, Ints

__all__ = ["to_observations"]


@nb.njit(cache=True, nogil=True)
def _observe(rows: Ints, ts: Floats, v: Floats, status: Ints, counter: Bools,
             last_ts: Floats, last_val: Floats, x: Floats, dt: Floats, valid: Bools,
             resets: Ints) -> None:
    for i in range(len(rows)):
        r = rows[i]
        st = status[i]
        valid[i] = False
        if st >= 2:                     # duplicate or late: dropped upstream
            continue
        t = ts[i]
        prev_t = last_ts[r]
        if counter[r]:
            if st == 1:                 # out of order: the newer interval already covers it
                continue
            if np.isnan(prev_t):
                last_ts[r] = t
                last_val[r] = v[i]
                continue
            inc = v[i] - last_val[r]
            if inc < 0.0:
                inc = v[i]
                resets[0] += 1
            x[i] = inc
            dt[i] = t - prev_t
            last_ts[r] = t
            last_val[r] = v[i]
            valid[i] = True
        else:
            x[i] = v[i]
            if st == 1 or np.isnan(prev_t):
                dt[i] = 0.0
            else:
                dt[i] = t - prev_t
            if st == 0:
                last_ts[r] = t
            valid[i] = True


def to_observations(rows: Ints, ts: Floats, values: Floats, status: Ints, counter: Bools,
                    last_ts: Floats, last_val: Floats) -> tuple[Floats, Floats, Bools, int]:
    """(x, dt, valid, n_resets) per sample; counter state arrays are updated in place."""
    n = len(rows)
    x = np.zeros(n)
    dt = np.zeros(n)
    valid = np.zeros(n, np.bool_)
    resets = np.zeros(1, np.int64)
    _observe(rows, ts, values, status, counter, last_ts, last_val, x, dt, valid, resets)
    return x, dt, valid, int(resets[0])
