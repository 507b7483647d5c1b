"""GenericDetector: how rare is what the series does *now*, at several time scales, given its past?

The generic profile watches any metric outside the catalogue, and every NAB-layout CSV replay, so
it may know nothing about the series: not its unit, scale, spacing (1 s, 5 min, 1 h ...), noise
shape or seasonality. Everything is therefore measured in *samples* and in units of the series' own
recent variability, and every judgement is a rank against the series' own history. The one use of
the wall clock is the seasonal envelope (step 4): daily and weekly rhythms are wall-clock facts.

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
4. **Seasonal second opinion.** The wall clock is cut into 2-hour slots, and each slot keeps the
   min and max of the values seen in it over the last `season_days` days (+ one). The envelope
   [lo, hi] of the current time is the hull of the slots within `season_slots` slots (default
   +-2, i.e. about +-4..6 hours) of the same time on each of the last `season_days` days (default
   14: two of each weekday). E = the distance of x outside [lo, hi] (0 inside), in units of its
   own exponentially weighted mean (half-life `memory`, floored by q as in step 1), read as a
   Laplace tail: S_season = log10(e) * E / (mean E + q). Then S = min(S, S_season): a sample is
   evidence only if it is rare for the recent past *and* outside what the series did around this
   time of day in the last two weeks. This removes the main source of false alarms of a per-sample
   rarity - things that happen every day (a nightly batch job's spike, the morning ramp, a tweet
   burst at the usual hour) are each a 1-in-300 sample at 5-minute spacing, rare per sample but
   not news. A series without a daily rhythm loses little: its envelope is simply the range seen
   over about a third of each past day, so only values outside all of those are evidence. The
   opinion is given once `warmup` samples had an envelope (after the first day); before that, and
   for samples without a finite timestamp, S stands alone.
5. **Novelty gate (refractory).** S counts in full only when it exceeds the running peak of S,
   which decays with half-life `refractory` samples and is cleared once the series has been
   unremarkable (S < 1) for `rearm` consecutive samples; otherwise S is multiplied by `gate`. One
   incident therefore gives one strong onset instead of a score that stays high for every sample
   it lasts (NAB charges each flagged row outside a window; an operator wants the onset), and a
   new incident after a calm spell is reported afresh even if it is weaker than the last one.
6. **Score** = 1 - 10^-S in [0, 1): 0.99 means "about a 1-in-100 event for this series".
7. **Protection.** A sample whose S reaches the rule's most severe level (the highest threshold in
   `levels`) is not learned into the baselines B_k, so a long incident is not absorbed as the new
   normal before it is reported; its deviation still widens D_k, which is how the detector accepts
   a genuine, lasting level shift after a while.

Hyperparameters are generic, not fitted to any file: scales about x8 apart from one sample to 256
(a day at 5-minute spacing, four minutes at 1 s), a memory of 4096 samples (two weeks at 5
minutes), a refractory half-life of 1000 samples, a gate of 0.3 and a re-arm after 128 quiet
ones, a two-week seasonal envelope +-2 slots wide; the Laplace floors have no parameter. They were
compared on one fixed half of the Numenta Anomaly Benchmark files and kept only if they did not
hurt the other half (benchmarks/nab/README.md). On that benchmark the seasonal second opinion
was the one large gain (about +9 points); a time-of-day *profile* of the value (subtracting a
learned daily curve before step 1) was tried before and lost points, because most series are not
a clean curve plus noise: their daily rhythm is in what *range* is usual when.
Known blind spots: anomalies that are anomalous only in context (a value that would be normal at
another time of day) are not scored higher for it - the envelope only vetoes; an incident that
recurs at the same hour on consecutive days is reported on the first day only; an envelope of
+-4..6 hours is too wide for series whose rhythm changes faster than that; memory: the slots add
12 x (season_days + 1) x 16 bytes per row (2.9 kB at 14 days).
"""
from __future__ import annotations

import math
from typing import ClassVar, Literal

import numba as nb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamwatch.detect.base import Scores
from streamwatch.types import Floats, Ints

__all__ = ["GenericDetector", "GenericParams", "score_series", "NB", "Z0", "BPO", "RING", "SLOT",
           "LOG10E"]

NB = 64          # histogram bins of |z|: bin 0 below Z0, then quarter-octaves
Z0 = 0.25
BPO = 4.0        # bins per octave
RING = 512       # recent values kept per row (power of two, > the largest scale)
QUIET = 1.0      # evidence below this (p > 0.1) is "nothing notable" for re-arming
SLOT = 7200.0    # seconds of wall clock per seasonal slot (the envelope's resolution)
DAY_SLOTS = 12   # slots per day
NO_SLOT = -(1 << 62)
LOG10E = math.log10(math.e)


class GenericParams(BaseModel):
    """Hyperparameters of the generic profile (all counted in samples, none in seconds)."""
    model_config = ConfigDict(extra="ignore", frozen=True)
    # score thresholds in (0, 1): 0.99 = about a 1-in-100 event for this series
    levels: dict[int, float] = Field(default_factory=lambda: {3: 0.995, 4: 0.98})
    direction: Literal["both", "up", "down"] = "both"
    scales: tuple[int, ...] = (1, 8, 64, 256)          # window lengths tested, in samples
    contrast: float = Field(default=8.0, gt=1.0)       # baseline half-life / window length
    memory: int = Field(default=4096, ge=16)           # half-life of D_k and of the rank histograms
    warmup: int = Field(default=30, ge=1)              # samples scored 0 while learning starts
    refractory: float = Field(default=1000.0, ge=0.0)  # half-life of the novelty peak; 0 = off
    gate: float = Field(default=0.3, ge=0.0, le=1.0)   # factor on evidence below that peak
    rearm: int = Field(default=128, ge=0)              # quiet samples that clear it; 0 = never
    season_days: int = Field(default=14, ge=0, le=28)  # days of wall-clock envelope; 0 = off
    season_slots: int = Field(default=2, ge=0, le=DAY_SLOTS - 1)  # 2-hour slots either side

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
              lastx, smin, smax, slast, env_id, env_lo, env_hi, sdev, scount):
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
    smin[r, :] = np.inf
    smax[r, :] = -np.inf
    slast[r] = NO_SLOT
    env_id[r] = NO_SLOT
    env_lo[r] = np.inf
    env_hi[r] = -np.inf
    sdev[r] = 0.0
    scount[r] = 0
    n[r] = 1


