"""The public simulator: plan a session from a seed, then stream its samples in arrival order.

Construction decides everything that is ground truth (scenario, artifacts, labels); generation
walks the session in fixed chunks of event time, asks every room and service for the samples
taken in that chunk, and releases them in *arrival* order.  Since a sample never arrives before
it is taken, every sample arriving before the chunk's end is final once the chunk is generated;
later arrivals (network delay, planned late deliveries, duplicates) wait in a small buffer.
Memory is bounded by one chunk plus the in-flight late samples, whatever the session length, so
the live demo can pull from it tick by tick.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np

from streamwatch.sim.artifacts import plan_artifacts
from streamwatch.sim.collectors import METRICS, absolute_ts
from streamwatch.sim.labels import build_labels
from streamwatch.sim.rooms import Batch, RoomRuntime
from streamwatch.sim.scenario import Scenario, plan_scenario
from streamwatch.sim.services import ServiceRuntime

__all__ = ["Simulator", "DEFAULT_START_TS"]

DEFAULT_START_TS = 1767225600.0        # 2026-01-01T00:00:00Z
CHUNK_S = 120
_LABELLED = frozenset({METRICS.index("viewers"), METRICS.index("live")})


def _typical_load(sc: Scenario) -> tuple[float, float]:
    """Mean total orders/s and total audience over the session (service CPU normalisers)."""
    times = np.arange(0.0, sc.session_s, 300.0) + 1.0
    orders = [sum(sc.orders_pm(r, float(t)) for r in sc.rooms) / 60.0 for t in times]
    viewers = [sum(sc.viewers(r, float(t)) for r in sc.rooms) for t in times]
    return float(np.mean(orders)) if orders else 1.0, float(np.mean(viewers)) if viewers else 1.0


class Simulator:
    """A deterministic livestream session: ``rooms`` rooms plus shared services for ``minutes``.

    ``labels()`` is available right after construction; ``samples()`` and ``iter_ticks()`` each
    start a fresh, identical generation run (the same seed always gives the same bytes).
    """

    def __init__(self, seed: int, rooms: int, minutes: float,
                 start_ts: float = DEFAULT_START_TS) -> None:
        if rooms < 0:
            raise ValueError("rooms must be >= 0")
        if not minutes > 0:
            raise ValueError("minutes must be > 0")
        self.seed, self.rooms, self.minutes = int(seed), int(rooms), float(minutes)
        self.start_ts = float(start_ts)
        self.session_s = self.minutes * 60.0
        self._scenario = plan_scenario(self._rng(0), self.rooms, self.minutes)
        self._artifacts = plan_artifacts(self._rng(1), self._scenario)
        self._labels = build_labels(self._scenario, self._artifacts, seed=self.seed,
                                    rooms=self.rooms, minutes=minutes, start_ts=self.start_ts)
        self._streams = [r.stream for r in self._scenario.rooms] + [
            s.stream for s in self._scenario.services]
        self._platforms = [r.platform for r in self._scenario.rooms]

    def _rng(self, *key: int) -> np.random.Generator:
        """An independent stream per purpose, reproducible without shared mutable state."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def labels(self) -> dict[str, Any]:
        """Ground truth (labels.json), a fresh copy the caller may modify."""
        return copy.deepcopy(self._labels)

    def _runtimes(self) -> tuple[list[RoomRuntime], list[ServiceRuntime]]:
        sc = self._scenario
        ev = sc.by_stream()
        rooms = [RoomRuntime(r, ev.get(r.stream, []), self._artifacts, self._rng(2, i),
                             sc.session_s) for i, r in enumerate(sc.rooms)]
        orders, viewers = _typical_load(sc)
        services = [ServiceRuntime(s, ev.get(s.stream, []), self._artifacts, self._rng(3, i),
                                   sc.session_s, orders if s.load == "orders" else viewers)
                    for i, s in enumerate(sc.services)]
        return rooms, services

    def _chunks(self) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
        """(relative arrival times, samples) per chunk, both in arrival order."""
        rooms, services = self._runtimes()
        n_rooms = len(rooms)
        stream_names = np.array(self._streams, dtype=object)
        metric_names = np.array(METRICS, dtype=object)
        total = int(np.ceil(self.session_s))
        pend = (np.empty(0), np.empty(0), np.empty(0), np.empty(0, np.int64),
                np.empty(0, np.int64))
        for a in range(0, total, CHUNK_S):
            b = min(a + CHUNK_S, total)
            parts: list[tuple[Batch, int]] = []
            orders = np.zeros(b - a)
            audience = np.zeros(b - a)
            for sid, rt in enumerate(rooms):
                batches, o, v = rt.chunk(a, b)
                orders += o
                audience += v
                parts.extend((bt, sid) for bt in batches)
            for j, st in enumerate(services):
                parts.extend((bt, n_rooms + j) for bt in st.chunk(a, b, orders, audience))
            arr = np.concatenate([pend[0]] + [p.arrival for p, _ in parts])
            ts = np.concatenate([pend[1]] + [p.ts for p, _ in parts])
            val = np.concatenate([pend[2]] + [p.value for p, _ in parts])
            mid = np.concatenate([pend[3]] + [p.metric for p, _ in parts])
            sid_ = np.concatenate([pend[4]] + [np.full(p.ts.size, s, np.int64) for p, s in parts])
            order = np.argsort(arr, kind="stable")
            arr, ts, val, mid, sid_ = arr[order], ts[order], val[order], mid[order], sid_[order]
            cut = arr.size if b >= total else int(np.searchsorted(arr, float(b), side="left"))
            pend = (arr[cut:], ts[cut:], val[cut:], mid[cut:], sid_[cut:])
            yield arr[:cut], self._dicts(stream_names, metric_names, ts[:cut], val[:cut],
                                         mid[:cut], sid_[:cut], n_rooms)

    def _dicts(self, stream_names: np.ndarray, metric_names: np.ndarray, ts: np.ndarray,
               val: np.ndarray, mid: np.ndarray, sid: np.ndarray,
               n_rooms: int) -> list[dict[str, Any]]:
        out = [{"stream": s, "metric": m, "ts": t, "value": v} for s, m, t, v in zip(
            stream_names[sid].tolist(), metric_names[mid].tolist(),
            absolute_ts(self.start_ts, ts).tolist(), val.tolist())]
        flagged = np.flatnonzero(np.isin(mid, list(_LABELLED)) & (sid < n_rooms))
        for i, s in zip(flagged.tolist(), sid[flagged].tolist()):
            out[i]["labels"] = {"platform": self._platforms[s]}
        return out

    def samples(self) -> Iterator[dict[str, Any]]:
        """Every sample of the session in arrival order, lazily (a fresh run per call)."""
        for _, batch in self._chunks():
            yield from batch

    def iter_ticks(self, tick_s: float = 1.0) -> Iterator[tuple[float, list[dict[str, Any]]]]:
        """(event time at the tick's end, samples arriving within the tick) - the same samples as
        ``samples()``, grouped for a live feed.  Empty ticks are yielded too, so a consumer can
        advance its clock; ticks run at least to the session's end, then until all are out."""
        if not tick_s > 0:
            raise ValueError("tick_s must be > 0")
        k = 1
        buf: list[dict[str, Any]] = []
        for arr, batch in self._chunks():
            pos = 0
            while pos < len(batch):
                edge = k * tick_s
                cut = int(np.searchsorted(arr, edge, side="left"))
                if cut >= len(batch):
                    buf.extend(batch[pos:])
                    break
                buf.extend(batch[pos:cut])
                pos = cut
                yield self.start_ts + edge, buf
                buf, k = [], k + 1
        while k * tick_s < self.session_s or buf:
            yield self.start_ts + k * tick_s, buf
            buf, k = [], k + 1
