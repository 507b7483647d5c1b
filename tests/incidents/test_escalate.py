"""Escalation (incidents/escalate.py) on a controllable clock: steps in order, level 1 at once,
ack stops it, a restart in between (real SQLite file) neither loses nor repeats a step; and the
policy as config/service.toml gives it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from streamwatch.config.load import load_config
from streamwatch.config.schema import EscalationStep, ServiceConfig
from streamwatch.events import AlertEvent
from streamwatch.incidents.escalate import Escalator
from streamwatch.notify.log import EventLog, LoggedEvent
from streamwatch.store.sqlite import open_store

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[2]
T = 1_800_000_000.0
POLICY = [EscalationStep(team="tech", after="10m", notify="command"),   # type: ignore[arg-type]
          EscalationStep(team="tech", after=120, notify="wh-lead")]


class Clock:
    def __init__(self) -> None:
        self.t = T

    def __call__(self) -> float:
        return self.t


class World:
    """The escalator's surroundings: incident statuses and what was sent where."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.log = EventLog()

    def send(self, target: str, payload: dict[str, Any]) -> int:
        self.sent.append((target, payload))
        return 1

    def events(self, *specs: tuple[int, str, int, str]) -> list[LoggedEvent]:
        out = []
        for n, iid, level, status in specs:
            self.status[iid] = "open" if status == "firing" else "resolved"
            out.append(AlertEvent(id=f"{n:012d}", ts=1_767_225_600.0 + n, stream="room-1",
                                  metric="fps", level=level, team="tech",  # type: ignore[arg-type]
                                  status=status, incident_id=iid,  # type: ignore[arg-type]
                                  incident_type="stream_outage", kind="drop", score=5.0,
                                  observed=1.0, expected=10.0, summary="room-1 down"))
        return self.log.append(out)

    def steps(self) -> list[tuple[str, str, str]]:
        return [(t, p["incident_id"], p["step"]) for t, p in self.sent]


def make(world: World, clock: Clock, store: Any = None) -> Escalator:
    esc = Escalator(POLICY, world.send, world.status.get, clock=clock)
    esc.attach(store)
    return esc


def test_steps_fire_in_order_on_the_clock_and_an_ack_stops_them() -> None:
    world, clock = World(), Clock()
    esc = make(world, clock)
    esc.observe(world.events((1, "inc-1", 2, "firing"), (2, "inc-2", 2, "firing")))
    assert esc.tick() == 0 and world.sent == []
    clock.t = T + 119.9
    assert esc.tick() == 0
    clock.t = T + 120                                   # the 2-minute step (sorted by `after`)
    assert esc.tick() == 2
    assert world.steps() == [("wh-lead", "inc-1", "step1"), ("wh-lead", "inc-2", "step1")]
    world.status["inc-2"] = "acked"
    clock.t = T + 600
    assert esc.tick() == 1
    assert world.steps()[2:] == [("command", "inc-1", "step2")]
    target, payload = world.sent[2]
    assert payload["type"] == "escalation" and payload["id"] == "esc-inc-1-step2"
    assert payload["opened_at"] == T and payload["after_s"] == 600
    clock.t = T + 10_000
    assert esc.tick() == 0 and esc.watched.keys() == {"inc-1"}   # each step once
    esc.observe(world.events((3, "inc-1", 2, "resolved")))
    assert esc.watched == {}


def test_level_one_notifies_the_command_center_at_once() -> None:
    world, clock = World(), Clock()
    esc = make(world, clock)
    esc.observe(world.events((1, "inc-1", 1, "firing")))
    assert world.steps() == [("command", "inc-1", "level1")]
    esc.observe(world.events((2, "inc-2", 3, "firing"), (3, "inc-2", 1, "firing")))
    assert world.steps()[1:] == [("command", "inc-2", "level1")]   # graded up: at once
    esc.observe(world.events((4, "inc-2", 1, "firing")))
    assert len(world.sent) == 2                                      # not twice


def test_other_teams_and_silenced_first_alerts_are_not_watched() -> None:
    world, clock = World(), Clock()
    esc = make(world, clock)
    ev = world.events((1, "inc-1", 2, "firing"))
    silenced = [LoggedEvent(ev[0].id, {**ev[0].data, "silenced": True}, ev[0].json)]
    esc.observe(silenced)
    other = world.events((2, "inc-2", 2, "firing"))
    esc.observe([LoggedEvent(other[0].id, {**other[0].data, "team": "logistics"},
                             other[0].json)])
    clock.t = T + 10_000
    assert esc.tick() == 0 and esc.watched == {} and world.sent == []


def test_a_restart_in_between_neither_loses_nor_repeats_a_step(tmp_path: Path) -> None:
    world, clock = World(), Clock()
    store = open_store(tmp_path)
    esc = make(world, clock, store)
    esc.observe(world.events((1, "inc-1", 2, "firing")))
    clock.t = T + 130
    assert esc.tick() == 1
    store.close()                                        # the process ends
    clock.t = T + 700                                    # down across the 10-minute step
    store = open_store(tmp_path)
    try:
        again = make(world, clock, store)
        assert again.watched["inc-1"]["opened_at"] == T
        assert again.tick() == 1
        assert world.steps() == [("wh-lead", "inc-1", "step1"), ("command", "inc-1", "step2")]
        assert again.tick() == 0
        world.status["inc-1"] = "resolved"
        again.tick()
        assert store.load_escalations() == []
    finally:
        store.close()


def test_policy_from_config(tmp_path: Path) -> None:
    (tmp_path / "service.toml").write_text(
        '[[escalation]]\nteam = "tech"\nafter = "5m"\nnotify = "command"\n'
        '[[escalation]]\nteam = "live_ops"\nafter = 30\nnotify = "wh-abc"\n', encoding="utf-8")
    cfg = load_config(tmp_path, REPO / "detectors", env={})
    assert [(s.team, s.after, s.notify) for s in cfg.service.escalation] == [
        ("tech", 300.0, "command"), ("live_ops", 30.0, "wh-abc")]
    for bad in ({"team": "sales", "after": 30, "notify": "command"},
                {"team": "tech", "after": "soon", "notify": "command"},
                {"team": "tech", "after": 0, "notify": "command"},
                {"team": "tech", "after": 30, "notify": ""}):
        with pytest.raises(ValidationError):
            ServiceConfig.model_validate({"escalation": [bad]})
