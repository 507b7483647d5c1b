"""Every vectorised method == its slow per-sample reference (tests/detect/reference.py).

For each method: several parameter sets (one comment each) x generated batches with realistic
shapes (steady Poisson counts, noisy gauges, a step drop, a surge, a stop, irregular cadences,
interleaved rows, `per` exposure samples), one `update_many` over the whole batch against the
reference sample by sample. Ids are "{method}:{params}-{scenario}".
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamwatch.detect.baseline import RobustBaseline
from streamwatch.detect.bounds import StaticBounds
from streamwatch.detect.count import PoissonCount
from streamwatch.detect.debounce import Debouncer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import (ReferenceBaseline, ReferenceBounds, ReferenceCount,  # noqa: E402
                       ReferenceDebouncer, ReferenceRows, run_debouncer)

T0 = 1767225600.0
MIN = 60.0


# --------------------------------------------------------------------------------------------
# generated batches
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Batch:
    rows: np.ndarray
    ts: np.ndarray
    x: np.ndarray
    dt: np.ndarray
    role: np.ndarray
    resets: tuple[tuple[int, tuple[int, ...]], ...] = ()   # (before sample i, rows): restarts

    @property
    def n_rows(self) -> int:
        return int(self.rows.max()) + 1


@dataclass
class Metric:
    """One metric of one row: sample times, values, and how it reaches a detector."""
    row: int
    ts: np.ndarray
    x: np.ndarray
    counter: bool
    role: int = 0
    order: int = 0       # among samples of one row at the same instant, lower comes first
    dt: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # a counter's first sample gives no interval (ingest drops it): the detector's first
        # observation already covers one; a gauge's first sample has dt 0
        if self.counter:
            self.dt = np.diff(self.ts)
            self.ts, self.x = self.ts[1:], self.x[1:]
        else:
            self.dt = np.r_[0.0, np.diff(self.ts)]


def merge(metrics: list[Metric], resets: tuple[tuple[float, tuple[int, ...]], ...] = ()
          ) -> Batch:
    """Interleave metrics in event time (then row, then `order`); resets given at a time."""
    rows = np.concatenate([np.full(len(m.ts), m.row) for m in metrics]).astype(np.int64)
    ts = np.concatenate([m.ts for m in metrics])
    x = np.concatenate([m.x for m in metrics]).astype(float)
    dt = np.concatenate([m.dt for m in metrics])
    role = np.concatenate([np.full(len(m.ts), m.role) for m in metrics]).astype(np.int64)
    order = np.concatenate([np.full(len(m.ts), m.order) for m in metrics])
    ix = np.lexsort((order, rows, ts))
    at = tuple((int(np.searchsorted(ts[ix], t)), r) for t, r in resets)
    return Batch(rows[ix], ts[ix], x[ix], dt[ix], role[ix], at)


def times(rng: np.random.Generator, minutes: float, cadence: float, jitter: float = 0.0,
          start: float = 0.0) -> np.ndarray:
    """Sample times: every `cadence` seconds, or uniform in [cadence - jitter, cadence + jitter]."""
    n = int(minutes * MIN / cadence) + 1
    steps = cadence + (rng.uniform(-jitter, jitter, n) if jitter else np.zeros(n))
    return T0 + start + np.cumsum(steps)


def profile(t: np.ndarray, changes: list[tuple[float, float, float]]) -> np.ndarray:
    """Multiplier over time: (from minute, to minute, factor) windows, 1 elsewhere."""
    m = np.ones(len(t))
    for a, b, f in changes:
        m[(t >= T0 + a * MIN) & (t < T0 + b * MIN)] = f
    return m


def counts(rng: np.random.Generator, row: int, per_min: float, t: np.ndarray,
           changes: list[tuple[float, float, float]] = (), **kw: Any) -> Metric:
    """A counter's samples: Poisson increments of a rate (per minute) that may change."""
    lam = per_min * profile(t, list(changes)) * np.r_[0.0, np.diff(t)] / MIN
    return Metric(row, t, rng.poisson(lam).astype(float), True, **kw)


def gauge(rng: np.random.Generator, row: int, level: float, noise: float, t: np.ndarray,
          changes: list[tuple[float, float, float]] = (), **kw: Any) -> Metric:
    v = level * profile(t, list(changes)) + noise * rng.normal(size=len(t))
    return Metric(row, t, np.maximum(v, 0.0), False, **kw)


