"""The review's numbers over hand-made incident records: exact medians and p90 per team and
level, the window, the clock rule for acks, false-alarm tags, the most severe level."""
from __future__ import annotations

from typing import Any

import pytest

from streamwatch.incidents.review import incident_level, is_false_alarm, percentile, review

T = 1_800_000_000.0


def inc(team: str, level: int, started: float, *, detect: float | None = None,
        ack: float | None = None, resolve: float | None = None, notes: tuple[str, ...] = (),
        levels: tuple[int, ...] = ()) -> dict[str, Any]:
    """An incident record like IncidentIndex makes; times are offsets from `started`."""
    timeline: list[dict[str, Any]] = [{"ts": started, "action": "firing", "level": level}]
    timeline += [{"ts": started + 1, "action": "firing", "level": lv} for lv in levels]
    timeline += [{"ts": started + 2, "action": "note", "by": "op", "note": n} for n in notes]
    status = "resolved" if resolve is not None else "acked" if ack is not None else "open"
    return {"id": f"inc-{int(started)}", "team": team, "level": levels[-1] if levels else level,
            "status": status, "started_at": started,
            "anomaly_started_at": None if detect is None else started - detect,
            "acked_at": None if ack is None else started + ack,
            "resolved_at": None if resolve is None else started + resolve,
            "timeline": timeline}


def test_percentile_is_linear_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([float(x) for x in range(1, 11)], 0.9) == pytest.approx(9.1)


def test_exact_medians_and_p90_per_team_and_level() -> None:
    tech1 = [inc("tech", 1, T + i * 100, detect=d, ack=a, resolve=r)
             for i, (d, a, r) in enumerate([(10, 30, 300), (20, 60, 600), (30, 90, 900),
                                           (40, 120, 1200), (50, None, None)])]
    tech3 = [inc("tech", 3, T + 1000, detect=5, ack=None, resolve=50)]
    ops2 = [inc("live_ops", 2, T + 2000 + i, detect=d, ack=a) for i, (d, a) in
            enumerate([(12, 100), (18, 200)])]
    out = review([*tech3, *ops2, *tech1], T, T + 86400)
    rows = {(r["team"], r["level"]): r for r in out["rows"]}
    assert list(rows) == [("live_ops", 2), ("tech", 1), ("tech", 3)]       # canonical order
    t1 = rows[("tech", 1)]
    assert (t1["incidents"], t1["open"], t1["acked"], t1["resolved"]) == (5, 1, 0, 4)
    assert t1["time_to_detect_s"] == {"n": 5, "median": 30.0, "p90": 46.0}
    assert t1["time_to_ack_s"] == {"n": 4, "median": 75.0, "p90": 111.0}
    assert t1["time_to_resolve_s"] == {"n": 4, "median": 750.0, "p90": 1110.0}
    assert rows[("live_ops", 2)]["time_to_ack_s"] == {"n": 2, "median": 150.0, "p90": 190.0}
    assert rows[("live_ops", 2)]["time_to_resolve_s"] == {"n": 0, "median": None, "p90": None}
    teams = {r["team"]: r for r in out["teams"]}
    assert teams["tech"]["incidents"] == 6 and teams["tech"]["level"] is None
    assert teams["tech"]["time_to_detect_s"] == {"n": 6, "median": 25.0, "p90": 45.0}
    assert out["total"]["incidents"] == 8
    assert out["total"]["time_to_detect_s"]["median"] == 19.0         # 5 10 12 18 | 20 30 40 50
    assert out["total"]["escalations"] == 0 and out["escalations_tracked"] is True


def test_escalations_and_false_alarm_marks_are_counted() -> None:
    a = inc("tech", 2, T, detect=5)
    a["timeline"] += [{"ts": T + 300, "action": "escalated", "by": "streamwatch",
                       "step": "step1"},
                      {"ts": T + 900, "action": "escalated", "by": "streamwatch",
                       "step": "step2"}]
    b = inc("tech", 2, T + 10, detect=5, notes=["#false-alarm: the lottery"])
    c = inc("tech", 2, T + 20, detect=5)
    c["timeline"] += [{"ts": T + 30, "action": "ack", "false_alarm": True},
                      {"ts": T + 40, "action": "note", "false_alarm": False}]   # taken back
    d = inc("tech", 2, T + 30, detect=5, notes=["#false-alarm"])
    d["timeline"] += [{"ts": T + 50, "action": "note", "false_alarm": False}]   # flag wins
    e = inc("tech", 2, T + 40, detect=5)
    e["timeline"] += [{"ts": T + 50, "action": "resolve", "false_alarm": True}]
    row = review([a, b, c, d, e], T, T + 86400)["rows"][0]
    assert (row["escalations"], row["escalated"]) == (2, 1)
    assert row["false_alarms"] == 2                                    # b and e


def test_window_is_half_open_on_started_at() -> None:
    items = [inc("tech", 2, T - 1), inc("tech", 2, T), inc("tech", 2, T + 59.9),
             inc("tech", 2, T + 60)]
    out = review(items, T, T + 60)
    assert out["total"]["incidents"] == 2
    assert review([], T, T + 60)["rows"] == []


def test_ack_before_the_event_time_is_skipped_not_negative() -> None:
    out = review([inc("tech", 2, T, ack=-3600), inc("tech", 2, T + 1, ack=40)], T, T + 10)
    assert out["total"]["time_to_ack_s"] == {"n": 1, "median": 40.0, "p90": 40.0}
    assert out["total"]["clock_skipped"] == 1


def test_missing_anomaly_start_is_left_out_of_detect() -> None:
    out = review([inc("tech", 2, T), inc("tech", 2, T + 1, detect=8)], T, T + 10)
    assert out["total"]["time_to_detect_s"] == {"n": 1, "median": 8.0, "p90": 8.0}


def test_false_alarm_tags_and_field() -> None:
    assert is_false_alarm(inc("tech", 2, T, notes=("bot test, #False-Alarm",)))
    assert is_false_alarm(inc("tech", 2, T, notes=("#误报 主播在换装",)))
    assert not is_false_alarm(inc("tech", 2, T, notes=("false alarm?", "checking")))
    marked = inc("tech", 2, T)
    marked["timeline"].append({"ts": T + 5, "action": "resolve", "false_alarm": True})
    assert is_false_alarm(marked)
    out = review([marked, inc("tech", 2, T + 1, notes=("#false_alarm",)), inc("tech", 2, T + 2)],
                 T, T + 10)
    assert out["total"]["false_alarms"] == 2


def test_level_is_the_most_severe_reached() -> None:
    grew = inc("command", 3, T, levels=(1, 2))
    assert grew["level"] == 2 and incident_level(grew) == 1
    out = review([grew], T, T + 1)
    assert [(r["team"], r["level"]) for r in out["rows"]] == [("command", 1)]
    assert incident_level({"level": 4, "timeline": []}) == 4
