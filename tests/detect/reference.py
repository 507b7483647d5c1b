"""Slow, per-sample, one-series-at-a-time detectors: the oracles for the numba kernels.

Following river's practice, every vectorised method is checked against an obviously correct slow
version. These are written from the module docstrings (and the parameter comments) of
`streamwatch.detect.{baseline,bounds,count,debounce}`, not from their kernels: one dataclass of
state per series, plain Python floats, one `step` per sample, no arrays and no shared buffers, so a
bookkeeping slip in a kernel (a wrong row, a stale value, a misplaced update) shows up as a
disagreement. Details the docstrings leave open (the score formulas, the early running means) are
taken from the kernels' comments and written here as formulas.

    step(ts, x, dt, role) -> (score, expected, level, observed)

`run(factory, rows, ts, x, dt, role)` drives one state per row over a whole batch, as
`update_many` does.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from streamwatch.detect.baseline import BaselineParams
from streamwatch.detect.bounds import BoundsParams
from streamwatch.detect.count import CountParams

__all__ = ["ReferenceBaseline", "ReferenceBounds", "ReferenceCount", "ReferenceDebouncer",
           "ReferenceRows", "ONSET", "WORSE", "CLEAR", "run", "run_debouncer"]

NAN = math.nan
ONSET, WORSE, CLEAR = 1, 2, 3
Verdict = tuple[float, float, int, float]   # score, expected, level, observed


def level_reached(levels: dict[int, float], amount: float) -> int:
    """The level of the largest threshold `amount` reaches (0 if none): thresholds are given so
    that the most severe level needs the largest amount."""
    reached = [(thr, lvl) for lvl, thr in levels.items() if amount >= thr]
    return max(reached)[1] if reached else 0


def ew_weight(dt: float, half_life: float) -> float:
    """Weight of an interval of dt seconds in an exponentially weighted mean of that half-life."""
    return 1.0 - 0.5 ** (dt / half_life)


# --------------------------------------------------------------------------------------------
# RobustBaseline
# --------------------------------------------------------------------------------------------

@dataclass
class ReferenceBaseline:
    """One series: a fast and a slow exponentially weighted level, a robust spread."""
    p: BaselineParams
    born: float | None = None        # start of the first observed interval
    fast: float = 0.0
    slow: float = 0.0
    spread: float = 0.0              # usual |fast - slow| while normal
    anomalous_since: float | None = None

    def step(self, ts: float, x: float, dt: float, role: int = 0) -> Verdict:
        p = self.p
        if p.counter:
            if dt <= 0.0:
                return 0.0, NAN, 0, NAN              # no interval: no rate to judge
            v = x / dt * 60.0                        # a counter is judged as a rate per minute
        else:
            v = x
        if self.born is None:                        # the first observation: the levels start here
            self.born = ts - dt
            self.fast = self.slow = v
            self.spread = 0.0
            return 0.0, v, 0, v
        age = ts - self.born

        # early on the levels are plain running means (weight dt / age) rather than EW means
        # anchored to the first sample; whichever weight is larger wins
        early = min(dt / age, 1.0) if age > 0.0 else 0.0
        a_fast = max(ew_weight(dt, p.fast), early)
        a_slow = max(ew_weight(dt, p.window), early)

        # score: the fast level (now including this sample) against the slow baseline so far
        self.fast += a_fast * (v - self.fast)
        expected = self.slow
        departure = self.fast - expected
        noise = max(self.spread, p.floor * abs(expected), 1e-12)
        if p.counter and expected > 0.0:
            # a per-minute rate counted over the fast window (mean lifetime tau) is Poisson noisy
            tau = p.fast / math.log(2.0)
            noise = max(noise, math.sqrt(expected * 60.0 / tau))
        z = departure / noise
        if abs(expected) > 1e-12:
            relative = departure / abs(expected)
        elif abs(departure) < 1e-12:
            relative = 0.0
        else:
            relative = math.copysign(math.inf, departure)
        if p.direction == "up":
            change, significance = relative, z
        elif p.direction == "down":
            change, significance = -relative, -z
        else:
            change, significance = abs(relative), abs(z)

        warm = age >= p.warmup
        level = level_reached(p.levels, change) if warm and significance >= p.z_min else 0
        score = 0.0
        if warm and significance > 0.0 and change > 0.0:
            mildest = min(p.levels.values())
            score = (1.0 - math.exp(-significance / p.z_min)) * min(change / mildest, 1.0)

        # learn: an anomalous sample teaches only `protect` of itself, unless the series is
        # still ramping up or the anomaly has lasted `adapt` (then it is the new normal)
        teach = 1.0
        if level > 0:
            if self.anomalous_since is None:
                self.anomalous_since = ts
            if age >= p.ramp and ts - self.anomalous_since < p.adapt:
                teach = p.protect
        else:
            self.anomalous_since = None
        self.slow += teach * a_slow * (v - self.slow)
        if level == 0:
            self.spread += a_slow * (abs(departure) - self.spread)
        return score, expected, level, self.fast


# --------------------------------------------------------------------------------------------
# StaticBounds
# --------------------------------------------------------------------------------------------

@dataclass
class ReferenceBounds:
    """Fixed limits: no state at all."""
    p: BoundsParams

    def step(self, ts: float, x: float, dt: float, role: int = 0) -> Verdict:
        p = self.p
        limits = p.levels
        mildest_limit = min(limits.values()) if p.direction == "up" else max(limits.values())
        worst_limit = max(limits.values()) if p.direction == "up" else min(limits.values())
        if p.counter:
            if dt <= 0.0:
                return 0.0, mildest_limit, 0, NAN
            v = x / dt * 60.0                        # limits on a counter are per minute
        else:
            v = x
        if p.direction == "up":
            beyond = {lvl: lim for lvl, lim in limits.items() if v >= lim}
            level = max(beyond.items(), key=lambda kv: kv[1])[0] if beyond else 0
        else:
            beyond = {lvl: lim for lvl, lim in limits.items() if v <= lim}
            level = min(beyond.items(), key=lambda kv: kv[1])[0] if beyond else 0
        # the score grows linearly from 0 on the safe side of the mildest limit (half of it going
        # up, twice it going down) to 1 at the most severe one
        zero_at = (0.5 if p.direction == "up" else 2.0) * mildest_limit
        one_at = worst_limit
        if one_at == zero_at:
            score = 1.0 if level else 0.0
        else:
            score = min(1.0, max(0.0, (v - zero_at) / (one_at - zero_at)))
        return score, mildest_limit, level, v


# --------------------------------------------------------------------------------------------
# PoissonCount
# --------------------------------------------------------------------------------------------

@dataclass
class ReferenceCount:
    """One series (and, with `per`, its exposure metric): an EW rate and a Poisson CUSUM."""
    p: CountParams
    born: float | None = None        # first sample of either metric
    clock: float | None = None       # time of the last own-metric sample (the rate's decay clock)
    events: float = 0.0              # sum of events / sum of exposure, both decayed
    exposure: float = 0.0
    learnt_events: float = 0.0       # undecayed: "min_events learnt before judging"
    clicks: float = 0.0              # `per` counter: exposure reported, not yet used
    gauge: float = 0.0               # `per` gauge: its latest value
    evidence: float = 0.0            # the CUSUM
    run_start: float | None = None   # when the evidence last rose above 0
    run_expected: float = 0.0
    run_observed: float = 0.0
    surge: float = 0.0               # "down": a second CUSUM, for a x3 surge
    surge_start: float | None = None
    verdict: tuple[float, int] = (0.0, 0)   # last own-metric sample's (score, level)

    def thresholds(self) -> dict[int, float]:
        """`levels` as evidence in nats; "down" levels are expected events missing."""
        p = self.p
        per_missing = 1.0 - p.ratio if p.direction == "down" else 1.0
        return {lvl: v * per_missing for lvl, v in p.levels.items()}

    def step(self, ts: float, x: float, dt: float, role: int = 0) -> Verdict:
        p = self.p
        thr = self.thresholds()
        mildest, strongest = min(thr.values()), max(thr.values())
        if self.born is None:
            self.born = ts
        if p.per is not None and role == 1:
            # the exposure metric only feeds the exposure; the sample echoes the last verdict
            # and the current run's totals
            if p.per_gauge:
                self.gauge = x
            else:
                self.clicks += x
            score, level = self.verdict
            return score, self.run_expected, level, self.run_observed

        n = x
        if p.per is None:
            exposure = dt                            # elapsed time
        elif p.per_gauge:
            exposure = self.gauge * dt / 60.0        # gauge x time (viewer-minutes)
        else:
            exposure, self.clicks = self.clicks, 0.0
        rate = self.events / self.exposure if self.exposure > 0.0 else 0.0
        ready = (ts - self.born >= p.warmup and self.learnt_events >= p.min_events
                 and rate > 0.0)
        score, level, expected, observed = 0.0, 0, NAN, NAN
        if ready:
            e = rate * exposure
            s = self.evidence + n * math.log(p.ratio) - e * (p.ratio - 1.0)
            if s <= 0.0:                             # no change under way: a new run later
                self.evidence = 0.0
                self.run_start = None
                self.run_expected = self.run_observed = 0.0
            else:
                if self.run_start is None:
                    self.run_start = ts
                self.evidence = min(s, 1.5 * strongest)   # bounded memory
                self.run_expected += e
                self.run_observed += n
            if p.direction == "up":
                enough = self.run_observed - self.run_expected >= p.min_excess
            else:
                enough = self.run_observed <= p.max_fraction * self.run_expected
            level = level_reached(thr, self.evidence) if enough else 0
            score = 1.0 - math.exp(-self.evidence / mildest)
            expected, observed = self.run_expected, self.run_observed
        self.verdict = (score, level)

        # learn only while no evidence is building, unless young or the change is long-lived
        quiet = self.evidence < 0.5 * mildest
        young = ts - self.born < p.ramp
        settled = self.run_start is not None and ts - self.run_start > p.adapt
        if quiet or young or settled:
            learn = True
            if p.direction == "down" and rate > 0.0:
                # a surge (x3, log 3 = 1.0986) pauses learning, for at most 5 minutes
                llr = n * 1.0986 - 2.0 * rate * exposure
                self.surge = min(10.0, max(0.0, self.surge + llr))
                if self.surge < 3.0:
                    self.surge_start = None
                elif self.surge_start is None:
                    self.surge_start = ts
                learn = self.surge_start is None or ts - self.surge_start > 300.0
            if learn:
                decay = 1.0
                if self.clock is not None and ts > self.clock:
                    decay = 0.5 ** ((ts - self.clock) / p.window)
                self.events = self.events * decay + n
                self.exposure = self.exposure * decay + exposure
                self.learnt_events += n
        if self.clock is None or ts > self.clock:
            self.clock = ts
        return score, expected, level, observed


# --------------------------------------------------------------------------------------------
# driving one state per row
# --------------------------------------------------------------------------------------------

class Stepper(Protocol):
    def step(self, ts: float, x: float, dt: float, role: int = 0) -> Verdict: ...


@dataclass
class ReferenceRows:
    """One reference state per row, created on first sight; `reset` forgets a row."""
    factory: Callable[[], Stepper]
    states: dict[int, Stepper] = field(default_factory=dict)

    def update(self, rows: Iterable[int], ts: Iterable[float], x: Iterable[float],
               dt: Iterable[float], role: Iterable[int] | None = None) -> list[Verdict]:
        rows = list(rows)
        roles = [0] * len(rows) if role is None else list(role)
        out = []
        for r, t, v, d, k in zip(rows, ts, x, dt, roles):
            state = self.states.get(int(r))
            if state is None:
                state = self.states[int(r)] = self.factory()
            out.append(state.step(float(t), float(v), float(d), int(k)))
        return out

    def reset(self, rows: Iterable[int]) -> None:
        for r in rows:
            self.states.pop(int(r), None)


def run(factory: Callable[[], Stepper], rows: Iterable[int], ts: Iterable[float],
        x: Iterable[float], dt: Iterable[float], role: Iterable[int] | None = None
        ) -> list[Verdict]:
    return ReferenceRows(factory).update(rows, ts, x, dt, role)


# --------------------------------------------------------------------------------------------
# Debouncer
# --------------------------------------------------------------------------------------------

@dataclass
class ReferenceDebouncer:
    """One row's transitions: ONSET after `min_duration` anomalous (dips of normal shorter than
    half of it keep the clock), WORSE on a more severe level (a lower number) while active,
    CLEAR after `clear_after` seconds without an anomalous sample."""
    min_duration: float
    clear_after: float
    active: bool = False
    level: int = 0
    run_start: float | None = None
    last_anomalous: float = -math.inf

    def step(self, ts: float, level: int) -> tuple[int, int] | None:
        if level > 0:
            if not self.active and (self.run_start is None
                                    or ts - self.last_anomalous > self.clear_after):
                self.run_start = ts                  # a new run (silence also ends the old one)
            self.last_anomalous = ts
            if not self.active:
                if ts - self.run_start >= self.min_duration:
                    self.active, self.level = True, level
                    return ONSET, level
            elif level < self.level:
                self.level = level
                return WORSE, level
            return None
        if self.active:
            if ts - self.last_anomalous >= self.clear_after:
                self.active, self.level, self.run_start = False, 0, None
                return CLEAR, 0
        elif self.run_start is not None and ts - self.last_anomalous > 0.5 * self.min_duration:
            self.run_start = None                    # the dip was too long: the clock restarts
        return None

    def force_clear(self) -> bool:
        was = self.active
        self.active, self.level, self.run_start = False, 0, None
        return was


def run_debouncer(states: dict[int, ReferenceDebouncer], make: Callable[[], ReferenceDebouncer],
                  rows: Iterable[int], ts: Iterable[float], levels: Iterable[int]
                  ) -> list[tuple[int, int, int]]:
    """(sample index, kind, level) of each transition, like `Debouncer.update_many`."""
    out = []
    for i, (r, t, lv) in enumerate(zip(rows, ts, levels)):
        state = states.get(int(r))
        if state is None:
            state = states[int(r)] = make()
        got = state.step(float(t), int(lv))
        if got is not None:
            out.append((i, got[0], got[1]))
    return out