# each scenario: a few rows of one kind of metric, interleaved; rng seeded per scenario

def counter_scenarios() -> dict[str, Callable[[np.random.Generator], Batch]]:
    return {
        # three rooms selling 30, 3 and 300 a minute, 10 s scrapes at different phases
        "steady": lambda g: merge([counts(g, 0, 30, times(g, 40, 10)),
                                   counts(g, 1, 3, times(g, 40, 10, start=3)),
                                   counts(g, 2, 300, times(g, 40, 10, start=7))]),
        # orders fall to a fifth at minute 25; another room stops dead at 30; one stays normal
        "drop_stop": lambda g: merge([counts(g, 0, 40, times(g, 45, 10), [(25, 99, 0.2)]),
                                      counts(g, 1, 20, times(g, 45, 15, start=4), [(30, 99, 0)]),
                                      counts(g, 2, 8, times(g, 45, 10, start=5))]),
        # a x5 flash sale for 3 minutes, a x3 lottery for 8, complaints 0.5/min with a x10 burst
        "surge": lambda g: merge([counts(g, 0, 30, times(g, 45, 10), [(20, 23, 5.0)]),
                                  counts(g, 1, 10, times(g, 45, 10, start=2), [(15, 23, 3.0)]),
                                  counts(g, 2, 0.5, times(g, 45, 30, start=1), [(25, 30, 10)])]),
        # irregular scrapes (1..40 s, some repeated: dt 0), a 12-minute hole in one row, a stop
        # and a resume
        "irregular": lambda g: merge([
            counts(g, 0, 25, np.sort(np.r_[(t := times(g, 45, 20, jitter=19)), t[::15]])),
            counts(g, 1, 60, np.r_[times(g, 15, 7, jitter=6),
                                   times(g, 18, 7, jitter=6, start=27 * MIN)]),
            counts(g, 2, 12, times(g, 45, 15, jitter=10, start=1), [(20, 28, 0.0)])]),
        # stream restarts: row 1 is reset at minute 20 (end_stream), its counts start over
        "restart": lambda g: merge([counts(g, 0, 30, times(g, 40, 10)),
                                    counts(g, 1, 15, times(g, 40, 10, start=5), [(22, 99, 0.3)])],
                                   resets=((T0 + 20 * MIN, (1,)),)),
    }


def gauge_scenarios() -> dict[str, Callable[[np.random.Generator], Batch]]:
    return {
        # audiences of 500, 2000 and 40 viewers with noise, 5 s scrapes
        "noise": lambda g: merge([gauge(g, 0, 500, 20, times(g, 30, 5)),
                                  gauge(g, 1, 2000, 50, times(g, 30, 5, start=2)),
                                  gauge(g, 2, 40, 5, times(g, 30, 5, start=4))]),
        # an outage: viewers fall to 30 % at minute 15; another room doubles for 5 minutes
        "step_surge": lambda g: merge([gauge(g, 0, 800, 25, times(g, 30, 5), [(15, 99, 0.3)]),
                                       gauge(g, 1, 300, 15, times(g, 30, 5, start=1),
                                             [(12, 17, 2.0)])]),
        # the stream stops: its gauge reads 0 from minute 12 to 20; another reads 0 until minute 5
        # (a zero baseline), then 50
        "stop": lambda g: merge([gauge(g, 0, 120, 8, times(g, 30, 5), [(12, 20, 0.0)]),
                                 gauge(g, 1, 50, 3, times(g, 30, 5, start=3), [(0, 5, 0.0)])]),
        # irregular scrapes, plus repeated instants (dt 0: scored, time does not advance)
        "irregular": lambda g: merge([gauge(g, 0, 600, 30, times(g, 30, 8, jitter=7),
                                            [(18, 99, 0.5)]),
                                      gauge(g, 1, 600, 30, np.repeat(times(g, 30, 15), 2)),
                                      gauge(g, 2, 50, 4, times(g, 30, 3, jitter=2, start=1))]),
        # row 0 restarts at minute 15 with a smaller audience
        "restart": lambda g: merge([gauge(g, 0, 900, 30, times(g, 30, 5), [(15, 99, 0.4)]),
                                    gauge(g, 1, 200, 10, times(g, 30, 5, start=1))],
                                   resets=((T0 + 15 * MIN, (0,)),)),
    }


