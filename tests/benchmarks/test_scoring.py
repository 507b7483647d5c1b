"""benchmarks/scoring.py on hand-made labels and alert events, one rule of its docstring per test.

The quality benchmark's verdicts are only as good as these rules, so each boundary (window edges,
merge gap, deciding page, level regrade) is pinned here on fixtures small enough to check by eye.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import scoring  # noqa: E402

T0 = 1_767_225_600.0


def stream(name: str, start: float = 0.0, end: float = 3600.0, kind: str = "room") -> dict[str, Any]:
    return {"stream": name, "kind": kind, "platform": "douyin", "start_ts": T0 + start,
            "end_ts": T0 + end, "peak_viewers": 1000.0}


def incident(iid: str, typ: str, strm: str, start: float, end: float, team: str = "tech",
             level: int = 1, affected: list[str] | None = None, silent: bool = False) -> dict[str, Any]:
    return {"id": iid, "type": typ, "stream": strm, "start_ts": T0 + start, "end_ts": T0 + end,
            "team": team, "level": level, "affected_streams": affected or [strm],
            "magnitude": 0.8, "silent": silent}


def labels(incidents: list[dict[str, Any]], streams: list[dict[str, Any]] | None = None,
           **extra: Any) -> dict[str, Any]:
    return {"seed": 1, "rooms": 2, "minutes": 60, "start_ts": T0, "end_ts": T0 + 3600,
            "streams": streams if streams is not None else [stream("room-000"), stream("room-001")],
            "incidents": incidents, "normal_events": extra.get("normal_events", []),
            "artifacts": extra.get("artifacts", [])}


_seq = iter(range(1, 10**6))


def ev(ts: float, strm: str = "room-000", level: int = 1, team: str = "tech",
       status: str = "firing", incident_id: str | None = None,
       incident_type: str = "stream_outage") -> dict[str, Any]:
    n = next(_seq)
    return {"id": f"{n:012d}", "ts": T0 + ts, "stream": strm, "metric": "bitrate_kbps",
            "level": level, "team": team, "status": status, "incident_id": incident_id or f"i{n}",
            "incident_type": incident_type, "kind": "drop", "score": 1.0, "observed": 0.0,
            "expected": 1.0, "summary": ""}


OUTAGE = incident("room-000/stream_outage/1", "stream_outage", "room-000", 1000, 1300)


def one(lbl: dict[str, Any], events: list[dict[str, Any]]) -> scoring.IncidentOutcome:
    (out,) = scoring.score_session(lbl, events).outcomes
    return out


def test_detection_ttd_team_level() -> None:
    out = one(labels([OUTAGE]), [ev(1020, incident_id="a"), ev(1100, level=2, incident_id="b")])
    assert (out.detected, out.ttd_s, out.team, out.level) == (True, 20.0, "tech", 1)
    assert out.team_ok and out.level_ok and not out.level_off_by_one


@pytest.mark.parametrize(("offset", "detected"), [
    (1000 - 10, True),      # exactly start - 10 s: matches, TTD clipped to 0
    (1000 - 10.5, False),   # just before the window
    (1300 + 120, True),     # exactly end + 120 s
    (1300 + 120.5, False),  # just after
])
def test_window_edges(offset: float, detected: bool) -> None:
    out = one(labels([OUTAGE]), [ev(offset)])
    assert out.detected is detected
    if detected:
        assert out.ttd_s == max(0.0, offset - 1000)


def test_other_stream_does_not_match_and_is_false_page() -> None:
    score = scoring.score_session(labels([OUTAGE]), [ev(1020, strm="room-001")])
    assert not score.outcomes[0].detected
    assert [fp.stream for fp in score.false_pages] == ["room-001"]
    assert score.false_pages[0].cause == "spillover"


def test_notices_and_resolved_are_not_pages() -> None:
    score = scoring.score_session(labels([OUTAGE]), [
        ev(1020, level=4), ev(2500, level=4), ev(1030, status="resolved"), ev(2600, status="resolved")])
    assert not score.outcomes[0].detected
    assert (score.pages, score.notices, score.false_pages) == (0, 2, [])


def test_level_is_most_severe_of_deciding_incident_within_window() -> None:
    events = [ev(1010, level=3, incident_id="x"),
              ev(1200, level=1, incident_id="x"),     # regraded up while the incident lasts: counts
              ev(1900, level=1, incident_id="x"),     # past end + 120 s: not this incident's grade
              ev(1005, level=1, incident_id="y")]     # earlier page of another alert ...
    out = one(labels([OUTAGE]), events)
    assert out.ttd_s == 5.0                            # ... which sets TTD,
    assert out.level == 1 and out.deciding_event == scoring.parse_events(events)[0].id
    only_x = one(labels([OUTAGE]), [events[0], events[2]])
    assert only_x.level == 3                           # the out-of-window level 1 is ignored


def test_level_off_by_one_and_wrong_team() -> None:
    out = one(labels([OUTAGE]), [ev(1010, level=2, team="live_ops")])
    assert not out.team_ok and not out.level_ok and out.level_off_by_one
    far = one(labels([OUTAGE]), [ev(1010, level=3)])
    assert not far.level_off_by_one


def test_shared_payment_outage_decided_by_service_page() -> None:
    rooms = ["room-000", "room-001"]
    lbl = labels([incident("svc:payment/checkout_broken/1", "checkout_broken", "svc:payment",
                           600, 900, affected=rooms)],
                 streams=[stream("room-000"), stream("room-001"),
                          stream("svc:payment", kind="service")])
    events = [ev(630, strm="room-001", level=2, team="live_ops", incident_id="r1"),
              ev(650, strm="svc:payment", level=1, team="tech", incident_id="svc"),
              ev(700, strm="room-000", level=3, team="live_ops", incident_id="r0")]
    out = one(lbl, events)
    assert (out.ttd_s, out.team, out.level) == (30.0, "tech", 1)   # TTD: first room page
    assert out.incident.group == "checkout_broken/svc"
    rooms_only = one(lbl, [events[0], events[2]])                  # no svc page: first match
    assert (rooms_only.team, rooms_only.level) == ("live_ops", 2)


def test_one_page_can_detect_two_overlapping_incidents() -> None:
    room = incident("room-000/checkout_broken/1", "checkout_broken", "room-000", 600, 700)
    shared = incident("svc:payment/checkout_broken/1", "checkout_broken", "svc:payment", 610, 900,
                      affected=["room-000", "room-001"])
    score = scoring.score_session(labels([room, shared]), [ev(650)])
    assert [o.detected for o in score.outcomes] == [True, True]
    assert score.false_pages == []


def test_false_pages_merge_chained_under_300s_per_stream() -> None:
    events = [ev(t) for t in (100, 300, 550)]          # gaps 200, 250: one page
    events += [ev(850)]                                # gap 300 exactly: a new page
    events += [ev(860, strm="room-001")]               # other stream: its own page
    score = scoring.score_session(labels([]), events)
    got = [(fp.stream, fp.ts - T0, fp.events) for fp in score.false_pages]
    assert got == [("room-000", 100.0, 3), ("room-000", 850.0, 1), ("room-001", 860.0, 1)]


def test_stream_hours_count_rooms_only_and_rate() -> None:
    streams = [stream("room-000", 0, 3600), stream("room-001", 1800, 3600),
               stream("svc:payment", 0, 3600, kind="service")]
    score = scoring.score_session(labels([], streams=streams),
                                  [ev(1000), ev(2000, strm="svc:payment")])
    assert score.stream_hours == 1.5
    s = scoring.summarize(score)
    assert s.false_pages == 2 and s.false_pages_per_stream_hour == pytest.approx(2 / 1.5)
    assert s.false_pages_by_stream == {"room-000": (1, 1.0), "svc:payment": (1, 1.0)}


def test_stream_hours_without_kind_uses_svc_prefix() -> None:
    streams = [{k: v for k, v in stream(n).items() if k != "kind"} for n in ("room-000", "svc:x")]
    assert scoring.score_session(labels([], streams=streams), []).stream_hours == 1.0


def test_false_page_causes() -> None:
    lbl = labels([], normal_events=[{"type": "flash_sale", "stream": "room-000",
                                     "start_ts": T0 + 1000, "end_ts": T0 + 1200}],
                 artifacts=[{"type": "counter_reset", "stream": "room-001",
                             "metric": "orders_total", "ts": T0 + 2000}],
                 streams=[stream("room-000", 0, 3600), stream("room-001", 0, 3000)])
    events = [ev(1250), ev(2100, strm="room-001"), ev(60), ev(2500), ev(3100, strm="room-001")]
    causes = {(fp.stream, fp.ts - T0): fp.cause for fp in scoring.score_session(lbl, events).false_pages}
    assert causes == {("room-000", 60.0): "ramp_up", ("room-000", 1250.0): "normal:flash_sale",
                      ("room-000", 2500.0): "unexplained",
                      ("room-001", 2100.0): "artifact:counter_reset",
                      ("room-001", 3100.0): "stream_end"}


@pytest.mark.parametrize(("page_at", "cause"), [
    (2000, "artifact:counter_reset"),   # same second as the artifact
    (2120, "artifact:counter_reset"),   # 120 s after: still blamed
    (2121, "unexplained"),              # later: no longer plausibly the artifact
    (1990, "unexplained"),              # before it: an artifact cannot cause an earlier page
])
def test_artifact_blamed_only_for_pages_shortly_after_it(page_at: float, cause: str) -> None:
    lbl = labels([], artifacts=[{"type": "counter_reset", "stream": "room-000",
                                 "metric": "orders_total", "ts": T0 + 2000}])
    (fp,) = scoring.score_session(lbl, [ev(page_at)]).false_pages
    assert fp.cause == cause


def test_summary_groups_and_targets() -> None:
    lbl = labels([OUTAGE,
                  incident("room-001/checkout_broken/1", "checkout_broken", "room-001", 2000, 2300),
                  incident("room-001/host_absent/1", "host_absent", "room-001", 3000, 3300,
                           team="live_ops", level=2, silent=True)])
    events = [ev(1040), ev(2200, strm="room-001")]
    s = scoring.summarize(scoring.score_session(lbl, events))
    assert (s.incidents, s.detected, s.recall) == (3, 2, pytest.approx(2 / 3))
    assert s.groups["stream_outage"].median_ttd_s == 40.0
    assert s.groups["checkout_broken/room"].median_ttd_s == 200.0
    assert s.groups["host_absent"] == scoring.GroupStats(1, 0, None, 0, 0, 1, 0)
    status = {t.name: t.status for t in scoring.targets(s)}
    assert status == {"incident recall": "FAIL", "false pages / stream-hour": "PASS",
                      "right team": "PASS", "exact level": "PASS",
                      "median TTD stream_outage (s)": "FAIL",
                      "median TTD checkout_broken/svc (s)": "n/a",
                      "median TTD checkout_broken/room (s)": "FAIL"}


def test_undetected_group_fails_its_ttd_target() -> None:
    s = scoring.summarize(scoring.score_session(labels([OUTAGE]), []))
    ttd = next(t for t in scoring.targets(s) if t.name == "median TTD stream_outage (s)")
    assert (ttd.value, ttd.status) == (None, "FAIL")


def test_pooling_concatenates_and_sums() -> None:
    a = scoring.score_session(labels([OUTAGE]), [ev(1010), ev(2500)])
    b = scoring.score_session(labels([OUTAGE]), [ev(1050)])
    s = scoring.summarize(a + b)
    assert (s.incidents, s.detected, s.stream_hours, s.false_pages) == (2, 2, 4.0, 1)
    assert s.groups["stream_outage"].median_ttd_s == 30.0
    assert s.false_pages_by_stream == {"room-000": (1, 0.5)}


def test_load_events_skips_blank_lines_and_names_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "a.ndjson"
    good.write_text('{"id": "1"}\n\n{"id": "2"}\r\n', encoding="utf-8")
    assert [e["id"] for e in scoring.load_events(good)] == ["1", "2"]
    bad = tmp_path / "b.ndjson"
    bad.write_text('{"id": "1"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"b\.ndjson:2:"):
        scoring.load_events(bad)


def test_level4_incident_is_detected_by_a_notice_of_its_type() -> None:
    bot = incident("room-000/bot_traffic/1", "bot_traffic", "room-000", 1000, 1300,
                   team="live_ops", level=4)
    hit = one(labels([bot]), [ev(1050, level=4, team="live_ops", incident_type="bot_traffic")])
    assert hit.detected and hit.level == 4 and hit.level_ok
    # a notice of another type does not detect it, and a level-1..3 incident needs a page
    miss = one(labels([bot]), [ev(1050, level=4, team="live_ops", incident_type="lottery")])
    assert not miss.detected
    assert not one(labels([OUTAGE]), [ev(1050, level=4)]).detected
