"""The built-in simulator: determinism, sample validity, ground truth that matches the data."""
from __future__ import annotations

import json
import math
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamwatch.sim import Simulator, write_session
from streamwatch.sim.labels import grade_level
from streamwatch.sim.scenario import Impact

CATALOGUE = {
    "viewers", "entries_total", "comments_total", "likes_total", "shares_total", "follows_total",
    "product_clicks_total", "orders_total", "gmv_total", "complaints_total", "refunds_total",
    "bitrate_kbps", "fps", "dropped_frames_ratio", "rebuffer_ratio", "cpu_utilization",
    "latency_p99_ms", "error_ratio", "live",
}
RATIOS = {"dropped_frames_ratio", "rebuffer_ratio", "cpu_utilization", "error_ratio"}
INCIDENT_TYPES = {"stream_outage", "checkout_broken", "platform_throttle", "host_absent",
                  "complaint_surge", "bot_traffic", "service_degradation"}
NORMAL_TYPES = {"ramp_up", "flash_sale", "lottery", "product_switch", "goodbye"}
ARTIFACT_TYPES = {"counter_reset", "duplicate", "late", "gap"}
Series = dict[tuple[str, str], np.ndarray]


@pytest.fixture(scope="module")
def session() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    sim = Simulator(seed=1, rooms=12, minutes=90)
    return list(sim.samples()), sim.labels()


@pytest.fixture(scope="module")
def series(session: tuple[list[dict[str, Any]], dict[str, Any]]) -> Series:
    """Per (stream, metric): unique (ts, value) rows sorted by event time."""
    acc: dict[tuple[str, str], set[tuple[float, float]]] = defaultdict(set)
    for s in session[0]:
        acc[(s["stream"], s["metric"])].add((s["ts"], s["value"]))
    return {k: np.array(sorted(v)) for k, v in acc.items()}


def _window(series: Series, stream: str, metric: str, t0: float, t1: float) -> np.ndarray:
    a = series.get((stream, metric), np.zeros((0, 2)))
    return a[(a[:, 0] >= t0) & (a[:, 0] < t1)]


def _increase(series: Series, stream: str, metric: str, t0: float, t1: float) -> float:
    """How much a counter grew over [t0, t1); after a reset the new value is all growth."""
    w = _window(series, stream, metric, t0, t1)
    assert len(w) >= 2, (stream, metric)
    d = np.diff(w[:, 1])
    return float(np.where(d >= 0, d, w[1:, 1]).sum())


def _rate_pm(series: Series, stream: str, metric: str, t0: float, t1: float) -> float:
    w = _window(series, stream, metric, t0, t1)
    return _increase(series, stream, metric, t0, t1) / ((w[-1, 0] - w[0, 0]) / 60.0)


def test_same_seed_same_session_and_different_seed_differs() -> None:
    a, b, c = (Simulator(seed, rooms=4, minutes=20) for seed in (3, 3, 4))
    sa = list(a.samples())
    assert sa == list(b.samples())
    assert sa == list(a.samples())            # a second run of one simulator is identical too
    assert a.labels() == b.labels()
    assert sa != list(c.samples())
    assert a.labels() != c.labels()


def test_samples_is_a_lazy_generator_in_default_epoch() -> None:
    sim = Simulator(seed=9, rooms=30, minutes=6 * 60)
    gen = sim.samples()
    assert isinstance(gen, types.GeneratorType)
    first = [next(gen) for _ in range(2000)]
    assert 1767225600.0 <= min(s["ts"] for s in first)
    assert max(s["ts"] for s in first) < 1767225600.0 + 600


def test_write_session_is_byte_identical(tmp_path: Path) -> None:
    n1, s1, l1 = write_session(tmp_path / "a", seed=5, rooms=3, minutes=15)
    n2, s2, l2 = write_session(tmp_path / "b", seed=5, rooms=3, minutes=15)
    assert s1.read_bytes() == s2.read_bytes() and l1.read_bytes() == l2.read_bytes()
    lines = s1.read_bytes().splitlines()
    assert n1 == n2 == len(lines) > 1000
    assert json.loads(lines[0])["stream"]
    labels = json.loads(l1.read_text())
    assert labels == Simulator(5, 3, 15).labels()
    assert (labels["seed"], labels["rooms"], labels["minutes"]) == (5, 3, 15)


