"""GenericDetector: how rare is what the series does now, at several time scales, given its past?

v1 (experimental; the docstring is rewritten with the final algorithm).
"""
from __future__ import annotations

import math
from typing import ClassVar, Literal

import numba as nb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamwatch.detect.base import Scores
from streamwatch.types import Floats, Ints

__all__ = ["GenericDetector", "GenericParams", "score_series"]

NB = 64          # histogram bins of a feature's z (quarter-octaves from Z0)
Z0 = 0.25
BPO = 4.0        # bins per octave
RING = 512       # ring buffer of recent values (power of two > largest scale)


class GenericParams(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    levels: dict[int, float] = Field(default_factory=lambda: {3: 0.9999, 4: 0.999})
    direction: Literal["both", "up", "down"] = "both"
    scales: tuple[int, ...] = (1, 4, 16, 64)
    contrast: float = Field(default=8.0, gt=1.0)
    memory: int = Field(default=4096, ge=16)
    warmup: int = Field(default=30, ge=1)
    refractory: float = Field(default=0.0, ge=0.0)
    gate: float = Field(default=0.5, ge=0.0, le=1.0)

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or min(v) < 1 or max(v) >= RING:
            raise ValueError(f"scales must be in 1..{RING - 1}")
        return tuple(sorted(set(v)))


@nb.njit(cache=True, nogil=True)
def _bin(z):
    if z < Z0:
        return 0
    b = 1 + int(math.log2(z / Z0) * BPO)
    return b if b < NB - 1 else NB - 1


@nb.njit(cache=True, nogil=True)
def _kernel(rows, x, scales, a_base, a_long, decay_long, warmup, refr_decay, gate, dir_sign,
            n, ring, sums, base, dev, hist, htot, g, zmax, peak, quantum, lastx,
            out_score, out_exp):
    K = len(scales)
    logk = math.log10(K)
    for j in range(len(rows)):
        r = rows[j]
        v = x[j]
        i = n[r]
        if i == 0:
            ring[r, 0] = v
            for k in range(K):
                sums[r, k] = v
                base[r, k] = v
                dev[r, k] = 0.0
                htot[r, k] = 0.0
                zmax[r, k] = 0.0
                for b in range(NB):
                    hist[r, k, b] = 0.0
            g[r] = 1.0
            peak[r] = 0.0
            quantum[r] = np.inf
            lastx[r] = v
            n[r] = 1
            out_score[j] = 0.0
            out_exp[j] = v
            continue
        d = abs(v - lastx[r])
        if d > 0.0 and d < quantum[r]:
            quantum[r] = d
        floor = 1e-9 * abs(v) + 1e-300
        if quantum[r] < np.inf and 0.5 * quantum[r] > floor:
            floor = 0.5 * quantum[r]
        pos = i & (RING - 1)
        best = 0.0
        a_l = a_long if a_long > 1.0 / (i + 1.0) else 1.0 / (i + 1.0)
        gr = g[r] / decay_long
        for k in range(K):
            s = scales[k]
            if i >= s:
                old = ring[r, (i - s) & (RING - 1)]
                sums[r, k] += v - old
                m = sums[r, k] / s
            else:
                old = np.nan
                sums[r, k] += v
                m = sums[r, k] / (i + 1)
            zc = (m - base[r, k]) / (dev[r, k] + floor)
            if dir_sign > 0:
                z = zc if zc > 0.0 else 0.0
            elif dir_sign < 0:
                z = -zc if zc < 0.0 else 0.0
            else:
                z = abs(zc)
            # rarity of z among this feature's past z (decayed counts + one pseudo-sample)
            b0 = _bin(z)
            tail = 0.5 * hist[r, k, b0]
            for b in range(b0 + 1, NB):
                tail += hist[r, k, b]
            p = (tail + gr) / (htot[r, k] + gr)
            if z > zmax[r, k] and zmax[r, k] > 0.0:
                p *= zmax[r, k] / z
            sk = -math.log10(p)
            if sk > best:
                best = sk
            # learn
            hist[r, k, b0] += gr
            htot[r, k] += gr
            zm = zmax[r, k] * decay_long
            zmax[r, k] = z if z > zm else zm
            dev[r, k] += a_l * (abs(m - base[r, k]) - dev[r, k])
            if i >= s:
                base[r, k] += a_base[k] * (old - base[r, k])
            else:
                base[r, k] = sums[r, k] / (i + 1)
            if i & 1023 == 1023 and i >= s:   # re-add the window: no drift in running sums
                acc = 0.0
                for q in range(s):
                    acc += ring[r, (i - q) & (RING - 1)] if q > 0 else v
                sums[r, k] = acc
        ring[r, pos] = v
        lastx[r] = v
        n[r] = i + 1
        g[r] = gr
        if gr > 1e200:
            for k in range(K):
                htot[r, k] *= 1e-200
                for b in range(NB):
                    hist[r, k, b] *= 1e-200
            g[r] *= 1e-200
        sc = best - logk
        if sc < 0.0:
            sc = 0.0
        pk = peak[r] * refr_decay
        out = sc
        if refr_decay > 0.0 and sc < pk:
            out = sc * gate
        peak[r] = sc if sc > pk else pk
        if i < warmup:
            out = 0.0
        out_score[j] = 1.0 - 10.0 ** (-out)
        out_exp[j] = base[r, 0]


class GenericDetector:
    method: ClassVar[str] = "generic"
    Params: ClassVar[type[BaseModel]] = GenericParams

    def __init__(self, params: GenericParams | None = None) -> None:
        self.params = params or GenericParams()
        p = self.params
        items = sorted(p.levels.items(), key=lambda kv: -kv[1])
        self._thr = np.array([t for _, t in items], np.float64)
        self._thr_lvl = np.array([k for k, _ in items], np.int64)
        self._scales = np.array(p.scales, np.int64)
        self._a_base = np.array([1.0 - 0.5 ** (1.0 / (p.contrast * s)) for s in p.scales])
        self._dir = {"up": 1, "down": -1, "both": 0}[p.direction]
        self.n_rows = 0
        K = len(p.scales)
        self.n = np.zeros(0, np.int64)
        self.ring = np.zeros((0, RING)); self.sums = np.zeros((0, K)); self.base = np.zeros((0, K))
        self.dev = np.zeros((0, K)); self.hist = np.zeros((0, K, NB)); self.htot = np.zeros((0, K))
        self.g = np.zeros(0); self.zmax = np.zeros((0, K)); self.peak = np.zeros(0)
        self.quantum = np.zeros(0); self.lastx = np.zeros(0)

    def resize(self, n_rows: int) -> None:
        if n_rows <= self.n_rows:
            return
        def grow(a: np.ndarray) -> np.ndarray:
            out = np.zeros((n_rows,) + a.shape[1:], a.dtype)
            out[: len(a)] = a
            return out
        for name in ("n", "ring", "sums", "base", "dev", "hist", "htot", "g", "zmax", "peak",
                     "quantum", "lastx"):
            setattr(self, name, grow(getattr(self, name)))
        self.n_rows = n_rows

    def update_many(self, rows: Ints, ts: Floats, x: Floats, dt: Floats) -> Scores:
        p = self.params
        m = len(rows)
        score = np.empty(m); exp = np.empty(m)
        a_long = 1.0 - 0.5 ** (1.0 / p.memory)
        refr = 0.5 ** (1.0 / p.refractory) if p.refractory > 0 else 0.0
        _kernel(np.asarray(rows, np.int64), np.asarray(x, np.float64), self._scales,
                self._a_base, a_long, 0.5 ** (1.0 / p.memory), p.warmup, refr, p.gate, self._dir,
                self.n, self.ring, self.sums, self.base, self.dev, self.hist, self.htot, self.g,
                self.zmax, self.peak, self.quantum, self.lastx, score, exp)
        lvl = np.zeros(m, np.int64)
        for t, l in zip(self._thr[::-1], self._thr_lvl[::-1]):
            lvl[score >= t] = l
        return Scores(score, exp, lvl)

    def reset(self, rows: Ints) -> None:
        self.n[np.asarray(rows, np.int64)] = 0


def score_series(ts: np.ndarray, values: np.ndarray, params: GenericParams | None = None) -> np.ndarray:
    """Anomaly score in [0, 1] of every sample of one series (what `replay --scores` writes)."""
    det = GenericDetector(params)
    det.resize(1)
    v = np.asarray(values, np.float64)
    t = np.asarray(ts, np.float64)
    dt = np.r_[0.0, np.diff(t)] if len(t) else np.zeros(0)
    return det.update_many(np.zeros(len(v), np.int64), t, v, dt).score
