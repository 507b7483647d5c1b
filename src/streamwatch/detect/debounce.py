"""Debouncer: per-sample severities -> the few moments an anomaly starts, worsens or ends.

Every method hands over one severity per sample; nobody wants a page per sample. A row becomes
*active* once it has been anomalous for `min_duration` (short dips of normal inside that run,
shorter than half of it, do not restart the clock), worsens when a more severe level is seen while
active, and clears after `clear_after` seconds without an anomalous sample. Only these transitions
leave the kernel, so Python work scales with incidents, not with samples.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from streamwatch.types import Floats, Ints

__all__ = ["Debouncer", "ONSET", "WORSE", "CLEAR"]

ONSET, WORSE, CLEAR = 1, 2, 3


@nb.njit(cache=True, nogil=True)
def _kernel(rows, ts, lvl, since, last_anom, active, act_lvl, min_dur, clear_after,
            out_idx, out_kind, out_lvl):
    m = 0
    for i in range(len(rows)):
        r = rows[i]
        t = ts[i]
        L = lvl[i]
        if L > 0:
            # a new run, unless this continues one (a silence longer than clear_after also ends it)
            if not active[r] and (np.isnan(since[r]) or t - last_anom[r] > clear_after):
                since[r] = t
            last_anom[r] = t
            if not active[r]:
                if t - since[r] >= min_dur:
                    active[r] = True
                    act_lvl[r] = L
                    out_idx[m] = i; out_kind[m] = 1; out_lvl[m] = L; m += 1
            elif L < act_lvl[r]:
                act_lvl[r] = L
                out_idx[m] = i; out_kind[m] = 2; out_lvl[m] = L; m += 1
        else:
            if active[r]:
                if t - last_anom[r] >= clear_after:
                    active[r] = False
                    act_lvl[r] = 0
                    since[r] = np.nan
                    out_idx[m] = i; out_kind[m] = 3; out_lvl[m] = 0; m += 1
            elif not np.isnan(since[r]) and t - last_anom[r] > 0.5 * min_dur:
                since[r] = np.nan
    return m


class Debouncer:
    """Transition state of one rule's rows."""

    def __init__(self, min_duration: float, clear_after: float) -> None:
        self.min_duration = float(min_duration)
        self.clear_after = float(clear_after)
        self.n = 0
        self.since = np.zeros(0); self.last_anom = np.zeros(0)
        self.active = np.zeros(0, np.bool_); self.level = np.zeros(0, np.int64)

    def resize(self, n_rows: int) -> None:
        if n_rows <= self.n:
            return
        def grow(a: np.ndarray, fill: object) -> np.ndarray:
            out = np.full(n_rows, fill, dtype=a.dtype); out[: len(a)] = a; return out
        self.since = grow(self.since, np.nan); self.last_anom = grow(self.last_anom, -np.inf)
        self.active = grow(self.active, False); self.level = grow(self.level, 0)
        self.n = n_rows

    def update_many(self, rows: Ints, ts: Floats, level: Ints) -> tuple[Ints, Ints, Ints]:
        """(sample index, kind ONSET|WORSE|CLEAR, level) of each transition, in order."""
        n = len(rows)
        idx = np.empty(n, np.int64); kind = np.empty(n, np.int64); lvl = np.empty(n, np.int64)
        m = _kernel(rows, ts, level, self.since, self.last_anom, self.active, self.level,
                    self.min_duration, self.clear_after, idx, kind, lvl)
        return idx[:m], kind[:m], lvl[:m]

    def force_clear(self, rows: Ints) -> Ints:
        """Rows that were active and are now cleared (stream ended or restarted)."""
        was = rows[self.active[rows]]
        self.active[rows] = False
        self.level[rows] = 0
        self.since[rows] = np.nan
        return was
