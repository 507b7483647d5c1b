"""benchmarks/nab/scorer.py (NAB's scoring rules) on files small enough to check by hand.

The NAB figures we report are only as honest as this arithmetic, so each rule of the scorer's
docstring is pinned here: perfect -> 100, null -> 0, sigmoid position in and after a window,
probation, and the single corpus-wide threshold.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "nab"))
import scorer as nab  # noqa: E402

STD = nab.PROFILES["standard"]


def one_window_file(name: str = "f") -> nab.PreparedFile:
    # 100 rows: probation is rows 0..14, one window on rows 50..59 (width 10)
    return nab.prepare_file(name, 100, [(50, 59)])


def S(y: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def test_probation_is_15_percent_capped_at_750() -> None:
    assert nab.probation_length(100) == 15
    assert nab.probation_length(4032) == 604
    assert nab.probation_length(22695) == 750


def test_perfect_detector_scores_100_and_null_scores_0() -> None:
    f = one_window_file()
    perfect = np.zeros(100)
    perfect[50] = 1.0                      # the window's first row
    res = nab.sweep([f], [perfect], STD)
    assert res.raw == pytest.approx(1.0)
    assert res.normalised == pytest.approx(100.0)
    null = nab.sweep([f], [np.zeros(100)], STD)
    assert null.raw == pytest.approx(-1.0)
    assert null.normalised == pytest.approx(0.0)
    assert null.threshold == pytest.approx(1.1)   # "detect nothing" beats detecting everything


def test_late_detection_in_window_earns_less() -> None:
    f = one_window_file()
    s = np.zeros(100)
    s[59] = 1.0                            # last row: position -(59-59+1)/10 = -0.1
    res = nab.score_at([f], [s], STD, 0.5)
    assert res.raw == pytest.approx(S(-0.1) / S(-1.0))
    assert res.counts["f"] == (1, 0, 0)


def test_false_positives_before_and_after_a_window() -> None:
    f = one_window_file()
    s = np.zeros(100)
    s[20] = 1.0                            # before any window: -fp exactly
    s[61] = 1.0                            # 2 rows after the window: S(2/9) * fp
    res = nab.score_at([f], [s], STD, 0.5)
    assert res.raw == pytest.approx(-1.0 - 0.11 + 0.11 * S(2.0 / 9.0))
    assert res.counts["f"] == (0, 1, 2)
    far = np.zeros(100)
    far[95] = 1.0                          # 36 rows after a width-10 window: position >= 3 -> -1
    assert nab.score_at([f], [far], STD, 0.5).raw == pytest.approx(-1.0 - 0.11)


def test_probationary_rows_are_ignored_and_windows_there_do_not_count_for_null() -> None:
    f = nab.prepare_file("g", 100, [(2, 5), (50, 59)])
    s = np.zeros(100)
    s[3] = 1.0                             # inside the probationary window: not a detection
    s[10] = 1.0                            # probationary false positive: free
    res = nab.score_at([f], [s], STD, 0.5)
    assert res.raw == pytest.approx(-1.0)  # only the scorable window is missed
    assert res.null == pytest.approx(-1.0)
    assert res.perfect == pytest.approx(2.0)  # "perfect" counts every labelled window


def test_one_threshold_for_the_whole_corpus() -> None:
    a, b = one_window_file("a"), one_window_file("b")
    sa, sb = np.zeros(100), np.zeros(100)
    sa[20], sa[50] = 0.7, 0.6              # a: a false alarm scored above its true detection
    sb[50] = 0.8
    res = nab.sweep([a, b], [sa, sb], STD)
    assert res.threshold == pytest.approx(0.6)
    assert res.raw == pytest.approx(2.0 - 0.11)
    assert res.per_file == pytest.approx({"a": 1.0 - 0.11, "b": 1.0})


def test_sweep_matches_scoring_every_candidate_threshold() -> None:
    rng = np.random.default_rng(7)
    files, scores = [], []
    for k in range(4):
        n = int(rng.integers(200, 400))
        starts = sorted(rng.choice(np.arange(40, n - 30), size=2, replace=False))
        wins = [(int(s0), int(s0) + 12) for s0 in starts if True]
        if wins[1][0] <= wins[0][1]:
            wins = wins[:1]
        files.append(nab.prepare_file(f"r{k}", n, wins))
        scores.append(np.round(rng.random(n) ** 8, 2))  # many ties, few high scores
    for prof in nab.PROFILES.values():
        best = max(nab.score_at(files, scores, prof, float(t)).raw
                   for t in np.unique(np.concatenate(scores + [np.array([1.1])])))
        res = nab.sweep(files, scores, prof)
        assert res.raw == pytest.approx(best)
        assert nab.score_at(files, scores, prof, res.threshold).raw == pytest.approx(res.raw)


def test_windows_to_rows_uses_inclusive_time_limits() -> None:
    ts = np.arange(np.datetime64("2014-04-01T00:00:00"), np.datetime64("2014-04-01T01:00:00"),
                   np.timedelta64(5, "m"))
    wins = [(np.datetime64("2014-04-01T00:10:00"), np.datetime64("2014-04-01T00:20:00"))]
    assert nab.windows_to_rows(ts, wins) == [(2, 4)]
