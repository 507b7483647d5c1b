"""GenericDetector: how rare is what the series does *now*, at several time scales, given its past?

The generic profile watches any metric outside the catalogue, and every NAB-layout CSV replay, so
it may know nothing about the series: not its unit, scale, spacing (1 s, 5 min, 1 h ...), noise
shape or seasonality. Everything is therefore measured in *samples* and in units of the series' own
recent variability, and every judgement is a rank against the series' own history.

Per row and per sample, in order (score first, then learn):

1. **Multi-scale shift features.** For each scale k (default 1, 8, 64, 256 samples) the mean of the
   last k values, m_k, is compared with a slow baseline B_k: an exponentially weighted mean of the
   values *leaving* that window (half-life `contrast`·k samples), so the window under test never
   leaks into its own reference. z_k = (m_k - B_k) / (D_k + q), where D_k is the exponentially
   weighted mean absolute deviation of m_k from B_k (half-life `memory` samples) and q is half the
   smallest non-zero step seen before this sample (integer counts, flat lines and rounded values
   do not produce infinite z). k = 1 catches spikes; larger k catch level shifts and drifts that
   are too small per sample.
2. **Rarity, learned per feature.** p_k = the forgotten-with-half-life-`memory` fraction of past
   z_k at least as large: a rank p-value kept in a 64-bin log-spaced histogram (suffix sums make it
   O(1) to read). Beyond the largest z seen it is extrapolated by z_max/z, and it is floored by
   exp(-z): the tail of a Laplace law whose scale is the measured mean absolute deviation. The
   floor matters early in a series, when any new record has a small rank p-value merely because
   history is short although it is unremarkable in absolute terms; it has no free parameter.
   Nothing is added to the histograms during the warm-up, while D_k is still meaningless.
3. **Evidence.** S = max_k(-log10 p_k) - log10 K (Bonferroni over the K features).
4. **Novelty gate (refractory).** S counts in full only when it exceeds the running peak of S,
   which decays with half-life `refractory` samples and is cleared once the series has been
   unremarkable (S < 1) for `rearm` consecutive samples; otherwise S is multiplied by `gate`. One
   incident therefore gives one strong onset instead of a score that stays high for every sample
   it lasts (NAB charges each flagged row outside a window; an operator wants the onset), and a
   new incident after a calm spell is reported afresh even if it is weaker than the last one.
5. **Score** = 1 - 10^-S in [0, 1): 0.99 means "about a 1-in-100 event for this series".
6. **Protection.** A sample whose S reaches the rule's most severe level (the highest threshold in
   `levels`) is not learned into the baselines B_k, so a long incident is not absorbed as the new
   normal before it is reported; its deviation still widens D_k, which is how the detector accepts
   a genuine, lasting level shift after a while.

Hyperparameters are generic, not fitted to any file: scales about x8 apart from one sample to 256
(a day at 5-minute spacing, four minutes at 1 s), a memory of 4096 samples (two weeks at 5
minutes), a refractory half-life of 1000 samples and a re-arm after 128 quiet ones; the Laplace
floor has no parameter. They were compared on a hand-copied subset of the Numenta Anomaly
Benchmark and checked on files held out from that comparison (benchmarks/nab/run.py).
Known blind spot: anomalies that are anomalous only in context (a normal value at an unusual time
of day) - there is no seasonal model, because the one tried (a time-of-day profile of the value)
did not help on that benchmark; a strictly periodic series with one sharp daily step scores that
step as a roughly 1-in-150 event every day.
"""
from __future__ import annotations

import math
from typing import ClassVar, Literal

import numba as nb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamwatch.detect.base import Scores
from streamwatch.types import Floats, Ints

__all__ = ["GenericDetector", "GenericParams", "score_series", "NB", "Z0", "BPO", "RING"]

NB = 64          # histogram bins of |z|: bin 0 below Z0, then quarter-octaves
Z0 = 0.25
BPO = 4.0        # bins per octave
RING = 512       # recent values kept per row (power of two, > the largest scale)
QUIET = 1.0      # evidence below this (p > 0.1) is "nothing notable" for re-arming


class GenericParams(BaseModel):
    """Hyperparameters of the generic profile (all counted in samples, none in seconds)."""
    model_config = ConfigDict(extra="ignore", frozen=True)
    levels: dict[int, float] = Field(default_factory=lambda: {3: 0.995, 4: 0.98})
    direction: Literal["both", "up", "down"] = "both"
    scales: tuple[int, ...] = (1, 8, 64, 256)
    contrast: float = Field(default=8.0, gt=1.0)       # baseline half-life / window length
    memory: int = Field(default=4096, ge=16)           # half-life of D_k and of the rank histograms
    warmup: int = Field(default=30, ge=1)              # samples scored 0 while learning starts
    refractory: float = Field(default=1000.0, ge=0.0)  # half-life of the novelty peak; 0 = off
    gate: float = Field(default=0.5, ge=0.0, le=1.0)   # factor on evidence below that peak
    rearm: int = Field(default=128, ge=0)              # quiet samples that clear it; 0 = never

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or min(v) < 1 or max(v) >= RING:
            raise ValueError(f"scales must be in 1..{RING - 1}")
        return tuple(sorted(set(v)))

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: dict[int, float]) -> dict[int, float]:
        if not v or not all(1 <= k <= 4 and 0.0 < t < 1.0 for k, t in v.items()):
            raise ValueError("levels: {level 1..4: score threshold in (0, 1)}")
        return v