def test_every_sample_is_valid(session: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    samples, labels = session
    assert len(samples) > 50_000
    rooms = {s["stream"]: s for s in labels["streams"] if s["kind"] == "room"}
    labelled = 0
    for s in samples:
        assert set(s) <= {"stream", "metric", "ts", "value", "labels"}
        assert s["metric"] in CATALOGUE
        assert type(s["ts"]) is float and type(s["value"]) is float
        assert labels["start_ts"] <= s["ts"] < labels["end_ts"]
        assert round(s["ts"], 3) == s["ts"]
        v = s["value"]
        assert math.isfinite(v) and v >= 0.0, s
        if s["metric"] in RATIOS:
            assert v <= 1.0, s
        if s["metric"] == "live":
            assert v in (0.0, 1.0)
        if "labels" in s:
            labelled += 1
            assert s["labels"] == {"platform": rooms[s["stream"]]["platform"]}
    assert 0 < labelled < len(samples)


def test_counters_are_monotonic_except_at_labelled_resets(
        series: Series, session: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    resets = defaultdict(list)
    for a in session[1]["artifacts"]:
        if a["type"] == "counter_reset":
            resets[(a["stream"], a["metric"])].append(a["ts"])
    decreases = 0
    for key, rows in series.items():
        if not key[1].endswith("_total"):
            continue
        assert len(np.unique(rows[:, 0])) == len(rows), key     # one value per timestamp
        for i in np.flatnonzero(np.diff(rows[:, 1]) < 0):
            t_prev, t_cur = rows[i, 0], rows[i + 1, 0]
            assert any(t_prev < r <= t_cur for r in resets[key]), (key, t_prev, t_cur)
            decreases += 1
    assert decreases > 0


def test_catalogue_is_covered(session: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    labels = session[1]
    incidents = labels["incidents"]
    assert {i["type"] for i in incidents} == INCIDENT_TYPES
    assert 12 <= len(incidents) <= 40
    assert {e["type"] for e in labels["normal_events"]} == NORMAL_TYPES
    assert {a["type"] for a in labels["artifacts"]} == ARTIFACT_TYPES
    assert len({i["id"] for i in incidents}) == len(incidents)
    shared = [i for i in incidents if i["stream"] == "svc:payment"
              and i["type"] == "checkout_broken"]
    assert len(shared) == 1 and shared[0]["level"] == 1 and len(shared[0]["affected_streams"]) > 3
    teams = {"stream_outage": "tech", "checkout_broken": "tech", "service_degradation": "tech",
             "platform_throttle": "live_ops", "host_absent": "live_ops", "bot_traffic": "live_ops",
             "complaint_surge": "customer_service"}
    for i in incidents:
        assert i["team"] == teams[i["type"]] and i["level"] in (1, 2, 3, 4)
        assert i["start_ts"] < i["end_ts"]
    outages = [i for i in incidents if i["type"] == "stream_outage"]
    assert {i["silent"] for i in outages} == {True, False}
    json.dumps(labels, allow_nan=False)      # plain JSON types only


def test_audience_spans_orders_of_magnitude(
        session: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    peaks = [s["peak_viewers"] for s in session[1]["streams"] if s["kind"] == "room"]
    assert len(peaks) == 12 and max(peaks) / min(peaks) >= 100
    starts = {s["start_ts"] for s in session[1]["streams"] if s["kind"] == "room"}
    assert len(starts) > 3                     # staggered starts


def test_some_samples_arrive_out_of_order(
        session: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    samples, labels = session
    newest: dict[str, float] = {}
    behind: set[tuple[str, str, float]] = set()
    for s in samples:
        if s["ts"] < newest.get(s["stream"], -1.0) - 1.0:
            behind.add((s["stream"], s["metric"], s["ts"]))
        newest[s["stream"]] = max(newest.get(s["stream"], -1.0), s["ts"])
    late = {(a["stream"], a["metric"], a["ts"]) for a in labels["artifacts"] if a["type"] == "late"}
    assert len(behind & late) >= 0.8 * len(late) > 0


def test_duplicates_gaps_and_silences_match_labels(
        session: tuple[list[dict[str, Any]], dict[str, Any]], series: Series) -> None:
    samples, labels = session
    seen: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    for s in samples:
        seen[(s["stream"], s["metric"], s["ts"])].append(s["value"])
    dups = [a for a in labels["artifacts"] if a["type"] == "duplicate"]
    for a in dups:
        vals = seen[(a["stream"], a["metric"], a["ts"])]
        assert len(vals) == 2 and vals[0] == vals[1], a
    assert sum(len(v) == 2 for v in seen.values()) == len(dups)
    for a in labels["artifacts"]:
        if a["type"] == "gap":
            assert len(_window(series, a["stream"], a["metric"], a["ts"], a["end_ts"])) == 0
    silent = [i for i in labels["incidents"] if i["silent"]]
    for i in silent:
        quiet = [s for s in samples if s["stream"] == i["stream"]
                 and i["start_ts"] <= s["ts"] < i["end_ts"]]
        assert quiet == []
        assert len(_window(series, i["stream"], "viewers", i["end_ts"], i["end_ts"] + 120)) > 0


def test_incident_signatures_are_in_the_data(
        session: tuple[list[dict[str, Any]], dict[str, Any]], series: Series) -> None:
    labels = session[1]
    checked = set()
    for i in labels["incidents"]:
        st, t0, t1 = i["stream"], i["start_ts"], i["end_ts"]
        before, during = (t0 - 300, t0), (t0 + min(60, (t1 - t0) / 3), t1)
        if i["type"] == "stream_outage" and not i["silent"]:
            b = _window(series, st, "bitrate_kbps", *before)[:, 1].mean()
            d = _window(series, st, "bitrate_kbps", *during)[:, 1].mean()
            assert d < 0.35 * b, i
            vb = _window(series, st, "viewers", *before)[:, 1].mean()
            vd = _window(series, st, "viewers", *during)[:, 1].min()
            assert vd < (1.0 - 0.5 * i["magnitude"]) * vb, i
        elif i["type"] == "checkout_broken" and st.startswith("room-"):
            assert _rate_pm(series, st, "orders_total", *during) < 0.2 * _rate_pm(
                series, st, "orders_total", *before), i
            assert _rate_pm(series, st, "product_clicks_total", *during) > 0.4 * _rate_pm(
                series, st, "product_clicks_total", *before), i
        elif i["type"] == "checkout_broken":
            err = _window(series, st, "error_ratio", *during)[:, 1].mean()
            assert err > 0.2, i
            rooms = [r for r in i["affected_streams"]
                     if len(_window(series, r, "orders_total", *before)) >= 2
                     and len(_window(series, r, "orders_total", *during)) >= 2]
            ob = sum(_rate_pm(series, r, "orders_total", *before) for r in rooms)
            od = sum(_rate_pm(series, r, "orders_total", *during) for r in rooms)
            assert od < 0.2 * ob, i
        elif i["type"] == "bot_traffic":
            vb = _window(series, st, "viewers", *before)[:, 1].mean()
            vd = _window(series, st, "viewers", t0 + 150, t0 + 300)[:, 1].mean()
            assert vd > 1.25 * vb, i
        elif i["type"] == "complaint_surge":
            during_ = _increase(series, st, "complaints_total", t0, t1 + 120)
            before_ = _rate_pm(series, st, "complaints_total", *before) * (t1 - t0) / 60
            assert during_ >= max(6.0, 2.0 * before_), (during_, before_, i)
        else:
            continue
        checked.add(i["type"] if st.startswith("room-") else "shared")
    assert {"stream_outage", "checkout_broken", "bot_traffic", "complaint_surge",
            "shared"} <= checked


def test_iter_ticks_groups_the_same_samples_by_arrival() -> None:
    sim = Simulator(seed=11, rooms=3, minutes=10)
    ticks = list(sim.iter_ticks(tick_s=2.0))
    times = [t for t, _ in ticks]
    assert np.allclose(np.diff(times), 2.0)
    assert times[0] == sim.start_ts + 2.0 and times[-1] >= sim.start_ts + 600
    assert [s for _, batch in ticks for s in batch] == list(sim.samples())
    for t, batch in ticks:
        assert all(s["ts"] < t for s in batch)          # nothing from the future


def test_tiny_sessions_work() -> None:
    only_services = Simulator(seed=2, rooms=0, minutes=3)
    streams = {s["stream"] for s in only_services.samples()}
    assert streams == {"svc:payment", "svc:api"}
    one = Simulator(seed=2, rooms=1, minutes=1.5)
    assert {s["stream"] for s in one.samples()} == {"room-000", "svc:payment", "svc:api"}
    assert one.labels()["incidents"] == []          # too short to place anything provable
    with pytest.raises(ValueError):
        Simulator(seed=2, rooms=1, minutes=0)


@pytest.mark.parametrize(("viewers", "gmv", "tv", "tg", "base", "want"), [
    (50.0, 20.0, 10_000.0, 5_000.0, 2, 3),      # tiny room: one level less severe
    (50.0, 20.0, 10_000.0, 5_000.0, 4, 4),      # ... capped at notice
    (50.0, 20.0, 100.0, 40.0, 2, 3),            # tiny wins over a large share of a tiny total
    (4_000.0, 100.0, 10_000.0, 5_000.0, 2, 1),  # >= 30 % of viewers: more severe
    (500.0, 2_000.0, 10_000.0, 5_000.0, 3, 2),  # >= 30 % of GMV per minute
    (500.0, 2_000.0, 10_000.0, 5_000.0, 1, 1),  # ... floored at critical
    (500.0, 100.0, 10_000.0, 5_000.0, 2, 2),    # ordinary
    (99.0, 150.0, 10_000.0, 5_000.0, 3, 3),     # small audience but real sales: not tiny
])
def test_level_rule(viewers: float, gmv: float, tv: float, tg: float, base: int,
                    want: int) -> None:
    assert grade_level(base, Impact(viewers, gmv, tv, tg)) == want


def test_labelled_levels_follow_the_rule(
        session: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    base = {"stream_outage": 1, "checkout_broken": 1, "platform_throttle": 2, "host_absent": 2,
            "complaint_surge": 2, "bot_traffic": 3}
    levels = set()
    for i in session[1]["incidents"]:
        if i["stream"].startswith("room-"):
            assert abs(i["level"] - base[i["type"]]) <= 1
            levels.add(i["level"] - base[i["type"]])
        elif i["type"] == "service_degradation":
            assert i["level"] in (2, 3)
    assert len(levels) >= 2                    # impact actually moves some grades
