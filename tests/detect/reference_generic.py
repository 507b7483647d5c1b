"""A slow, per-sample, plain-Python GenericDetector for one series: the test oracle.

Written from the algorithm in `streamwatch.detect.generic`'s docstring, not from its kernel:
window means are summed directly from a deque (no running sums), the rank tail is summed bin by
bin (no suffix sums) and everything is a Python float, so a bookkeeping slip in the vectorised
numba kernel shows up as a disagreement with this file. The seasonal envelope is a dict of every
2-hour slot seen (no ring, no cache) and is hulled afresh for every sample.
"""
from __future__ import annotations

import math
from collections import deque

from streamwatch.detect.generic import BPO, NB, QUIET, SLOT, Z0, GenericParams

__all__ = ["ReferenceGeneric"]


def _bin(z: float) -> int:
    if z < Z0:
        return 0
    return min(1 + int(math.log2(z / Z0) * BPO), NB - 1)


class ReferenceGeneric:
    """One series; `update(x, t)` returns the score of x at epoch second t (scored before x is
    learned)."""

    def __init__(self, params: GenericParams | None = None) -> None:
        p = params or GenericParams()
        self.p = p
        self.scales = list(p.scales)
        self.a_base = [1.0 - 0.5 ** (1.0 / (p.contrast * s)) for s in self.scales]
        self.a_long = 1.0 - 0.5 ** (1.0 / p.memory)
        self.decay = 0.5 ** (1.0 / p.memory)
        self.refr = 0.5 ** (1.0 / p.refractory) if p.refractory > 0 else 0.0
        self.protect = -math.log10(1.0 - max(p.levels.values()))
        self.sign = {"up": 1, "down": -1, "both": 0}[p.direction]
        self.i = 0

    def _start(self, v: float) -> None:
        K = len(self.scales)
        self.recent: deque[tuple[float, bool]] = deque([(v, False)], maxlen=max(self.scales) + 1)
        self.base = [v] * K
        self.dev = [0.0] * K
        self.hist = [[0.0] * NB for _ in range(K)]
        self.zmax = [0.0] * K
        self.weight = 1.0
        self.peak = 0.0
        self.quiet = 0
        self.quantum = math.inf
        self.last = v
        self.slots: dict[int, list[float]] = {}     # slot -> [min, max] of its values
        self.per_day = round(86400.0 / SLOT)
        self.sdev = 0.0
        self.scount = 0
        self.i = 1

    def _learn_slot(self, h: int | None, v: float) -> None:
        if h is not None and self.p.season_days > 0:
            lo, hi = self.slots.get(h, [v, v])
            self.slots[h] = [min(lo, v), max(hi, v)]

    def _envelope(self, h: int) -> tuple[float, float] | None:
        seen = [self.slots[h - self.per_day * d + o] for d in range(1, self.p.season_days + 1)
                for o in range(-self.p.season_slots, self.p.season_slots + 1)
                if h - self.per_day * d + o in self.slots]
        if not seen:
            return None
        return min(lo for lo, _ in seen), max(hi for _, hi in seen)

    def update(self, v: float, t: float = math.nan) -> float:
        if not math.isfinite(v):
            return 0.0
        slot = math.floor(t / SLOT) if math.isfinite(t) else None
        if self.i == 0:
            self._start(v)
            self._learn_slot(slot, v)
            return 0.0
        i = self.i
        floor = 1e-9 * abs(v) + 1e-300
        if self.quantum < math.inf:
            floor = max(floor, 0.5 * self.quantum)
        a_l = max(self.a_long, 1.0 / (i + 1.0))
        w = self.weight / self.decay
        window = [x for x, _ in self.recent] + [v]            # oldest ... newest
        best = 0.0
        for k, s in enumerate(self.scales):
            full = i >= s
            m = sum(window[-s:]) / s if full else sum(window) / (i + 1)
            zc = (m - self.base[k]) / (self.dev[k] + floor)
            z = max(zc if self.sign > 0 else (-zc if self.sign < 0 else abs(zc)), 0.0)
            b0 = _bin(z)
            h = self.hist[k]
            above = 0.5 * h[b0] + sum(h[b0 + 1:])
            p = (above + w) / (sum(h) + w)
            if z > self.zmax[k] > 0.0:
                p *= self.zmax[k] / z
            p = max(p, math.exp(-z))
            best = max(best, -math.log10(p))
            # learn; the rarity of z only after the warm-up (D_k is meaningless before)
            if i >= self.p.warmup:
                h[b0] += w
                self.zmax[k] = max(z, self.zmax[k] * self.decay)
            self.dev[k] += a_l * (abs(m - self.base[k]) - self.dev[k])
            if not full:
                self.base[k] = m
            else:
                leaving, flagged = self.recent[-s]
                if not flagged:
                    self.base[k] += self.a_base[k] * (leaving - self.base[k])
        self.weight = w
        if w > 1e200:
            self.hist = [[c * 1e-200 for c in h] for h in self.hist]
            self.weight *= 1e-200
        sc = max(best - math.log10(len(self.scales)), 0.0)
        env = self._envelope(slot) if (slot is not None and self.p.season_days > 0) else None
        if env is not None:
            lo, hi = env
            excess = lo - v if v < lo else (v - hi if v > hi else 0.0)
            if self.scount >= self.p.warmup:
                sc = min(sc, math.log10(math.e) * excess / (self.sdev + floor))
            self.scount += 1
            self.sdev += max(self.a_long, 1.0 / self.scount) * (excess - self.sdev)
        self._learn_slot(slot, v)
        self.recent.append((v, sc >= self.protect and i >= self.p.warmup))
        if 0.0 < abs(v - self.last) < self.quantum:
            self.quantum = abs(v - self.last)
        self.last = v
        self.i = i + 1
        pk = self.peak * self.refr
        if sc < QUIET:
            self.quiet += 1
            if self.p.rearm > 0 and self.quiet >= self.p.rearm:
                pk = 0.0
        else:
            self.quiet = 0
        out = sc if (self.refr == 0.0 or sc >= pk) else sc * self.p.gate
        self.peak = max(sc, pk)
        if i < self.p.warmup:
            out = 0.0
        return 1.0 - 10.0 ** (-out)
