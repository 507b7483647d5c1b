"""Absence: a room on air whose every collector has stopped is itself a signal.

Judged on event time: a stream is silent when the newest event time seen from *any* stream (the
watermark) is more than `silence_after` seconds past the newest sample of that stream, and the
stream was on air (`live` = 1, or unknown while it was reporting). Streams that said goodbye
(`live` = 0) are never silent. Shared services are watched by their own metrics, not by absence.
"""
from __future__ import annotations

import numpy as np

from streamwatch.detect.table import SeriesTable

__all__ = ["AbsenceCheck"]


class AbsenceCheck:
    def __init__(self, table: SeriesTable, silence_after: float = 25.0) -> None:
        self.table = table
        self.silence_after = float(silence_after)
        self.silent = np.zeros(0, np.bool_)

    def check(self) -> tuple[float, list[int], list[int]]:
        """(watermark, streams that fell silent, streams that came back)."""
        t = self.table
        n = t.n_streams
        if len(self.silent) < n:
            s = np.zeros(n, np.bool_); s[: len(self.silent)] = self.silent; self.silent = s
        if n == 0:
            return -np.inf, [], []
        newest = t.stream_newest[:n]
        watermark = float(newest.max())
        rooms = np.array([not name.startswith("svc:") for name in t.streams], np.bool_)
        on_air = t.stream_live[:n] != 0
        gone = (watermark - newest > self.silence_after) & on_air & rooms
        fell = np.flatnonzero(gone & ~self.silent[:n]).tolist()
        back = np.flatnonzero(~gone & self.silent[:n]).tolist()
        self.silent[:n] = gone
        return watermark, fell, back
