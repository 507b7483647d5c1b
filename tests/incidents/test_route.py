"""The routing tree (incidents/route.py): which receivers, how often. Pure, on a fake clock."""
from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from streamwatch.config.routing import RoutingSettings
from streamwatch.incidents.route import Router, resolve
from streamwatch.notify.log import LoggedEvent

TREE = RoutingSettings.model_validate({
    "receivers": [{"name": n, "url": f"http://127.0.0.1/{n}"}
                  for n in ("ops", "tech", "tech-lead", "cmd", "douyin", "cs")],
    "route": {
        "receivers": ["ops"], "repeat_interval": "10m",
        "routes": [
            {"match": {"level": 1}, "receivers": ["cmd"], "continue": True},
            {"match": {"team": "tech", "min_level": 2}, "receivers": ["tech", "tech-lead"],
             "repeat_interval": "5m"},
            {"match": {"team": "tech"}, "receivers": ["tech"], "send_resolved": False},
            {"match": {"stream": "douyin:*"},
             "routes": [{"match": {"incident_type": "complaint_surge"}, "receivers": ["cs"]}]},
        ]}})


def ev(n: int, *, iid: str = "inc-1", team: str = "tech", level: int = 2,
       status: str = "firing", stream: str = "room-1", kind: str = "checkout_failure",
       **extra: Any) -> dict[str, Any]:
    return {"id": f"{n:012d}", "ts": 1000.0 + n, "stream": stream, "metric": "orders_total",
            "level": level, "team": team, "status": status, "incident_id": iid,
            "incident_type": kind, **extra}


def names(e: dict[str, Any]) -> list[tuple[str, ...]]:
    return [r.receivers for r in resolve(TREE.route, e)]


@pytest.mark.parametrize("event, want", [
    (ev(1, level=2), [("tech", "tech-lead")]),                  # first match wins
    (ev(1, level=3), [("tech",)]),                              # the next sibling
    (ev(1, level=1), [("cmd",), ("tech", "tech-lead")]),        # continue: both
    (ev(1, team="live_ops", level=3), [("ops",)]),              # nothing matches: the root
    (ev(1, team="customer_service", stream="douyin:7301", kind="complaint_surge"), [("cs",)]),
    (ev(1, team="live_ops", stream="douyin:7301", kind="stream_outage"), [("ops",)]),  # inherits
])
def test_the_tree_picks_receivers(event: dict[str, Any], want: list[tuple[str, ...]]) -> None:
    assert names(event) == want


def test_inherited_settings() -> None:
    (r,) = resolve(TREE.route, ev(1, level=3))
    assert r.repeat_interval == 600.0 and r.send_resolved is False
    (r,) = resolve(TREE.route, ev(1, level=2))
    assert r.repeat_interval == 300.0 and r.send_resolved is True


class Harness:
    def __init__(self) -> None:
        self.now = 0.0
        self.status: dict[str, str] = {}
        self.out: list[tuple[str, str, str]] = []
        self.router = Router(TREE, self.deliver, self.status.get, clock=lambda: self.now)

    def deliver(self, receiver: str, event: dict[str, Any], key: str) -> int:
        self.out.append((receiver, key, event["status"]))
        return 1

    def feed(self, *events: dict[str, Any]) -> list[tuple[str, str, str]]:
        self.out = []
        for e in events:
            self.status.setdefault(e["incident_id"], "open")
            if e["status"] == "resolved":
                self.status[e["incident_id"]] = "resolved"
        self.router.observe([LoggedEvent(e["id"], e, b"") for e in events])
        return self.out


def test_one_notification_per_incident_then_only_level_changes_and_the_end() -> None:
    h = Harness()
    assert h.feed(ev(1, level=2)) == [("tech", "000000000001", "firing"),
                                      ("tech-lead", "000000000001", "firing")]
    assert h.feed(ev(2, level=2), ev(3, level=2)) == []         # same incident, same level
    assert h.router.folded == 4
    assert [r for r, _, _ in h.feed(ev(4, level=1))] == ["cmd", "tech", "tech-lead"]   # graded up
    assert [(r, s) for r, _, s in h.feed(ev(5, level=1, status="resolved"))] == [
        ("cmd", "resolved"), ("tech", "resolved"), ("tech-lead", "resolved")]
    assert h.router.sent == {}


def test_send_resolved_false_and_an_unnotified_resolve_send_nothing() -> None:
    h = Harness()
    h.feed(ev(1, iid="inc-2", level=3))
    assert h.feed(ev(2, iid="inc-2", level=3, status="resolved")) == []
    assert h.feed(ev(3, iid="inc-9", level=2, status="resolved")) == []   # never sent firing


def test_silenced_events_are_not_routed() -> None:
    assert Harness().feed(ev(1, silenced=True)) == []


def test_repeat_until_acknowledged_on_the_fake_clock() -> None:
    h = Harness()
    h.feed(ev(1, level=2))                       # tech route: repeat every 5 min
    h.now = 299.0
    assert h.router.tick() == 0
    h.now = 300.0
    h.out = []
    assert h.router.tick() == 2
    assert h.out == [("tech", "000000000001-repeat1", "firing"),
                     ("tech-lead", "000000000001-repeat1", "firing")]
    h.now = 600.0
    assert h.router.tick() == 2                  # and again
    h.status["inc-1"] = "acked"
    h.now = 5000.0
    assert h.router.tick() == 0                  # someone took it: no more repeats
    h.status["inc-1"] = "resolved"
    h.router.tick()
    assert h.router.sent == {}                   # forgotten once resolved


@pytest.mark.parametrize("doc, says", [
    ({"route": {"receivers": ["nobody"]}}, "unknown receiver"),
    ({"receivers": [{"name": "a", "url": "http://x"}, {"name": "a", "url": "http://y"}]},
     "unique"),
    ({"receivers": [{"name": "a", "url": "ftp://x"}]}, "http"),
    ({"route": {"match": {"level": 7}}}, "level"),
    ({"route": {"match": {"colour": "red"}}}, "colour"),
    ({"route": {"repeat_interval": "soon"}}, "repeat_interval"),
])
def test_bad_routing_config_is_refused_with_where(doc: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        RoutingSettings.model_validate(doc)


def test_routes_match_the_streams_labels() -> None:
    tree = RoutingSettings.model_validate({
        "receivers": [{"name": n, "url": "http://127.0.0.1/x"} for n in ("flagship", "rest")],
        "route": {"receivers": ["rest"], "routes": [
            {"match": {"labels": {"platform": "douyin", "shop": "flagship-*"}},
             "receivers": ["flagship"]}]}})
    e = ev(1, team="live_ops", stream="room-7")
    assert [r.receivers for r in resolve(tree.route, e, labels={
        "platform": "douyin", "shop": "flagship-sh"})] == [("flagship",)]
    assert [r.receivers for r in resolve(tree.route, e, labels={
        "platform": "douyin", "shop": "outlet"})] == [("rest",)]
    assert [r.receivers for r in resolve(tree.route, e)] == [("rest",)]   # no labels seen
    seen = {"room-7": {"platform": "douyin", "shop": "flagship-bj"}}
    out: list[str] = []
    router = Router(tree, lambda r, _e, _k: out.append(r) or 1, {}.get, labels_of=seen.get)
    router.observe([LoggedEvent(e["id"], e, b"")])
    assert out == ["flagship"]