def funnel(g: np.random.Generator, row: int, t: np.ndarray, clicks_per_min: float,
           conversion: float, lull: list[tuple[float, float, float]] = (),
           breaks: list[tuple[float, float, float]] = (), clicks_order: int = 1,
           clicks_t: np.ndarray | None = None) -> list[Metric]:
    """Product clicks (role 1) and the orders they convert to (role 0) of one room."""
    tc = t if clicks_t is None else clicks_t
    clicks = counts(g, row, clicks_per_min, tc, lull, role=1, order=clicks_order)
    # orders: each click converts with probability `conversion` (x `breaks`), counted at t
    rate = clicks_per_min * conversion * profile(t, list(lull)) * profile(t, list(breaks))
    orders = Metric(row, t, g.poisson(rate * np.r_[0.0, np.diff(t)] / MIN).astype(float), True)
    return [clicks, orders]


def viewers_and(g: np.random.Generator, row: int, t: np.ndarray, viewers: float,
                per_viewer_min: float, audience: list[tuple[float, float, float]] = (),
                breaks: list[tuple[float, float, float]] = (), gauge_order: int = 1,
                gauge_t: np.ndarray | None = None) -> list[Metric]:
    """A viewers gauge (role 1) and a counter (role 0) proportional to viewer-minutes."""
    tg = t if gauge_t is None else gauge_t
    v = gauge(g, row, viewers, viewers * 0.03, tg, audience, role=1, order=gauge_order)
    rate = viewers * per_viewer_min * profile(t, list(audience)) * profile(t, list(breaks))
    ev = Metric(row, t, g.poisson(rate * np.r_[0.0, np.diff(t)] / MIN).astype(float), True)
    return [v, ev]


def per_counter_scenarios() -> dict[str, Callable[[np.random.Generator], Batch]]:
    # clicks of a tick are reported right after that tick's orders (order=1), so they never
    # move the rate's clock: see KNOWN below for the other orders
    return {
        # 120 clicks a minute converting at 5 %, and a smaller room converting at 10 %
        "funnel_steady": lambda g: merge(funnel(g, 0, times(g, 40, 10), 120, 0.05)
                                         + funnel(g, 1, times(g, 40, 10, start=4), 30, 0.1)),
        # a product switch: clicks (and orders with them) fall to 10 % for 6 minutes - no break
        "click_lull": lambda g: merge(funnel(g, 0, times(g, 45, 10), 100, 0.08,
                                             lull=[(25, 31, 0.1)])
                                      + funnel(g, 1, times(g, 45, 10, start=3), 60, 0.05)),
        # checkout broken at minute 28: clicks go on, orders stop; another room's orders halve
        "funnel_break": lambda g: merge(funnel(g, 0, times(g, 45, 10), 100, 0.08,
                                               breaks=[(28, 99, 0.0)])
                                        + funnel(g, 1, times(g, 45, 15, start=2), 200, 0.04,
                                                 breaks=[(20, 99, 0.5)])),
        # a surge of orders per click (a coupon): x4 for 5 minutes
        "funnel_surge": lambda g: merge(funnel(g, 0, times(g, 45, 10), 80, 0.05,
                                               breaks=[(24, 29, 4.0)])),
    }


def per_counter_interleaved() -> dict[str, Callable[[np.random.Generator], Batch]]:
    return {
        # clicks reported a moment *before* the orders of the same tick (the kernel's own case)
        "clicks_first": lambda g: merge(funnel(g, 0, times(g, 45, 10), 100, 0.08,
                                               breaks=[(28, 99, 0.0)], clicks_order=-1)),
        # clicks on their own 7 s cadence, orders every 10 s
        "clicks_own_cadence": lambda g: merge(funnel(g, 0, times(g, 45, 10), 100, 0.08,
                                                     breaks=[(28, 99, 0.0)],
                                                     clicks_t=times(g, 45, 7, start=0.5))),
    }


def per_gauge_scenarios() -> dict[str, Callable[[np.random.Generator], Batch]]:
    return {
        # entries per viewer-minute: 2000 viewers, 0.05 entries per viewer-minute
        "audience_steady": lambda g: merge(viewers_and(g, 0, times(g, 40, 10), 2000, 0.05)
                                           + viewers_and(g, 1, times(g, 40, 10, start=5),
                                                         300, 0.1)),
        # the audience halves (entries with it: fine), then the platform stops sending (a cliff)
        "audience_cliff": lambda g: merge(viewers_and(g, 0, times(g, 45, 10), 1500, 0.06,
                                                      audience=[(15, 99, 0.5)],
                                                      breaks=[(30, 99, 0.1)])),
    }


