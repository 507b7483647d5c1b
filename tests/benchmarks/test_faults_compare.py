"""benchmarks/faults.py's loss measure: expected events (replay) against what a service kept.

A lost event must count once (not shift every id after it into "lost"), an extra one must not
hide a lost one, and ids that differ from the replay's must be said even when nothing is lost.
The whole benchmark runs in `make bench-faults`; this pins only the arithmetic it reports."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from faultcheck import compare, duplicate_incidents, events_lost, lost_text  # noqa: E402


def ev(i: int, ts: float, stream: str = "room-a", status: str = "firing") -> dict[str, Any]:
    return {"id": f"{i:012d}", "ts": ts, "stream": stream, "metric": "fps", "status": status,
            "incident_type": "stream_outage"}


EXPECTED = [ev(1, 10.0), ev(2, 20.0, "room-b"), ev(3, 30.0, status="resolved"), ev(4, 40.0)]


def test_identical_events_lose_nothing() -> None:
    c = compare(EXPECTED, list(reversed(EXPECTED)))
    assert (c.lost, c.extra, c.same_ids, c.duplicate_ids) == (0, [], True, 0)


def test_one_missing_event_counts_once_even_when_later_ids_shift() -> None:
    got = [ev(1, 10.0), ev(2, 30.0, status="resolved"), ev(3, 40.0)]   # 2nd lost, ids moved up
    c = compare(EXPECTED, got)
    assert [e["id"] for e in c.missing] == ["000000000002"] and c.extra == []
    assert c.same_ids is False


def test_an_extra_event_does_not_hide_a_lost_one() -> None:
    got = [ev(1, 10.0), ev(2, 20.0, "room-b"), ev(3, 30.0, status="resolved"), ev(4, 41.0)]
    c = compare(EXPECTED, got)
    assert [e["ts"] for e in c.missing] == [40.0] and [e["ts"] for e in c.extra] == [41.0]


def test_duplicates_are_counted() -> None:
    assert compare(EXPECTED, EXPECTED + [EXPECTED[0]]).duplicate_ids == 1
    lost, dups, same = events_lost(EXPECTED, EXPECTED, EXPECTED[:3])   # the feed missed one
    assert (lost, dups, same) == (1, 0, False)
    incidents = [{"id": "inc-1", "stream": "a", "type": "t", "started_at": 1.0},
                 {"id": "inc-2", "stream": "a", "type": "t", "started_at": 1.0},
                 {"id": "inc-3", "stream": "a", "type": "t", "started_at": 2.0}]
    assert duplicate_incidents(incidents) == 1
    assert (lost_text(0, 0), lost_text(5, 0), lost_text(12000, 9)) == (
        "0", "5 samples", "12000 samples, 9 events")
