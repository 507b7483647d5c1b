"""RobustBaseline: a fast level against a slow, protected baseline; scale-free drops and spikes.

For each series two exponentially weighted levels run on event time: a *fast* one (half-life
`fast`, tens of seconds: what the series is doing now) and a *slow* one (half-life `window`,
minutes: what it normally does). A sample is anomalous when the fast level departs from the
slow one by a *relative* amount reaching a level's threshold (so one rule fits a room of 50 and
one of 50,000 viewers) and the departure is *significant*: larger than `z_min` times the usual
wobble of the fast level around the slow one (a robust spread learnt the same way), and for
counters never smaller than the Poisson noise of a rate counted over the fast window, so a room
selling two things a minute does not page when it sells none for twenty seconds.

Parameters
----------
window: slow half-life ("10m"); fast: fast half-life ("20s"); warmup: no scoring before the series
is this old; z_min: significance gate; floor: minimum spread as a fraction of the level;
protect: how much an anomalous sample still teaches the baseline (0..1; small, so a real level
shift is absorbed in time but an incident is reported first).

>>> import numpy as np
>>> d = RobustBaseline(RobustBaseline.Params(levels={2: 0.5}, direction="down", warmup="0s",
...                    fast="5s", window="5m"))
>>> d.resize(1)
>>> ts = np.arange(0, 600, 5.0); x = np.where(ts < 500, 100.0, 10.0)
>>> s = d.update_many(np.zeros(len(ts), np.int64), ts, x, np.full(len(ts), 5.0))
>>> int(s.level[ts < 500].max()), int(s.level[-1])
(0, 2)
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numba as nb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamwatch.config.durations import Duration
from streamwatch.detect.base import Scores
from streamwatch.types import Floats, Ints

__all__ = ["RobustBaseline"]

LN2 = float(np.log(2.0))


class BaselineParams(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    levels: dict[int, float]         # relative change of fast vs slow: 0.5 = half gone / +50 %
    direction: Literal["up", "down", "both"] = "both"
    window: Duration = 600.0         # half-life of the slow baseline (what it normally does)
    fast: Duration = 20.0            # half-life of the fast level (what it does now)
    warmup: Duration = 180.0         # no scoring before the series is this old
    z_min: float = Field(default=4.0, gt=0)      # significance gate, in spreads of the level
    floor: float = Field(default=0.02, ge=0)     # least spread, as a fraction of the level
    protect: float = Field(default=0.05, ge=0, le=1)  # what an anomalous sample still teaches
    ramp: Duration = 600.0           # a young series learns unprotected: its ramp-up is normal
    adapt: Duration = 900.0          # an anomaly lasting longer is learnt as the new normal
    counter: bool = False            # set by the registry for *_total metrics

    @field_validator("levels")
    @classmethod
    def _thr(cls, v: dict[int, float]) -> dict[int, float]:
        for lvl, thr in v.items():
            if not thr > 0:
                raise ValueError(f"threshold of level {lvl} must be > 0 (a relative change)")
        return v


@nb.njit(cache=True, nogil=True)
def _kernel(rows, ts, x, dt, slow, fast, spread, first, last, anom_since, out_score, out_exp,
            out_lvl, out_obs, h_slow, h_fast, warmup, z_min, floor, protect, ramp, adapt,
            counter, dir_sign, thr, thr_lvl):
    for i in range(len(rows)):
        r = rows[i]
        t = ts[i]
        if counter:
            if dt[i] <= 0.0:
                out_score[i] = 0.0; out_exp[i] = np.nan; out_lvl[i] = 0; out_obs[i] = np.nan
                continue
            v = x[i] / dt[i] * 60.0
            w = dt[i]
        else:
            v = x[i]
            w = dt[i]
        if np.isnan(first[r]):
            first[r] = t - w
            slow[r] = v
            fast[r] = v
            spread[r] = 0.0
            last[r] = t
            out_score[i] = 0.0; out_exp[i] = v; out_lvl[i] = 0; out_obs[i] = v
            continue
        age = t - first[r]
        if t > last[r]:
            last[r] = t
        # early on, plain running means: a fresh series is not anchored to its first sample
        a_f = 1.0 - np.exp(-w * LN2 / h_fast)
        a_s = 1.0 - np.exp(-w * LN2 / h_slow)
        if age > 0.0:
            early = w / age
            if early > a_f:
                a_f = min(early, 1.0)
            if early > a_s:
                a_s = min(early, 1.0)
        f = fast[r] + a_f * (v - fast[r])
        fast[r] = f
        base = slow[r]
        dev = f - base
        scale = abs(base)
        spr = spread[r]
        if floor * scale > spr:
            spr = floor * scale
        if counter and base > 0.0:
            # std of a per-minute rate counted over the fast horizon (Poisson)
            tau = h_fast / LN2
            pois = np.sqrt(base * 60.0 / tau)
            if pois > spr:
                spr = pois
        if spr <= 1e-12:
            spr = 1e-12
        z = dev / spr
        rel = dev / scale if scale > 1e-12 else (0.0 if abs(dev) < 1e-12 else np.inf * np.sign(dev))
        if dir_sign > 0:
            mag = rel
            zz = z
        elif dir_sign < 0:
            mag = -rel
            zz = -z
        else:
            mag = abs(rel)
            zz = abs(z)
        lvl = 0
        if age >= warmup and zz >= z_min:
            for k in range(len(thr)):
                if mag >= thr[k]:
                    lvl = thr_lvl[k]
                    break
        score = 0.0
        if age >= warmup and zz > 0.0 and mag > 0.0:
            sig = 1.0 - np.exp(-zz / z_min)
            size = mag / thr[len(thr) - 1]
            if size > 1.0:
                size = 1.0
            score = sig * size
        out_score[i] = score
        out_exp[i] = base
        out_lvl[i] = lvl
        out_obs[i] = f
        # learn (protected: an anomalous sample barely moves the baseline, unless the series is
        # still ramping up or the change has lasted long enough to be the new normal)
        k = 1.0
        if lvl > 0:
            if np.isnan(anom_since[r]):
                anom_since[r] = t
            if age >= ramp and t - anom_since[r] < adapt:
                k = protect
        else:
            anom_since[r] = np.nan
        slow[r] = base + k * a_s * (v - base)
        if lvl == 0:
            spread[r] = spread[r] + a_s * (abs(dev) - spread[r])


class RobustBaseline:
    method: ClassVar[str] = "baseline"
    Params: ClassVar[type[BaseModel]] = BaselineParams

    def __init__(self, params: BaselineParams) -> None:
        self.params = params
        # thresholds most severe first: level 1 needs the largest change
        items = sorted(params.levels.items(), key=lambda kv: -kv[1])
        self._thr = np.array([v for _, v in items], np.float64)
        self._thr_lvl = np.array([k for k, _ in items], np.int64)
        self._dir = {"up": 1, "down": -1, "both": 0}[params.direction]
        self.n = 0
        self.slow = np.zeros(0); self.fast = np.zeros(0); self.spread = np.zeros(0)
        self.first = np.zeros(0); self.last = np.zeros(0); self.anom_since = np.zeros(0)

    def resize(self, n_rows: int) -> None:
        if n_rows <= self.n:
            return
        def grow(a: np.ndarray, fill: float) -> np.ndarray:
            out = np.full(n_rows, fill); out[: len(a)] = a; return out
        self.slow = grow(self.slow, 0.0); self.fast = grow(self.fast, 0.0)
        self.spread = grow(self.spread, 0.0); self.first = grow(self.first, np.nan)
        self.last = grow(self.last, np.nan); self.anom_since = grow(self.anom_since, np.nan)
        self.n = n_rows

    def update_many(self, rows: Ints, ts: Floats, x: Floats, dt: Floats,
                    role: Ints | None = None) -> Scores:
        n = len(rows)
        score = np.empty(n); exp = np.empty(n); lvl = np.empty(n, np.int64)
        obs = np.empty(n)
        p = self.params
        _kernel(rows, ts, x, dt, self.slow, self.fast, self.spread, self.first, self.last,
                self.anom_since, score, exp, lvl, obs, p.window, p.fast, p.warmup, p.z_min,
                p.floor, p.protect, p.ramp, p.adapt, p.counter, self._dir, self._thr,
                self._thr_lvl)
        return Scores(score, exp, lvl, obs)

    def reset(self, rows: Ints) -> None:
        self.first[rows] = np.nan
        self.anom_since[rows] = np.nan
