"""Event-time admission: which samples are duplicates, too late, or merely out of order.

Lateness is judged per stream against the newest `ts` seen for that stream (CONTRACTS §2), never
against the wall clock, so a collector that backfills the last hour is processed like a replay.
Samples are processed in arrival order, one by one, so the result does not depend on how the input
was cut into batches: the live service and `replay` see the same thing.

Status per sample:
  OK        newer than anything seen for its series
  REORDERED older than the newest sample of its series but within `allowed_lateness` of the
            stream's newest: kept (a gauge is scored without moving time forward; a counter's
            interval already covers it, so its rate absorbs it)
  DUPLICATE same event time as the newest sample of its series: dropped, counted
  LATE      more than `allowed_lateness` behind the stream's newest: dropped, counted
"""
from __future__ import annotations

import numba as nb
import numpy as np

from streamwatch.types import Floats, Ints

__all__ = ["OK", "REORDERED", "DUPLICATE", "LATE", "admit"]

OK, REORDERED, DUPLICATE, LATE = 0, 1, 2, 3


@nb.njit(cache=True, nogil=True)
def _admit(rows: Ints, sids: Ints, ts: Floats, row_last_ts: Floats, stream_newest: Floats,
           allowed_lateness: float, out: Ints) -> None:
    for i in range(len(rows)):
        r = rows[i]
        s = sids[i]
        t = ts[i]
        newest = stream_newest[s]
        if t < newest - allowed_lateness:
            out[i] = LATE
            continue
        last = row_last_ts[r]
        if t == last:
            out[i] = DUPLICATE
            continue
        if t < last:
            out[i] = REORDERED
        else:
            out[i] = OK
            row_last_ts[r] = t
        if t > newest:
            stream_newest[s] = t


def admit(rows: Ints, sids: Ints, ts: Floats, row_last_ts: Floats, stream_newest: Floats,
          allowed_lateness: float) -> Ints:
    """Status per sample (module docstring); updates the newest-time arrays in place."""
    out = np.empty(len(rows), np.int64)
    _admit(rows, sids, ts, row_last_ts, stream_newest, float(allowed_lateness), out)
    return out
