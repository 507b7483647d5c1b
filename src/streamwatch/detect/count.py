"""PoissonCount: count-aware tests for events that come a few at a time (orders, complaints).

A rate of two complaints an hour or half an order a minute cannot be judged with Gaussian
z-scores on 30-second deltas: most deltas are 0 and one event is a "spike". This method keeps the
expected event rate as an exponentially weighted ratio of sums (events / exposure, half-life
`window`) and runs a Poisson CUSUM on what is actually counted: every observation adds the log
likelihood ratio of "the rate moved to `ratio` x normal" against "normal",

    LLR = n * ln(ratio) - e * (ratio - 1)       (n counted, e expected in the interval)

and the evidence S = max(0, S + LLR) accumulates for as long as the change lasts, whatever the
cadence. That is the optimal sequential test for a rate change, and it is naturally count-aware:
a room selling 100 a minute builds evidence in seconds, one selling 1 a minute in minutes.

* direction "down" (orders stopped; `ratio` default 0.1): each expected-but-missing event adds
  0.9, so `levels` are given in *expected events missing* (10 = "ten orders should have come and
  none did", P = e^-10) and turned into evidence internally. A trickle of orders delays, not
  prevents, detection; but the run must also show at most `max_fraction` of what was expected,
  so a big room's mild dip (significant only because its counts are huge) is not a collapse.
* direction "up" (complaint surge; `ratio` default 4): `levels` are evidence in nats (5 = the
  counts are e^5 ~ 150 times likelier under a x4 surge than under normal), and the run must also
  hold `min_excess` more events than expected: "several-fold AND several events".

Exposure is elapsed time, or with `per = "<metric>"` the counted increments of another counter of
the same stream (orders per product click), or a gauge integrated over time (comments per
viewer-minute). A lull in clicks (a product switch, the goodbye) then
lowers the expected orders with it, and only a funnel break - clicks go on, orders do not - fires.
The expected rate learns only while no evidence is building, so an incident is not learnt first.

>>> import numpy as np
>>> d = PoissonCount(PoissonCount.Params(levels={1: 10.0}, direction="down", warmup="0s"))
>>> d.resize(1)
>>> ts = np.arange(10, 1210, 10.0); x = np.where(ts < 900, 5.0, 0.0)   # 30 a minute, then none
>>> s = d.update_many(np.zeros(len(ts), np.int64), ts, x, np.full(len(ts), 10.0))
>>> int(s.level[ts < 900].max()), float(ts[s.level > 0][0])
(0, 910.0)
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numba as nb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from streamwatch.config.durations import Duration
from streamwatch.detect.base import Scores
from streamwatch.types import Floats, Ints

__all__ = ["PoissonCount"]

LN2 = float(np.log(2.0))


class CountParams(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    levels: dict[int, float]   # down: expected events missing; up: evidence in nats (5 ~ x150)
    direction: Literal["up", "down"] = "up"
    ratio: float = Field(default=0.0, ge=0)   # the change tested for; 0 = 0.1 down / 4 up
    window: Duration = 1800.0                 # half-life of the expected rate
    warmup: Duration = 300.0                  # no judging before the series is this old
    min_events: float = Field(default=5.0, ge=0)   # events learnt before judging
    min_excess: float = Field(default=4.0, ge=0)   # "up": at least this many extra events
    max_fraction: float = Field(default=0.5, gt=0, le=1)  # "down": at most this share observed
    per: str | None = None       # exposure: another metric of the stream; default elapsed time
    per_gauge: bool = False      # set by the registry: `per` is a gauge (exposure = value x time)
    ramp: Duration = 600.0       # a young series learns freely: its ramp-up is normal
    adapt: Duration = 900.0      # evidence building for longer: learnt as the new normal

    @model_validator(mode="after")
    def _ratio(self) -> "CountParams":
        r = self.ratio or (0.1 if self.direction == "down" else 4.0)
        if self.direction == "down" and not 0 < r < 1:
            raise ValueError("ratio: a drop is tested for a ratio in (0, 1)")
        if self.direction == "up" and not r > 1:
            raise ValueError("ratio: a surge is tested for a ratio > 1")
        object.__setattr__(self, "ratio", r)
        for lvl, thr in self.levels.items():
            if not thr > 0:
                raise ValueError(f"levels: threshold of level {lvl} must be > 0")
        return self


@nb.njit(cache=True, nogil=True)
def _kernel(rows, ts, x, dt, role, has_per, per_gauge, up, num, den, last, first, events, cusum, e_run,
            n_run, pending, last_lvl, last_score, run_since, ramp, adapt, max_fraction, surge, surge_since, ln_ratio, ratio_m1, half_life, warmup,
            min_events, min_excess, thr, thr_lvl,
            out_score, out_exp, out_lvl, out_obs):
    for i in range(len(rows)):
        r = rows[i]
        t = ts[i]
        if np.isnan(first[r]):
            first[r] = t
            last[r] = t
        if has_per:
            if role[i] == 1:
                # exposure waits for the numerator's report covering the same interval: clicks
                # reported a moment before the orders of the same tick are not missing orders
                if per_gauge:
                    pending[r] = x[i]           # the gauge's latest level
                else:
                    pending[r] += x[i]
                out_score[i] = last_score[r]
                out_lvl[i] = last_lvl[r]
                out_exp[i] = e_run[r]
                out_obs[i] = n_run[r]
                continue            # (the decay clock `last` is the numerator's own)
            inc_n = x[i]
            if per_gauge:
                # exposure over exactly the numerator's interval: gauge level x its length
                inc_d = pending[r] * dt[i] / 60.0
            else:
                inc_d = pending[r]
                pending[r] = 0.0
        else:
            inc_n = x[i]
            inc_d = dt[i]
        rate = num[r] / den[r] if den[r] > 0.0 else 0.0
        ready = (t - first[r]) >= warmup and events[r] >= min_events and rate > 0.0
        lvl = 0
        score = 0.0
        if ready:
            e = rate * inc_d
            s = cusum[r] + inc_n * ln_ratio - e * ratio_m1
            if s <= 0.0:
                cusum[r] = 0.0
                e_run[r] = 0.0
                n_run[r] = 0.0
                run_since[r] = np.nan
            else:
                if np.isnan(run_since[r]):
                    run_since[r] = t
                cusum[r] = min(s, 1.5 * thr[0])      # bounded memory: recovery clears it soon
                e_run[r] += e
                n_run[r] += inc_n
            s = cusum[r]
            if (up and n_run[r] - e_run[r] >= min_excess) or (
                    not up and n_run[r] <= max_fraction * e_run[r]):
                for k in range(len(thr)):
                    if s >= thr[k]:
                        lvl = thr_lvl[k]
                        break
            score = 1.0 - np.exp(-s / thr[len(thr) - 1])
        out_score[i] = score
        last_score[r] = score
        last_lvl[r] = lvl
        out_exp[i] = e_run[r] if ready else np.nan
        out_obs[i] = n_run[r] if ready else np.nan
        out_lvl[i] = lvl
        # learn the expected rate only while no evidence of a change is building - except while
        # the series is young, or once the change has lasted long enough to be the new normal
        if (cusum[r] < 0.5 * thr[len(thr) - 1] or t - first[r] < ramp
                or t - run_since[r] > adapt):
            d = np.exp(-(t - last[r]) * LN2 / half_life) if t > last[r] else 1.0
            learn = True
            if not up and rate > 0.0:
                # a lottery or flash sale multiplies counts for minutes; learnt, it would make the
                # normal that follows look like a collapse. A second CUSUM, for a x3 surge,
                # pauses learning while one is under way.
                # The pause lasts at most 5 minutes: a rate learnt too low (say, in warm-up)
                # must not lock itself out of learning.
                e_up = rate * inc_d
                surge[r] = min(10.0, max(0.0, surge[r] + inc_n * 1.0986 - 2.0 * e_up))
                if surge[r] < 3.0:
                    surge_since[r] = np.nan
                elif np.isnan(surge_since[r]):
                    surge_since[r] = t
                learn = surge[r] < 3.0 or t - surge_since[r] > 300.0
            if learn:
                num[r] = num[r] * d + inc_n
                den[r] = den[r] * d + inc_d
                events[r] += inc_n
        if t > last[r]:
            last[r] = t


class PoissonCount:
    method: ClassVar[str] = "count"
    Params: ClassVar[type[BaseModel]] = CountParams
    _STATE = ("num", "den", "last", "first", "events", "cusum", "e_run", "n_run", "pending",
              "last_lvl", "last_score", "run_since", "surge", "surge_since")

    def __init__(self, params: CountParams) -> None:
        self.params = params
        down = params.direction == "down"
        # thresholds as evidence; "down" levels are expected events missing
        per_missing = (1.0 - params.ratio) if down else 1.0
        items = sorted(params.levels.items(), key=lambda kv: -kv[1])
        self._thr = np.array([v * per_missing for _, v in items], np.float64)
        self._lvl = np.array([k for k, _ in items], np.int64)
        self.n = 0
        for k in self._STATE:
            setattr(self, k, np.full(0, np.nan if k in ("first", "last", "run_since", "surge_since") else 0.0))

    def resize(self, n_rows: int) -> None:
        if n_rows <= self.n:
            return
        for k in self._STATE:
            old = getattr(self, k)
            new = np.full(n_rows, np.nan if k in ("first", "last", "run_since", "surge_since") else 0.0)
            new[: len(old)] = old
            setattr(self, k, new)
        self.n = n_rows

    def update_many(self, rows: Ints, ts: Floats, x: Floats, dt: Floats,
                    role: Ints | None = None) -> Scores:
        n = len(rows)
        p = self.params
        if role is None:
            role = np.zeros(n, np.int64)
        score = np.empty(n); exp = np.empty(n); lvl = np.empty(n, np.int64); obs = np.empty(n)
        _kernel(rows, ts, x, dt, role, p.per is not None, p.per_gauge, p.direction == "up", self.num,
                self.den, self.last, self.first, self.events, self.cusum, self.e_run, self.n_run,
                self.pending, self.last_lvl, self.last_score, self.run_since, p.ramp, p.adapt,
                p.max_fraction, self.surge, self.surge_since, float(np.log(p.ratio)), p.ratio - 1.0, p.window, p.warmup, p.min_events,
                p.min_excess, self._thr, self._lvl, score, exp, lvl, obs)
        return Scores(score, exp, lvl, obs)

    def reset(self, rows: Ints) -> None:
        for k in self._STATE:
            getattr(self, k)[rows] = np.nan if k in ("first", "last", "run_since", "surge_since") else 0.0