@nb.njit(cache=True, nogil=True, inline="always")
def _bin(z: float) -> int:
    if z < Z0:
        return 0
    b = 1 + int(math.log2(z / Z0) * BPO)
    return b if b < NB - 1 else NB - 1


@nb.njit(cache=True, nogil=True)
def _init_row(r, v, n, ring, flag, sums, base, dev, hist, suf, zmax, g, peak, quiet, quantum,
              lastx):
    ring[r, 0] = v
    flag[r, :] = 0
    for k in range(sums.shape[1]):
        sums[r, k] = v
        base[r, k] = v
        dev[r, k] = 0.0
        zmax[r, k] = 0.0
        hist[r, k, :] = 0.0
        suf[r, k, :] = 0.0
    g[r] = 1.0
    peak[r] = 0.0
    quiet[r] = 0
    quantum[r] = np.inf
    lastx[r] = v
    n[r] = 1


@nb.njit(cache=True, nogil=True)
def _kernel(rows, x, scales, a_base, a_long, decay_long, warmup, refr_decay, gate, dir_sign,
            protect, rearm, n, ring, flag, sums, base, dev, hist, suf, zmax, g, peak, quiet,
            quantum, lastx, out_score, out_exp):  # pragma: no cover - compiled
    # mirrored, sample by sample, by tests/detect/reference_generic.py
    K = sums.shape[1]
    logk = math.log10(K)
    for j in range(len(rows)):
        r = rows[j]
        v = x[j]
        i = n[r]
        if not math.isfinite(v):            # never poisons state (upstream rejects these anyway)
            out_score[j] = 0.0
            out_exp[j] = base[r, 0] if i > 0 else np.nan
            continue
        if i == 0:
            _init_row(r, v, n, ring, flag, sums, base, dev, hist, suf, zmax, g, peak, quiet,
                      quantum, lastx)
            out_score[j] = 0.0
            out_exp[j] = v
            continue
        floor = 1e-9 * abs(v) + 1e-300      # quantisation floor: from steps seen *before* v
        if quantum[r] < np.inf and 0.5 * quantum[r] > floor:
            floor = 0.5 * quantum[r]
        pos = i & (RING - 1)
        a_l = max(a_long, 1.0 / (i + 1.0))  # plain average until `memory` samples are seen
        gr = g[r] / decay_long              # growing weight = forgetting without touching the bins
        best = 0.0
        for k in range(K):
            s = scales[k]
            full = i >= s
            if full:
                old = ring[r, (i - s) & (RING - 1)]
                sums[r, k] += v - old
                m = sums[r, k] / s
            else:
                old = 0.0
                sums[r, k] += v
                m = sums[r, k] / (i + 1)
            zc = (m - base[r, k]) / (dev[r, k] + floor)
            z = zc if dir_sign > 0 else (-zc if dir_sign < 0 else abs(zc))
            if z < 0.0:
                z = 0.0
            # score: rank p-value of z among this feature's past z, Laplace-floored
            b0 = _bin(z)
            above = 0.5 * hist[r, k, b0] + (suf[r, k, b0 + 1] if b0 + 1 < NB else 0.0)
            p = (above + gr) / (suf[r, k, 0] + gr)   # + one pseudo-observation at z
            zm = zmax[r, k]
            if z > zm > 0.0:
                p *= zm / z
            p = max(p, math.exp(-z))
            best = max(best, -math.log10(p))
            # learn (rarity only once D_k means something: not from the warm-up's z)
            if i >= warmup:
                hist[r, k, b0] += gr
                for b in range(b0 + 1):
                    suf[r, k, b] += gr
                zm *= decay_long
                zmax[r, k] = max(z, zm)
            dev[r, k] += a_l * (abs(m - base[r, k]) - dev[r, k])
            if not full:
                base[r, k] = m
            elif flag[r, (i - s) & (RING - 1)] == 0:
                base[r, k] += a_base[k] * (old - base[r, k])
            if i & 1023 == 1023 and full:        # re-add the window: no drift in running sums
                acc = v
                for q in range(1, s):
                    acc += ring[r, (i - q) & (RING - 1)]
                sums[r, k] = acc
        ring[r, pos] = v
        d = abs(v - lastx[r])
        if 0.0 < d < quantum[r]:
            quantum[r] = d
        lastx[r] = v
        n[r] = i + 1
        g[r] = gr
        if gr > 1e200:                        # rescale before the growing weight overflows
            hist[r] *= 1e-200
            suf[r] *= 1e-200
            g[r] *= 1e-200
        sc = max(best - logk, 0.0)
        flag[r, pos] = 1 if (sc >= protect and i >= warmup) else 0
        pk = peak[r] * refr_decay
        if sc < QUIET:                        # nothing notable: count towards re-arming
            quiet[r] += 1
            if rearm > 0 and quiet[r] >= rearm:
                pk = 0.0
        else:
            quiet[r] = 0
        out = sc if (refr_decay == 0.0 or sc >= pk) else sc * gate
        peak[r] = max(sc, pk)
        if i < warmup:
            out = 0.0
        out_score[j] = 1.0 - 10.0 ** (-out)
        out_exp[j] = base[r, 0]


