"""GenericDetector: contract behaviour, detection sanity, and kernel == slow reference."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from streamwatch.detect.generic import GenericDetector, GenericParams, score_series

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_generic import ReferenceGeneric  # noqa: E402

T0 = 1767225600.0


def run(x: np.ndarray, params: GenericParams | None = None, rows: np.ndarray | None = None,
        n_rows: int = 1, ts: np.ndarray | None = None) -> np.ndarray:
    det = GenericDetector(params)
    det.resize(n_rows)
    r = np.zeros(len(x), np.int64) if rows is None else rows
    ts = T0 + 300.0 * np.arange(len(x)) if ts is None else ts
    return det.update_many(r, ts, np.asarray(x, float), np.full(len(x), 300.0)).score


def noise(seed: int, n: int, scale: float = 1.0, level: float = 0.0) -> np.ndarray:
    return level + scale * np.random.default_rng(seed).normal(size=n)


SERIES = {
    "gauss": noise(1, 3000),
    "tiny_scale": noise(2, 3000, 1e-6, 5e-6),
    "huge_scale": noise(3, 3000, 1e9, 4e10),
    "poisson_burst": np.r_[np.random.default_rng(4).poisson(3.0, 2000),
                           np.random.default_rng(5).poisson(12.0, 60),
                           np.random.default_rng(6).poisson(3.0, 900)].astype(float),
    "flat_then_step": np.r_[np.full(1500, 7.0), np.full(1500, 8.0)],
    "random_walk": np.cumsum(noise(7, 3000)) + noise(8, 3000, 0.3),
    "heavy_tail": np.random.default_rng(9).standard_t(1.5, 3000),
}


@pytest.mark.parametrize("name", sorted(SERIES))
def test_scores_are_finite_and_in_unit_interval(name: str) -> None:
    s = run(SERIES[name])
    assert np.all(np.isfinite(s))
    assert s.min() >= 0.0 and s.max() < 1.0
    assert len(np.unique(s)) > 3          # continuous, not a 0/1 flag


def test_zero_during_warmup_then_scoring() -> None:
    p = GenericParams(warmup=50)
    x = noise(11, 400)
    x[10] = 1e6                           # an enormous spike inside the warm-up is not scored
    s = run(x, p)
    assert np.all(s[:50] == 0.0)
    assert np.any(s[50:] > 0.0)


def test_spike_and_step_score_high_while_steady_noise_stays_low() -> None:
    x = noise(12, 4000)
    calm = run(x)
    assert calm[200:].max() < 0.99        # a 1-in-100 event at most, over 3800 samples
    spiked = x.copy()
    spiked[3000] += 20.0
    assert run(spiked)[3000] > 0.999
    stepped = x.copy()
    stepped[3000:] += 4.0
    assert run(stepped)[3000:3020].max() > 0.995     # a 4-sigma shift: at least level 3


def test_integer_counts_and_flat_lines_do_not_explode() -> None:
    s = run(SERIES["flat_then_step"])
    assert np.all(s[:1500] == 0.0)        # no variation, no evidence, no division by zero
    assert s[1500] > 0.995                # the first change ever seen (rank-limited by history)
    counts = np.random.default_rng(13).poisson(0.5, 4000).astype(float)
    assert run(counts)[200:].max() < 0.99


def test_direction_up_ignores_drops() -> None:
    x = noise(14, 3000)
    x[2500] -= 30.0
    assert run(x, GenericParams(direction="both"))[2500] > 0.999
    assert run(x, GenericParams(direction="up"))[2500] < 0.5
    assert run(x, GenericParams(direction="down"))[2500] > 0.999


def test_rows_are_independent_when_interleaved() -> None:
    a, b = SERIES["gauss"], SERIES["poisson_burst"]
    r = np.random.default_rng(15).permutation(np.r_[np.zeros(len(a)), np.ones(len(b))])
    r = r.astype(np.int64)
    x = np.empty(len(r))
    x[r == 0], x[r == 1] = a, b           # each row keeps its own order (and its own clock)
    ts = np.empty(len(r))
    ts[r == 0], ts[r == 1] = T0 + 300.0 * np.arange(len(a)), T0 + 300.0 * np.arange(len(b))
    both = run(x, rows=r, n_rows=2, ts=ts)
    np.testing.assert_array_equal(both[r == 0], run(a))
    np.testing.assert_array_equal(both[r == 1], run(b))


def test_deterministic_and_batch_split_invariant() -> None:
    x = SERIES["heavy_tail"]
    whole = run(x)
    np.testing.assert_array_equal(whole, run(x))
    det = GenericDetector()
    det.resize(1)
    parts = []
    for lo, hi in [(0, 1), (1, 700), (700, 2100), (2100, len(x))]:
        n = hi - lo
        parts.append(det.update_many(np.zeros(n, np.int64), T0 + np.arange(lo, hi) * 300.0,
                                     x[lo:hi], np.full(n, 300.0)).score)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_reset_forgets_a_row() -> None:
    x = SERIES["random_walk"]
    det = GenericDetector()
    det.resize(2)
    ts = T0 + 300.0 * np.arange(len(x))
    det.update_many(np.zeros(len(x), np.int64), ts, x, np.zeros(len(x)))
    det.reset(np.array([0]))
    again = det.update_many(np.zeros(len(x), np.int64), ts, x, np.zeros(len(x))).score
    np.testing.assert_array_equal(again, run(x))


def test_non_finite_samples_are_skipped_without_poisoning_state() -> None:
    x = SERIES["gauss"][:1500].copy()
    holed = np.insert(x, [300, 900], [np.nan, np.inf])
    s = run(holed)
    keep = np.isfinite(holed)
    assert np.all(s[~keep] == 0.0)
    np.testing.assert_array_equal(s[keep], run(x))


def test_anomalous_sample_does_not_move_the_baseline() -> None:
    x = noise(16, 3000, level=100.0)
    x[2000] = 1e4
    det = GenericDetector()
    det.resize(1)
    ts = T0 + 300.0 * np.arange(len(x))
    out = det.update_many(np.zeros(len(x), np.int64), ts, x, np.zeros(len(x)))
    assert out.score[2000] > 0.999
    assert abs(out.expected[2002] - 100.0) < 2.0      # protected: the spike was not learned
    loose = GenericDetector(GenericParams(levels={3: 1 - 1e-12}))   # protection out of reach
    loose.resize(1)
    unprotected = loose.update_many(np.zeros(len(x), np.int64), ts, x, np.zeros(len(x)))
    assert unprotected.expected[2002] - 100.0 > 100.0


def test_novelty_gate_reports_an_incident_once_then_rearms() -> None:
    x = noise(17, 5000)
    x[3000:3040] += 6.0                  # one incident lasting 40 samples
    x[4000] += 25.0                      # a new one after a long calm spell
    s = run(x)
    hot = np.nonzero(s[3000:3040] > 0.99)[0]
    assert 0 < len(hot) <= 5             # the onset, not every sample of the incident
    assert s[4000] > 0.999
    ungated = run(x, GenericParams(refractory=0))
    assert (ungated[3000:3040] > 0.99).sum() > len(hot)


def test_levels_follow_thresholds() -> None:
    det = GenericDetector(GenericParams(levels={3: 0.995, 4: 0.98}))
    lv = det.levels_of(np.array([0.5, 0.98, 0.99, 0.995, 0.9999]))
    np.testing.assert_array_equal(lv, [0, 4, 4, 3, 3])


def test_score_series_is_the_one_row_detector() -> None:
    x = SERIES["poisson_burst"]
    ts = T0 + 60.0 * np.arange(len(x))
    np.testing.assert_array_equal(score_series(ts, x), run(x, ts=ts))


def daily(days: int, spike_at: float | None = None, seed: int = 19) -> tuple[np.ndarray, np.ndarray]:
    """5-minute samples over `days` days: noise, a day/night level, and a nightly job's spike at
    03:00 every day from the third on (plus one at `spike_at` hours if given, on the last day)."""
    n = 288 * days
    ts = T0 + 300.0 * np.arange(n)
    hour = (ts % 86400.0) / 3600.0
    x = noise(seed, n) + 5.0 * (np.abs(hour - 14.0) < 6.0)
    x[(np.abs(hour - 3.0) < 0.01) & (ts >= T0 + 2 * 86400.0)] = 25.0     # the job: always 25
    if spike_at is not None:
        x[n - 288 + int(spike_at * 12)] += 25.0
    return ts, x


def test_a_spike_every_day_at_the_same_hour_stops_being_news() -> None:
    ts, x = daily(12, spike_at=9.0)
    s = score_series(ts, x)
    at3 = np.nonzero(np.abs((ts % 86400.0) / 3600.0 - 3.0) < 0.01)[0][2:]
    assert s[at3[0]] > 0.99                       # the first nightly spike: a novelty
    assert s[at3[-5:]].max() < 0.9                # the same spike a week later: routine
    assert s[len(x) - 288 + 108] > 0.99           # the same spike at 09:00 instead: news
    off = score_series(ts, x, GenericParams(season_days=0))
    assert off[at3[-5:]].min() > 0.99             # without the envelope, a rare sample each day


def test_no_wall_clock_means_no_seasonal_opinion() -> None:
    ts, x = daily(4)
    nan_ts = np.full(len(x), np.nan)
    np.testing.assert_array_equal(score_series(nan_ts, x),
                                  score_series(ts, x, GenericParams(season_days=0)))


def test_a_gap_in_time_empties_the_envelope() -> None:
    ts, x = daily(6)
    late = np.r_[ts[:864], ts[864:] + 30 * 86400.0]   # 30 days of silence after day 3
    at3 = np.nonzero(np.abs((ts % 86400.0) / 3600.0 - 3.0) < 0.01)[0]    # spikes from day 2
    assert score_series(ts, x)[at3[3]] < 0.9      # day 3: yesterday had the same spike
    s = score_series(late, x)
    assert s[at3[3]] > 0.99                       # ... a month later, yesterday is unknown
    assert s[at3[4]] < 0.9                        # and the next day it is routine again


@pytest.mark.parametrize("name", sorted(SERIES))
def test_kernel_matches_slow_reference(name: str) -> None:
    x = SERIES[name]
    ts = T0 + 300.0 * np.arange(len(x))
    ref = ReferenceGeneric()
    expected = np.array([ref.update(v, t) for v, t in zip(x, ts)])
    np.testing.assert_allclose(run(x), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("season", [(14, 2), (2, 0), (1, 5)])
def test_kernel_matches_reference_on_a_daily_series_with_gaps(season: tuple[int, int]) -> None:
    ts, x = daily(9, spike_at=20.0)
    ts = np.where(np.arange(len(ts)) > 1500, ts + 2 * 86400.0 + 777.0, ts)   # a 2-day hole
    p = GenericParams(season_days=season[0], season_slots=season[1])
    ref = ReferenceGeneric(p)
    expected = np.array([ref.update(v, t) for v, t in zip(x, ts)])
    np.testing.assert_allclose(score_series(ts, x, p), expected, rtol=1e-9, atol=1e-12)


def test_kernel_matches_reference_on_many_rows_with_other_params() -> None:
    p = GenericParams(scales=(1, 3, 20), contrast=4.0, memory=256, warmup=10, refractory=50.0,
                      gate=0.3, rearm=20, direction="up")
    rng = np.random.default_rng(18)
    n_rows, n = 5, 6000
    rows = rng.integers(0, n_rows, n).astype(np.int64)
    x = np.where(rng.random(n) < 0.01, 15.0, 0.0) + rng.normal(size=n) * (1 + rows)
    got = run(x, p, rows=rows, n_rows=n_rows)
    ts = T0 + 300.0 * np.arange(n)
    for r in range(n_rows):
        ref = ReferenceGeneric(p)
        expected = np.array([ref.update(v, t) for v, t in zip(x[rows == r], ts[rows == r])])
        np.testing.assert_allclose(got[rows == r], expected, rtol=1e-9, atol=1e-12)
