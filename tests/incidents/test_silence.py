"""Silences (incidents/silence.py): matching, windows on a controllable clock, the store, and
the Service flagging what they match (recorded everywhere, `"silenced": true`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamwatch.config.load import load_config
from streamwatch.events import AlertEvent
from streamwatch.incidents.silence import Silence, Silences
from streamwatch.notify.log import LoggedEvent
from streamwatch.service import Service
from streamwatch.store.base import StoreError
from streamwatch.store.sqlite import SqliteStore, open_store

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[2]
T = 1_800_000_000.0


class Clock:
    def __init__(self, t: float = T) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def event(n: int = 1, stream: str = "shop-a", metric: str = "bitrate_kbps",
          incident_type: str = "stream_outage", team: str = "tech") -> AlertEvent:
    return AlertEvent(id=f"{n:012d}", ts=1_767_225_600.0 + n, stream=stream, metric=metric,
                      level=2, team=team, status="firing",  # type: ignore[arg-type]
                      incident_id=f"inc-{n:08d}", incident_type=incident_type, kind="drop",
                      score=5.0, observed=1.0, expected=10.0, summary="s")


def silence(**kw: Any) -> Silence:
    base: dict[str, Any] = dict(id="sil-1", starts_at=T, ends_at=T + 60, created_by="op",
                                created_at=T)
    return Silence(**{**base, **kw})


def test_matchers_exact_glob_and_all_must_match() -> None:
    ev = event().model_dump()
    assert silence(stream="shop-a").matches(ev)
    assert not silence(stream="shop-ab").matches(ev)
    assert not silence(stream="shop").matches(ev)               # exact, not a prefix
    assert silence(stream="shop-*").matches(ev)
    assert silence(stream="shop-?").matches(ev)
    assert not silence(stream="Shop-*").matches(ev)             # case-sensitive
    assert not silence(stream="room-*").matches(ev)
    assert silence(metric="bitrate_kbps").matches(ev)
    assert not silence(metric="fps").matches(ev)
    assert silence(incident_type="stream_outage").matches(ev)
    assert not silence(incident_type="checkout_broken").matches(ev)
    assert silence(team="tech").matches(ev)
    assert not silence(team="live_ops").matches(ev)
    assert silence(stream="shop-*", team="tech", metric="bitrate_kbps").matches(ev)
    assert not silence(stream="shop-*", team="live_ops").matches(ev)


def test_window_on_the_clock_and_expiry() -> None:
    clock = Clock()
    reg = Silences(clock)
    s = reg.add(created_by="alice", starts_at=T + 10, ends_at=T + 70, stream="shop-*",
                comment="maintenance")
    ev = event().model_dump()
    assert reg.silencing(ev) is None                            # not started yet
    clock.t = T + 10
    assert reg.silencing(ev) == s
    assert reg.silencing(event(stream="room-1").model_dump()) is None
    clock.t = T + 69.999
    assert reg.silencing(ev) == s
    clock.t = T + 70                                            # ends_at is exclusive
    assert reg.silencing(ev) is None
    clock.t = T + 20
    assert reg.silencing(ev) == s
    ended = reg.expire(s.id, "bob")
    assert ended is not None and ended.ends_at == T + 20 and ended.expired_by == "bob"
    assert reg.silencing(ev) is None
    assert reg.expire(s.id, "carol") == ended                   # already over: unchanged
    assert reg.expire("sil-nope", "bob") is None
    assert [x.id for x in reg.all()] == [s.id] and not reg.all()[0].active(clock.t)


def test_bad_silences_are_refused() -> None:
    reg = Silences(Clock())
    with pytest.raises(ValueError, match="at least one matcher"):
        reg.add(created_by="a", ends_at=T + 60)
    with pytest.raises(ValueError, match="at least one matcher"):
        reg.add(created_by="a", ends_at=T + 60, stream=None, team="")
    with pytest.raises(ValueError, match="must be after"):
        reg.add(created_by="a", starts_at=T + 60, ends_at=T + 60, team="tech")
    with pytest.raises(ValueError, match="unknown matchers"):
        reg.add(created_by="a", ends_at=T + 60, room="x")
    assert len(reg) == 0


def test_silences_survive_a_reopened_store(tmp_path: Path) -> None:
    clock = Clock()
    store = open_store(tmp_path)
    reg = Silences(clock)
    reg.attach(store)
    a = reg.add(created_by="alice", ends_at=T + 600, team="tech")
    b = reg.add(created_by="alice", ends_at=T + 600, stream="room-*")
    reg.expire(b.id, "bob")
    store.close()
    again = Silences(clock)
    store2 = SqliteStore(tmp_path / "streamwatch.db")
    again.attach(store2)
    try:
        assert {s.id for s in again.all()} == {a.id, b.id}
        assert again.get(a.id) == a
        got_b = again.get(b.id)
        assert got_b is not None and got_b.expired_by == "bob" and not got_b.active(clock.t)
        assert again.silencing(event().model_dump()) == a
    finally:
        store2.close()


def test_a_silence_the_store_refuses_does_not_count(tmp_path: Path) -> None:
    class Broken(SqliteStore):
        def save_silence(self, doc: dict[str, Any]) -> None:
            raise StoreError("disk full")
    store = Broken(tmp_path / "streamwatch.db")
    reg = Silences(Clock())
    reg.attach(store)
    try:
        with pytest.raises(StoreError, match="disk full"):
            reg.add(created_by="a", ends_at=T + 60, team="tech")
        assert len(reg) == 0 and reg.silencing(event().model_dump()) is None
    finally:
        store.close()


def test_service_flags_silenced_events_and_keeps_them_everywhere() -> None:
    cfg = load_config(REPO / "config", REPO / "detectors", env={})
    clock = Clock()
    svc = Service(cfg, clock=clock)
    seen: list[LoggedEvent] = []
    svc.subscribe(seen.extend)
    svc.silences.add(created_by="op", ends_at=T + 60, stream="shop-*", team="tech")
    svc._publish([event(1), event(2, stream="room-1"), event(3, team="live_ops")])
    clock.t = T + 61                                            # the window is over
    svc._publish([event(4)])
    flags = {e.id[-1]: e.data.get("silenced") for e in seen}
    assert flags == {"1": True, "2": None, "3": None, "4": None}
    assert b'"silenced":true' in seen[0].json and b"silenced" not in seen[1].json
    assert [e.data.get("silenced") for e in svc.log.since(None)] == [True, None, None, None]
    assert svc.incidents.get("inc-00000001") is not None        # indexed all the same
    assert svc.stats.silenced_events == 1