class GenericDetector:
    """The generic profile's method (see the module docstring); state is numpy arrays by row."""
    method: ClassVar[str] = "generic"
    Params: ClassVar[type[BaseModel]] = GenericParams

    _STATE = ("n", "ring", "flag", "sums", "base", "dev", "hist", "suf", "zmax", "g", "peak",
              "quiet", "quantum", "lastx")

    def __init__(self, params: GenericParams | None = None) -> None:
        self.params = params or GenericParams()
        p = self.params
        items = sorted(p.levels.items(), key=lambda kv: -kv[1])
        self._thr = np.array([t for _, t in items], np.float64)
        self._thr_lvl = np.array([k for k, _ in items], np.int64)
        self._protect = -math.log10(1.0 - max(p.levels.values()))
        self._scales = np.array(p.scales, np.int64)
        self._a_base = np.array([1.0 - 0.5 ** (1.0 / (p.contrast * s)) for s in p.scales])
        self._a_long = 1.0 - 0.5 ** (1.0 / p.memory)
        self._decay_long = 0.5 ** (1.0 / p.memory)
        self._refr = 0.5 ** (1.0 / p.refractory) if p.refractory > 0 else 0.0
        self._dir = {"up": 1, "down": -1, "both": 0}[p.direction]
        K = len(p.scales)
        self.n_rows = 0
        self.n = np.zeros(0, np.int64)
        self.ring = np.zeros((0, RING)); self.flag = np.zeros((0, RING), np.uint8)
        self.sums = np.zeros((0, K)); self.base = np.zeros((0, K)); self.dev = np.zeros((0, K))
        self.hist = np.zeros((0, K, NB)); self.suf = np.zeros((0, K, NB))
        self.zmax = np.zeros((0, K)); self.g = np.zeros(0); self.peak = np.zeros(0)
        self.quiet = np.zeros(0, np.int64)
        self.quantum = np.zeros(0); self.lastx = np.zeros(0)

    def resize(self, n_rows: int) -> None:
        """Make room for rows 0..n_rows-1; existing rows keep their state."""
        if n_rows <= self.n_rows:
            return
        for name in self._STATE:
            a = getattr(self, name)
            out = np.zeros((n_rows,) + a.shape[1:], a.dtype)
            out[: len(a)] = a
            setattr(self, name, out)
        self.n_rows = n_rows

    def update_many(self, rows: Ints, ts: Floats, x: Floats, dt: Floats) -> Scores:
        """Score then learn each sample in order; `ts` and `dt` are unused (sample counts rule)."""
        m = len(rows)
        score = np.empty(m)
        exp = np.empty(m)
        _kernel(np.ascontiguousarray(rows, np.int64), np.ascontiguousarray(x, np.float64),
                self._scales, self._a_base, self._a_long, self._decay_long, self.params.warmup,
                self._refr, self.params.gate, self._dir, self._protect, self.params.rearm,
                self.n, self.ring, self.flag, self.sums, self.base, self.dev, self.hist, self.suf,
                self.zmax, self.g, self.peak, self.quiet, self.quantum, self.lastx, score, exp)
        return Scores(score, exp, self.levels_of(score))

    def levels_of(self, score: Floats) -> Ints:
        """Severity of each score alone: the most severe level whose threshold it reaches."""
        lvl = np.zeros(len(score), np.int64)
        for t, l in zip(self._thr[::-1], self._thr_lvl[::-1]):  # ascending thresholds
            lvl[score >= t] = l
        return lvl

    def reset(self, rows: Ints) -> None:
        """Forget what these rows learned (their next sample starts them afresh)."""
        self.n[np.asarray(rows, np.int64)] = 0


def score_series(ts: np.ndarray, values: np.ndarray,
                 params: GenericParams | None = None) -> np.ndarray:
    """Anomaly score in [0, 1] of every sample of one series, in order (`replay --scores`)."""
    det = GenericDetector(params)
    det.resize(1)
    v = np.asarray(values, np.float64)
    t = np.asarray(ts, np.float64)
    dt = np.r_[0.0, np.diff(t)] if len(t) else np.zeros(0)
    return det.update_many(np.zeros(len(v), np.int64), t, v, dt).score