def per_gauge_interleaved() -> dict[str, Callable[[np.random.Generator], Batch]]:
    return {
        # viewers scraped every 5 s, entries every 10 s
        "gauge_own_cadence": lambda g: merge(viewers_and(g, 0, times(g, 45, 10), 1500, 0.06,
                                                         breaks=[(30, 99, 0.1)],
                                                         gauge_t=times(g, 45, 5, start=0.5))),
    }


SCENARIOS: dict[str, dict[str, Callable[[np.random.Generator], Batch]]] = {
    "counter": counter_scenarios(), "gauge": gauge_scenarios(),
    "per_counter": per_counter_scenarios(), "per_gauge": per_gauge_scenarios(),
    "per_counter_interleaved": per_counter_interleaved(),
    "per_gauge_interleaved": per_gauge_interleaved(),
}


@cache
def scenario(kind: str, name: str) -> Batch:
    seed = sum(map(ord, f"{kind}/{name}"))
    return SCENARIOS[kind][name](np.random.default_rng(seed))


# --------------------------------------------------------------------------------------------
# parameter sets: (method, case) -> (params, kind of metric it watches)
# --------------------------------------------------------------------------------------------

CASES: dict[tuple[str, str], tuple[dict[str, Any], str]] = {
    # viewers_drop as shipped: three levels, default windows, warm-up and protection
    ("baseline", "viewers_drop"): ({"levels": {1: 0.7, 2: 0.5, 3: 0.35}, "direction": "down"},
                                   "gauge"),
    # a jump rule with short windows: the anomaly outlasts `adapt` and is learnt
    ("baseline", "jump_adapt"): ({"levels": {3: 0.4}, "direction": "up", "fast": "45s",
                                  "window": "6m", "warmup": "60s", "ramp": "2m",
                                  "adapt": "4m"}, "gauge"),
    # no protection, no floor, a low significance gate, two levels both ways
    ("baseline", "both_loose"): ({"levels": {2: 0.2, 4: 0.1}, "direction": "both",
                                  "protect": 1.0, "floor": 0.0, "z_min": 2.0, "fast": "10s",
                                  "window": "2m", "warmup": "30s"}, "gauge"),
    # full protection that never adapts: an anomaly freezes the baseline
    ("baseline", "frozen"): ({"levels": {2: 0.3}, "direction": "both", "protect": 0.0,
                              "ramp": "0s", "adapt": "10h", "fast": "15s", "window": "4m",
                              "warmup": "60s"}, "gauge"),
    # gmv_level-like: a counter's rate per minute, down, Poisson floor on the spread
    ("baseline", "counter_down"): ({"levels": {3: 0.9, 2: 0.5}, "direction": "down",
                                    "counter": True, "fast": "30s", "window": "5m", "z_min": 3.0,
                                    "warmup": "90s", "ramp": "3m", "adapt": "6m"}, "counter"),
    # clicks_burst as shipped: a counter going up 150 %
    ("baseline", "counter_up"): ({"levels": {4: 1.5}, "direction": "up", "counter": True,
                                  "fast": "30s"}, "counter"),
    # a ceiling with two levels, up (cpu_saturated-like); the scenarios cross both limits
    ("bounds", "up_two"): ({"levels": {2: 100.0, 1: 600.0}, "direction": "up"}, "gauge"),
    # a floor with two levels, down
    ("bounds", "down_two"): ({"levels": {2: 300.0, 1: 100.0}, "direction": "down"}, "gauge"),
    # one "down" limit
    ("bounds", "down_one"): ({"levels": {3: 250.0}, "direction": "down"}, "gauge"),
    # a counter's rate per minute against limits
    ("bounds", "counter_up"): ({"levels": {3: 50.0, 1: 200.0}, "direction": "up",
                                "counter": True}, "counter"),
    # orders_stopped without `per`: expected orders missing, defaults elsewhere
    ("count", "down_default"): ({"levels": {1: 8.0}, "direction": "down", "min_events": 8},
                                "counter"),
    # a short memory, two levels, ratio 0.25, adapt and ramp short enough to be crossed
    ("count", "down_short"): ({"levels": {1: 20.0, 2: 6.0}, "direction": "down", "ratio": 0.25,
                               "max_fraction": 0.4, "window": "5m", "warmup": "60s",
                               "min_events": 5, "ramp": "2m", "adapt": "5m"}, "counter"),
    # learns from the first sample (no ramp): the surge pause decides alone
    ("count", "down_surge_pause"): ({"levels": {2: 5.0}, "direction": "down", "window": "3m",
                                     "warmup": "0s", "ramp": "0s", "adapt": "1h",
                                     "min_events": 3}, "counter"),
    # complaints_surge as shipped
    ("count", "up_complaints"): ({"levels": {2: 7.0}, "direction": "up", "ratio": 4.0,
                                  "window": "30m", "min_events": 2, "min_excess": 5,
                                  "warmup": "5m"}, "counter"),
    # a x10 surge test: few events give much evidence, so min_excess decides
    ("count", "up_few"): ({"levels": {2: 4.0}, "direction": "up", "ratio": 10.0,
                           "min_excess": 3, "window": "10m", "warmup": "2m",
                           "min_events": 2}, "counter"),
    # a x2 surge test, two levels, a short adapt: long surges become the normal
    ("count", "up_adapt"): ({"levels": {1: 12.0, 3: 3.0}, "direction": "up", "ratio": 2.0,
                             "window": "2m", "warmup": "0s", "ramp": "0s", "adapt": "2m",
                             "min_excess": 1, "min_events": 1}, "counter"),
    # orders_stopped as shipped: orders per product click
    ("count", "per_clicks_down"): ({"levels": {1: 8.0}, "direction": "down",
                                    "per": "product_clicks_total", "window": "30m",
                                    "min_events": 8}, "per_counter"),
    # a surge of orders per click, short memory
    ("count", "per_clicks_up"): ({"levels": {2: 6.0}, "direction": "up", "ratio": 3.0,
                                  "per": "product_clicks_total", "window": "5m",
                                  "warmup": "2m", "min_events": 5, "min_excess": 3,
                                  "ramp": "3m", "adapt": "6m"}, "per_counter"),
    # entries_cliff as shipped: entries per viewer-minute
    ("count", "per_viewers_down"): ({"levels": {2: 25.0}, "direction": "down", "ratio": 0.25,
                                     "max_fraction": 0.4, "window": "5m", "min_events": 20,
                                     "per": "viewers", "per_gauge": True}, "per_gauge"),
}

