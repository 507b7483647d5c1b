"""Absence: a room on air whose every collector has stopped is itself a signal.

Judged on event time, sample by sample: a stream falls silent at the first sample (of any stream)
that pushes the watermark - the newest event time seen anywhere - more than `silence_after` seconds
past the newest sample of that stream, while the stream is on air (`live` = 1, or unknown while it
was reporting); it is back at its next sample. Checked each time the watermark enters a new
second, inside one pass over the batch, so where the input was cut into batches does not matter.
Streams that said goodbye (`live` = 0) are never silent; shared services are judged by their own
metrics, not by absence. The alert carries the watermark's event time, never the wall clock.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from streamwatch.types import Bools, Floats, Ints

__all__ = ["AbsenceCheck", "FELL", "BACK"]

FELL, BACK = 1, 2


@nb.njit(cache=True, nogil=True)
def _scan(sids, ts, ok, live_val, is_room, newest, on_air, silent, state, silence_after,
          out_idx, out_sid, out_kind, out_ts, out_newest):
    wm = state[0]
    checked = state[1]
    m = 0
    for i in range(len(sids)):
        if not ok[i]:
            continue
        s = sids[i]
        t = ts[i]
        if not np.isnan(live_val[i]):
            on_air[s] = 1 if live_val[i] > 0 else 0
        if t > newest[s]:
            newest[s] = t
        if silent[s]:
            silent[s] = False
            out_idx[m] = i; out_sid[m] = s; out_kind[m] = 2; out_ts[m] = t
            out_newest[m] = newest[s]; m += 1
        if t > wm:
            wm = t
            sec = np.floor(wm)
            if sec > checked:
                checked = sec
                for k in range(len(newest)):
                    if is_room[k] and on_air[k] != 0 and not silent[k] and newest[k] > -np.inf \
                            and wm - newest[k] > silence_after:
                        silent[k] = True
                        out_idx[m] = i; out_sid[m] = k; out_kind[m] = 1; out_ts[m] = wm
                        out_newest[m] = newest[k]; m += 1
                        if m >= len(out_idx):
                            state[0] = wm; state[1] = checked
                            return m
    state[0] = wm
    state[1] = checked
    return m


class AbsenceCheck:
    def __init__(self, silence_after: float = 25.0) -> None:
        self.silence_after = float(silence_after)
        self.newest = np.zeros(0)
        self.on_air = np.zeros(0, np.int64)
        self.silent = np.zeros(0, np.bool_)
        self.is_room = np.zeros(0, np.bool_)
        self.state = np.array([-np.inf, -np.inf])    # watermark, last second checked

    def add_streams(self, names: list[str]) -> None:
        n_old, n = len(self.newest), len(names)
        if n <= n_old:
            return
        def grow(a: np.ndarray, fill: object) -> np.ndarray:
            out = np.full(n, fill, dtype=a.dtype); out[:n_old] = a; return out
        self.newest = grow(self.newest, -np.inf)
        self.on_air = grow(self.on_air, -1)
        self.silent = grow(self.silent, False)
        self.is_room = grow(self.is_room, True)
        for k in range(n_old, n):
            self.is_room[k] = not names[k].startswith("svc:")

    def scan(self, sids: Ints, ts: Floats, ok: Bools, live_val: Floats
             ) -> list[tuple[int, int, int, float, float]]:
        """(batch index, stream id, FELL|BACK, event time, stream's newest sample) in order."""
        n = len(sids)
        cap = n + len(self.newest) + 1
        idx = np.empty(cap, np.int64); sid = np.empty(cap, np.int64)
        kind = np.empty(cap, np.int64); when = np.empty(cap); newest = np.empty(cap)
        m = _scan(sids, ts, ok, live_val, self.is_room, self.newest, self.on_air, self.silent,
                  self.state, self.silence_after, idx, sid, kind, when, newest)
        return list(zip(idx[:m].tolist(), sid[:m].tolist(), kind[:m].tolist(), when[:m].tolist(),
                        newest[:m].tolist()))
