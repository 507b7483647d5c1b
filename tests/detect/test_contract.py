"""Every registered detection method x every contract check (ids "{method}:{check}")."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streamwatch.detect.registry import METHODS

# one representative configuration per method; a new method must add itself here
PARAMS: dict[str, dict[str, Any]] = {
    "baseline": {"levels": {2: 0.5}, "direction": "both", "warmup": "60s", "fast": "10s",
                 "window": "5m"},
    "bounds": {"levels": {2: 5.0, 1: 9.0}, "direction": "up"},
    "count": {"levels": {2: 3.0}, "direction": "up", "warmup": "60s", "min_events": 2, "min_excess": 1},
    "generic": {"levels": {3: 0.99}},
}


def make(method: str):  # type: ignore[no-untyped-def]
    cls = METHODS[method]
    return cls(cls.Params.model_validate(PARAMS[method]))


def series(seed: int, n: int = 600, rows: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    r = rng.integers(0, rows, n).astype(np.int64)
    ts = 1767225600.0 + np.cumsum(rng.uniform(0.5, 3.0, n))
    x = rng.poisson(4.0, n).astype(float)
    x[n // 2: n // 2 + 40] *= 6          # a burst, so the anomalous path runs too
    dt = np.zeros(n)
    last: dict[int, float] = {}
    for i in range(n):
        dt[i] = ts[i] - last.get(int(r[i]), ts[i])
        last[int(r[i])] = ts[i]
    return r, ts, x, dt


CHECKS = ["deterministic", "rows_independent", "batch_split", "finite", "score_range",
          "warmup_zero", "reset"]


@pytest.mark.parametrize("method,check", [(m, c) for m in sorted(METHODS) for c in CHECKS],
                         ids=[f"{m}:{c}" for m in sorted(METHODS) for c in CHECKS])
def test_contract(method: str, check: str) -> None:
    r, ts, x, dt = series(1)
    if check == "deterministic":
        a, b = make(method), make(method)
        a.resize(3); b.resize(3)
        sa, sb = a.update_many(r, ts, x, dt), b.update_many(r, ts, x, dt)
        assert np.array_equal(sa.score, sb.score) and np.array_equal(sa.level, sb.level)
    elif check == "rows_independent":
        whole = make(method); whole.resize(3)
        s = whole.update_many(r, ts, x, dt)
        for row in range(3):
            m = r == row
            alone = make(method); alone.resize(1)
            sa = alone.update_many(np.zeros(m.sum(), np.int64), ts[m], x[m], dt[m])
            np.testing.assert_allclose(sa.score, s.score[m])
            assert np.array_equal(sa.level, s.level[m])
    elif check == "batch_split":
        one = make(method); one.resize(3)
        s1 = one.update_many(r, ts, x, dt)
        parts = make(method); parts.resize(3)
        cuts = [0, 7, 100, 101, 350, len(r)]
        got = [parts.update_many(r[a:b], ts[a:b], x[a:b], dt[a:b]) for a, b in zip(cuts, cuts[1:])]
        np.testing.assert_allclose(np.concatenate([g.score for g in got]), s1.score)
    elif check == "finite":
        d = make(method); d.resize(3)
        s = d.update_many(r, ts, x, dt)
        assert np.isfinite(s.score).all()
    elif check == "score_range":
        d = make(method); d.resize(3)
        s = d.update_many(r, ts, x, dt)
        assert (s.score >= 0).all() and (s.score <= 1).all()
        assert set(np.unique(s.level)) <= {0, 1, 2, 3, 4}
    elif check == "warmup_zero":
        if method == "bounds":
            pytest.skip("bounds has no history, hence no warm-up")
        d = make(method); d.resize(1)
        n = 10
        s = d.update_many(np.zeros(n, np.int64), ts[:n], x[:n] * 100, np.full(n, 1.0))
        assert (s.level == 0).all() and (s.score == 0).all()
    elif check == "reset":
        d = make(method); d.resize(3)
        d.update_many(r, ts, x, dt)
        d.reset(np.array([0, 1, 2], np.int64))
        fresh = make(method); fresh.resize(3)
        tail = slice(len(r) - 50, None)
        s_reset = d.update_many(r[tail], ts[tail], x[tail], dt[tail])
        s_fresh = fresh.update_many(r[tail], ts[tail], x[tail], dt[tail])
        np.testing.assert_allclose(s_reset.score, s_fresh.score)