@nb.njit(cache=True, nogil=True, inline="always")
def _slot_of(t: float) -> int:
    return int(math.floor(t / SLOT)) if math.isfinite(t) else NO_SLOT


@nb.njit(cache=True, nogil=True)
def _season(r, h, days, half, smin, smax, slast, env_id, env_lo, env_hi):
    """Open slot h (emptying the slots skipped since the last one) and return the envelope
    [lo, hi] of slots h - DAY_SLOTS*d +- half, d = 1..days (cached per slot h)."""
    ns = smin.shape[1]
    if h > slast[r]:
        steps = ns if slast[r] == NO_SLOT else min(h - slast[r], ns)
        for q in range(steps):
            k = (h - q) % ns
            smin[r, k] = np.inf
            smax[r, k] = -np.inf
        slast[r] = h
    if env_id[r] != h:
        lo = np.inf
        hi = -np.inf
        for d in range(1, days + 1):
            for o in range(-half, half + 1):
                k = (h - DAY_SLOTS * d + o) % ns
                lo = min(lo, smin[r, k])
                hi = max(hi, smax[r, k])
        env_id[r] = h
        env_lo[r] = lo
        env_hi[r] = hi


@nb.njit(cache=True, nogil=True, inline="always")
def _learn_slot(r, h, v, smin, smax, slast):
    if h > slast[r] - smin.shape[1]:          # (a sample far out of order is not learned)
        k = h % smin.shape[1]
        smin[r, k] = min(smin[r, k], v)
        smax[r, k] = max(smax[r, k], v)


@nb.njit(cache=True, nogil=True)
def _kernel(rows, ts, x, scales, a_base, a_long, decay_long, warmup, refr_decay, gate, dir_sign,
            protect, rearm, days, half, n, ring, flag, sums, base, dev, hist, suf, zmax, g, peak,
            quiet, quantum, lastx, smin, smax, slast, env_id, env_lo, env_hi, sdev, scount,
            out_score, out_exp):  # pragma: no cover - compiled
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
        h = _slot_of(ts[j])
        if i == 0:
            _init_row(r, v, n, ring, flag, sums, base, dev, hist, suf, zmax, g, peak, quiet,
                      quantum, lastx, smin, smax, slast, env_id, env_lo, env_hi, sdev, scount)
            if days > 0 and h != NO_SLOT:
                _season(r, h, days, half, smin, smax, slast, env_id, env_lo, env_hi)
                _learn_slot(r, h, v, smin, smax, slast)
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
        # seasonal second opinion: how far outside what this series did around this time of
        # day over the last `days` days, in units of its usual such excess (Laplace tail)
        if days > 0 and h != NO_SLOT:
            _season(r, h, days, half, smin, smax, slast, env_id, env_lo, env_hi)
            lo = env_lo[r]
            hi = env_hi[r]
            if lo <= hi:
                ex = lo - v if v < lo else (v - hi if v > hi else 0.0)
                if scount[r] >= warmup:
                    sc = min(sc, LOG10E * ex / (sdev[r] + floor))
                scount[r] += 1
                sdev[r] += max(a_long, 1.0 / scount[r]) * (ex - sdev[r])
            _learn_slot(r, h, v, smin, smax, slast)
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
              "quiet", "quantum", "lastx", "smin", "smax", "slast", "env_id", "env_lo", "env_hi",
              "sdev", "scount")

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
        # seasonal envelope: min/max per wall-clock slot, a ring long enough for `season_days`
        S = DAY_SLOTS * (p.season_days + 1) if p.season_days > 0 else 1
        self.smin = np.zeros((0, S)); self.smax = np.zeros((0, S))
        self.slast = np.zeros(0, np.int64)
        self.env_id = np.zeros(0, np.int64); self.env_lo = np.zeros(0); self.env_hi = np.zeros(0)
        self.sdev = np.zeros(0); self.scount = np.zeros(0, np.int64)

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
        """Score then learn each sample in order; `ts` (epoch seconds) only places a sample on the
        wall clock for the seasonal envelope, `dt` is unused (sample counts rule)."""
        m = len(rows)
        score = np.empty(m)
        exp = np.empty(m)
        p = self.params
        _kernel(np.ascontiguousarray(rows, np.int64), np.ascontiguousarray(ts, np.float64),
                np.ascontiguousarray(x, np.float64), self._scales, self._a_base, self._a_long,
                self._decay_long, p.warmup, self._refr, p.gate, self._dir, self._protect, p.rearm,
                p.season_days, p.season_slots, self.n, self.ring, self.flag, self.sums, self.base,
                self.dev, self.hist, self.suf, self.zmax, self.g, self.peak, self.quiet,
                self.quantum, self.lastx, self.smin, self.smax, self.slast, self.env_id,
                self.env_lo, self.env_hi, self.sdev, self.scount, score, exp)
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
