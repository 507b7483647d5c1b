"""StaticBounds: fixed limits that mean trouble whatever the history (error_ratio > 0.05).

Some metrics have absolute meaning: a payment service failing 5 % of calls is broken even if it
has always been that bad, and a CPU at 95 % is saturated whatever it did yesterday. The rule's
`levels` are the limits themselves: with direction "up", level k when x >= levels[k]; with "down",
level k when x <= levels[k]. The score grows from 0 on the safe side of the mildest limit (half of
it for "up", twice it for "down") to 1 at the most severe one: a continuous value.

>>> import numpy as np
>>> d = StaticBounds(StaticBounds.Params(levels={2: 0.05, 1: 0.2}, direction="up"))
>>> d.resize(1)
>>> s = d.update_many(np.zeros(3, np.int64), np.arange(3.0), np.array([0.01, 0.06, 0.5]), np.ones(3))
>>> s.level.tolist()
[0, 2, 1]
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numba as nb
import numpy as np
from pydantic import BaseModel, ConfigDict

from streamwatch.detect.base import Scores
from streamwatch.types import Floats, Ints

__all__ = ["StaticBounds"]


class BoundsParams(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    levels: dict[int, float]   # the limits: level k at x >= limit (up), <= (down); counters per min
    direction: Literal["up", "down"] = "up"
    counter: bool = False


@nb.njit(cache=True, nogil=True)
def _kernel(x, dt, counter, sign, thr, thr_lvl, lo, hi, out_score, out_lvl, out_obs):
    for i in range(len(x)):
        if counter:
            if dt[i] <= 0.0:
                out_score[i] = 0.0; out_lvl[i] = 0; out_obs[i] = np.nan
                continue
            v = x[i] / dt[i] * 60.0
        else:
            v = x[i]
        out_obs[i] = v
        lvl = 0
        for k in range(len(thr)):
            if sign * v >= sign * thr[k]:
                lvl = thr_lvl[k]
                break
        out_lvl[i] = lvl
        s = (sign * v - sign * lo) / (sign * hi - sign * lo) if hi != lo else (1.0 if lvl else 0.0)
        out_score[i] = min(1.0, max(0.0, s))


class StaticBounds:
    method: ClassVar[str] = "bounds"
    Params: ClassVar[type[BaseModel]] = BoundsParams

    def __init__(self, params: BoundsParams) -> None:
        self.params = params
        sign = 1.0 if params.direction == "up" else -1.0
        # most severe limit first: the furthest in the bad direction
        items = sorted(params.levels.items(), key=lambda kv: -sign * kv[1])
        self._thr = np.array([v for _, v in items], np.float64)
        self._lvl = np.array([k for k, _ in items], np.int64)
        self._sign = sign
        self._hi = float(self._thr[0])
        # the score starts on the safe side of the mildest limit: half of it going up, twice it
        # going down (so a normal sample scores 0 and the most severe limit scores 1)
        self._lo = float(self._thr[-1]) * (0.5 if sign > 0 else 2.0)

    def resize(self, n_rows: int) -> None:
        """Stateless: limits need no history."""

    def update_many(self, rows: Ints, ts: Floats, x: Floats, dt: Floats,
                    role: Ints | None = None) -> Scores:
        n = len(rows)
        score = np.empty(n); lvl = np.empty(n, np.int64); obs = np.empty(n)
        _kernel(x, dt, self.params.counter, self._sign, self._thr, self._lvl, self._lo,
                self._hi, score, lvl, obs)
        return Scores(score, np.full(n, self._thr[-1]), lvl, obs)

    def reset(self, rows: Ints) -> None:
        """Stateless."""