DETECTORS = {"baseline": (RobustBaseline, ReferenceBaseline),
             "bounds": (StaticBounds, ReferenceBounds),
             "count": (PoissonCount, ReferenceCount)}

# (`*_interleaved` scenarios: exposure reported just before the numerator at the same instant,
# as the simulator's collectors do - they once caught count.py's decay clock moving on role-1
# samples.)


def params_for(cases: list[tuple[str, str, str, str]]) -> list[Any]:
    return [pytest.param(m, c, k, s, id=f"{m}:{c}-{s}",
                         marks=[])
            for m, c, k, s in cases]


def all_cases() -> list[Any]:
    out = []
    for (method, case), (_, kind) in CASES.items():
        kinds = [kind] + ([kind + "_interleaved"] if kind.startswith("per_") else [])
        out += [(method, case, k, s) for k in kinds for s in SCENARIOS[k]]
    return params_for(out)


def compare(method: str, params: dict[str, Any], b: Batch) -> None:
    cls, ref_cls = DETECTORS[method]
    p = cls.Params.model_validate(params)
    det = cls(p)
    det.resize(b.n_rows)
    ref = ReferenceRows(lambda: ref_cls(p))
    cuts = [0] + [i for i, _ in b.resets] + [len(b.rows)]
    got, want = [], []
    for k, (a, z) in enumerate(zip(cuts, cuts[1:])):
        if k > 0:                                    # a restart before sample a
            rows = np.array(b.resets[k - 1][1], np.int64)
            det.reset(rows)
            ref.reset(rows.tolist())
        s = slice(a, z)
        out = det.update_many(b.rows[s], b.ts[s], b.x[s], b.dt[s], role=b.role[s])
        got.append(out)
        want += ref.update(b.rows[s], b.ts[s], b.x[s], b.dt[s], b.role[s])
    score = np.concatenate([g.score for g in got])
    expected = np.concatenate([g.expected for g in got])
    level = np.concatenate([g.level for g in got])
    observed = np.concatenate([g.observed if g.observed is not None else b.x[a:z]
                               for g, a, z in zip(got, cuts, cuts[1:])])
    w_score, w_exp, w_lvl, w_obs = (np.array(c) for c in zip(*want))
    first_bad = np.flatnonzero(level != w_lvl)
    where = f" (first level mismatch at sample {first_bad[0]})" if len(first_bad) else ""
    np.testing.assert_array_equal(level, w_lvl, err_msg="level" + where)
    np.testing.assert_allclose(score, w_score, rtol=1e-9, atol=1e-12, err_msg="score")
    np.testing.assert_allclose(expected, w_exp, rtol=1e-9, atol=1e-12, err_msg="expected")
    np.testing.assert_allclose(observed, w_obs, rtol=1e-9, atol=1e-12, err_msg="observed")


