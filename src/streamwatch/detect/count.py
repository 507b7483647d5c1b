"""PoissonCount: count-aware tests for events that come a few at a time (orders, complaints).

A rate of two complaints an hour or half an order a minute cannot be judged with Gaussian
z-scores on 30-second deltas: most deltas are 0 and one event is a "spike". This method keeps the
expected event rate as an exponentially weighted ratio of sums (events / exposure, half-life
`window`) and asks Poisson questions of what was actually counted:

* direction "up" (surge): over the last `surge_window`, N events were counted where E were
  expected. Level k when N/E >= levels[k], N - E >= `min_excess` and the variance-stabilised
  distance 2(sqrt(N) - sqrt(E)) >= `z_min`: "several-fold AND several events".
* direction "down" (stopped): E events were expected since the last one and none came. P(0 | E) =
  exp(-E), so level k once E >= levels[k] (E = 10 means ~1 chance in 22,000). Detection time is
  bounded by the rate, not a fixed window: a room selling 100 a minute is judged in seconds, one
  selling 1 a minute in about ten minutes.

Exposure is elapsed time, or with `per = "<metric>"` the counted increments of another counter of
the same stream: orders per product click. Then a lull in clicks (a product switch, the goodbye)
lowers the expected orders with it, and only a funnel break - clicks going on, orders not - fires.

>>> import numpy as np
>>> d = PoissonCount(PoissonCount.Params(levels={1: 10.0}, direction="down", warmup="0s"))
>>> d.resize(1)
>>> ts = np.arange(10, 1210, 10.0); x = np.where(ts < 900, 5.0, 0.0)   # 30 a minute, then none
>>> s = d.update_many(np.zeros(len(ts), np.int64), ts, x, np.full(len(ts), 10.0))
>>> int(s.level[ts < 900].max()), float(ts[s.level > 0][0])
(0, 920.0)
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numba as nb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamwatch.config.durations import parse_duration
from streamwatch.detect.base import Scores
from streamwatch.types import Floats, Ints

__all__ = ["PoissonCount"]

LN2 = float(np.log(2.0))
N_BUCKETS = 10


class CountParams(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    levels: dict[int, float]
    direction: Literal["up", "down"] = "up"
    window: float = 1800.0           # half-life of the expected rate
    surge_window: float = 300.0      # the window counted for "up"
    warmup: float = 300.0
    min_events: float = Field(default=5.0, ge=0)   # events learnt before judging
    min_excess: float = Field(default=4.0, ge=0)   # "up": at least this many extra events
    z_min: float = Field(default=3.0, gt=0)
    per: str | None = None

    @field_validator("window", "surge_window", "warmup", mode="before")
    @classmethod
    def _dur(cls, v: object) -> float:
        return parse_duration(v)


@nb.njit(cache=True, nogil=True)
def _kernel(rows, ts, x, dt, role, has_per, up, num, den, last, first, since, events,
            bnum, bden, bidx, width, h, warmup, min_events, min_excess, z_min, thr, thr_lvl,
            out_score, out_exp, out_lvl, out_obs):
    nb_ = bnum.shape[1]
    for i in range(len(rows)):
        r = rows[i]
        t = ts[i]
        if has_per:
            is_num = role[i] == 0
            inc_n = x[i] if is_num else 0.0
            inc_d = x[i] if not is_num else 0.0
        else:
            inc_n = x[i]
            inc_d = dt[i]
        if np.isnan(first[r]):
            first[r] = t
            last[r] = t
            bidx[r] = np.floor(t / width)
        # slide the surge window's buckets to t
        b = np.floor(t / width)
        if b > bidx[r]:
            steps = int(min(b - bidx[r], nb_))
            for k in range(1, steps + 1):
                j = int((bidx[r] + k) % nb_)
                bnum[r, j] = 0.0
                bden[r, j] = 0.0
            bidx[r] = b
        j = int(b % nb_)
        bnum[r, j] += inc_n
        bden[r, j] += inc_d
        # stopped: exposure since the last event
        if inc_n > 0.0:
            since[r] = 0.0
        else:
            since[r] += inc_d
        rate = num[r] / den[r] if den[r] > 0.0 else 0.0
        ready = (t - first[r]) >= warmup and events[r] >= min_events and rate > 0.0
        lvl = 0
        score = 0.0
        expected = np.nan
        observed = np.nan
        if ready:
            if up:
                n_w = 0.0
                d_w = 0.0
                for k in range(nb_):
                    n_w += bnum[r, k]
                    d_w += bden[r, k]
                e = rate * d_w
                expected = e
                observed = n_w
                if e > 0.0:
                    z = 2.0 * (np.sqrt(n_w) - np.sqrt(e))
                    ratio = n_w / e
                    if z >= z_min and n_w - e >= min_excess:
                        for k in range(len(thr)):
                            if ratio >= thr[k]:
                                lvl = thr_lvl[k]
                                break
                    if z > 0.0:
                        score = 1.0 - np.exp(-z / z_min)
            else:
                e = rate * since[r]
                expected = e
                observed = 0.0
                for k in range(len(thr)):
                    if e >= thr[k]:
                        lvl = thr_lvl[k]
                        break
                score = 1.0 - np.exp(-e / thr[len(thr) - 1])
        out_score[i] = score
        out_exp[i] = expected
        out_obs[i] = observed
        out_lvl[i] = lvl
        # learn the expected rate (protected while anomalous)
        if lvl == 0:
            d = np.exp(-(t - last[r]) * LN2 / h) if t > last[r] else 1.0
            num[r] = num[r] * d + inc_n
            den[r] = den[r] * d + inc_d
            events[r] += inc_n
        if t > last[r]:
            last[r] = t


class PoissonCount:
    method: ClassVar[str] = "count"
    Params: ClassVar[type[BaseModel]] = CountParams

    def __init__(self, params: CountParams) -> None:
        self.params = params
        items = sorted(params.levels.items(), key=lambda kv: -kv[1])
        self._thr = np.array([v for _, v in items], np.float64)
        self._lvl = np.array([k for k, _ in items], np.int64)
        self.n = 0
        self._alloc(0)

    def _alloc(self, n: int) -> None:
        self.num = np.zeros(n); self.den = np.zeros(n); self.last = np.full(n, np.nan)
        self.first = np.full(n, np.nan); self.since = np.zeros(n); self.events = np.zeros(n)
        self.bnum = np.zeros((n, N_BUCKETS)); self.bden = np.zeros((n, N_BUCKETS))
        self.bidx = np.zeros(n)

    def resize(self, n_rows: int) -> None:
        if n_rows <= self.n:
            return
        old = {k: getattr(self, k) for k in ("num", "den", "last", "first", "since", "events",
                                             "bnum", "bden", "bidx")}
        self._alloc(n_rows)
        for k, a in old.items():
            getattr(self, k)[: len(a)] = a
        self.n = n_rows

    def update_many(self, rows: Ints, ts: Floats, x: Floats, dt: Floats,
                    role: Ints | None = None) -> Scores:
        n = len(rows)
        p = self.params
        if role is None:
            role = np.zeros(n, np.int64)
        score = np.empty(n); exp = np.empty(n); lvl = np.empty(n, np.int64); obs = np.empty(n)
        _kernel(rows, ts, x, dt, role, p.per is not None, p.direction == "up", self.num,
                self.den, self.last, self.first, self.since, self.events, self.bnum, self.bden,
                self.bidx, p.surge_window / N_BUCKETS, p.window, p.warmup, p.min_events,
                p.min_excess, p.z_min, self._thr, self._lvl, score, exp, lvl, obs)
        return Scores(score, exp, lvl, obs)

    def reset(self, rows: Ints) -> None:
        self.first[rows] = np.nan
        self.num[rows] = 0.0; self.den[rows] = 0.0; self.events[rows] = 0.0
        self.since[rows] = 0.0; self.bnum[rows] = 0.0; self.bden[rows] = 0.0