@pytest.mark.parametrize("method,case,kind,name", all_cases())
def test_kernel_matches_reference(method: str, case: str, kind: str, name: str) -> None:
    params, _ = CASES[(method, case)]
    b = scenario(kind, name)
    compare(method, params, b)


def test_cases_exercise_the_interesting_paths() -> None:
    """The batches are not all-normal: every parameter set reaches each of its levels in some
    scenario (a reference that agreed with a kernel only on calm data would prove little)."""
    for (method, case), (params, kind) in CASES.items():
        cls, _ = DETECTORS[method]
        seen: set[int] = set()
        for name in SCENARIOS[kind]:
            b = scenario(kind, name)
            det = cls(cls.Params.model_validate(params))
            det.resize(b.n_rows)
            seen |= set(det.update_many(b.rows, b.ts, b.x, b.dt, role=b.role).level.tolist())
        assert set(params["levels"]) <= seen, f"{method}:{case} reaches only levels {seen}"


# --------------------------------------------------------------------------------------------
# Debouncer
# --------------------------------------------------------------------------------------------

DEBOUNCE = {
    # every anomalous sample is an onset at once; clears on the first normal one
    "instant": (0.0, 0.0),
    # min_duration 30 s (dips up to 15 s tolerated), clear after a minute
    "typical": (30.0, 60.0),
    # clear_after shorter than half of min_duration: silences end runs before dips do
    "short_clear": (60.0, 20.0),
    # a long confirmation and a slow clear (feedback rules: 3 minutes)
    "slow": (90.0, 180.0),
}


def level_sequence(seed: int, n: int = 3000, rows: int = 4) -> tuple[np.ndarray, ...]:
    """Runs of levels (a sticky Markov chain) on irregular, interleaved, sometimes gappy times."""
    g = np.random.default_rng(seed)
    r = g.integers(0, rows, n).astype(np.int64)
    steps = g.exponential(4.0, n)
    gaps = g.random(n) < 0.01                        # silences of 30 s .. 7 min
    steps[gaps] += g.uniform(30, 400, gaps.sum())
    steps[g.random(n) < 0.05] = 0.0                  # several samples at one instant
    ts = T0 + np.cumsum(steps)
    lvl = np.zeros(n, np.int64)
    cur = np.zeros(rows, np.int64)
    for i in range(n):
        if g.random() < 0.08:
            cur[r[i]] = g.choice([0, 0, 0, 1, 2, 3, 4])
        # short dips of normal inside a run
        lvl[i] = 0 if (cur[r[i]] and g.random() < 0.1) else cur[r[i]]
    return r, ts, lvl


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", sorted(DEBOUNCE))
def test_debouncer_matches_reference(case: str, seed: int) -> None:
    min_dur, clear = DEBOUNCE[case]
    r, ts, lvl = level_sequence(seed)
    deb = Debouncer(min_dur, clear)
    deb.resize(4)
    states: dict[int, ReferenceDebouncer] = {}
    make = lambda: ReferenceDebouncer(min_dur, clear)  # noqa: E731
    cuts = [0, 1000, 1001, 2200, len(r)]
    got, want = [], []
    for k, (a, z) in enumerate(zip(cuts, cuts[1:])):
        if k == 3:                                   # streams end: forced clears
            rows = np.array([0, 2], np.int64)
            forced = deb.force_clear(rows).tolist()
            assert forced == [q for q in (0, 2) if q in states and states[q].force_clear()]
        idx, kind, lv = deb.update_many(r[a:z], ts[a:z], lvl[a:z])
        got += [(int(i) + a, int(k_), int(l_)) for i, k_, l_ in zip(idx, kind, lv)]
        want += [(i + a, k_, l_) for i, k_, l_ in run_debouncer(states, make, r[a:z], ts[a:z],
                                                               lvl[a:z])]
    assert len(want) > 20                            # onsets, worsenings and clears happened
    assert got == want
