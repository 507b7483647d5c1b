"""Each incident type of DOMAIN.md is caught, typed, routed and graded; normal events never page."""
from __future__ import annotations

from pathlib import Path

import pytest

from streamwatch.config.load import load_config
from streamwatch.events import AlertEvent
from streamwatch.pipeline import Pipeline
from tests.pipeline.scenario import T0, Effect, Room, samples

REPO = Path(__file__).resolve().parents[2]
AT = 20 * 60.0          # incidents start 20 minutes in: past warm-up and ramp-up
END = AT + 6 * 60.0


def run(rooms: list[Room], **kw: object) -> list[AlertEvent]:
    cfg = load_config(REPO / "config", REPO / "detectors")
    return Pipeline(cfg.rules, cfg.pipeline_settings()).process(samples(rooms, **kw))  # type: ignore[arg-type]


def pages(events: list[AlertEvent]) -> list[AlertEvent]:
    return [e for e in events if e.status == "firing" and e.level <= 3]


def first_page(events: list[AlertEvent], stream: str) -> AlertEvent:
    found = [e for e in pages(events) if e.stream == stream]
    assert found, f"no page for {stream}: {[e.summary for e in events]}"
    return found[0]


# (name, effects, expected type, team, level, max seconds to detect)
CASES = [
    ("stream_outage", [Effect("bitrate_kbps", AT, END, 0.1), Effect("fps", AT, END, 0.2),
                       Effect("viewers", AT + 20, END, 0.4)], "stream_outage", "tech", 1, 30),
    ("checkout_broken", [Effect("orders_total", AT, END, 0.0), Effect("gmv_total", AT, END, 0.0)],
     "checkout_broken", "tech", 1, 120),
    ("platform_throttle", [Effect("entries_total", AT, END, 0.1)], "platform_throttle",
     "live_ops", 2, 180),
    ("host_absent", [Effect("comments_total", AT, END, 0.05),
                     Effect("product_clicks_total", AT, END, 0.05),
                     Effect("orders_total", AT, END, 0.05), Effect("gmv_total", AT, END, 0.05)],
     "host_absent", "live_ops", 2, 180),
    ("complaint_surge", [Effect("complaints_total", AT, END, 40.0),
                         Effect("refunds_total", AT, END, 40.0)],
     "complaint_surge", "customer_service", 2, 360),
    ("bot_traffic", [Effect("viewers", AT, END, 3.0), Effect("entries_total", AT, END, 3.0)],
     "bot_traffic", "live_ops", 3, 240),
]


@pytest.mark.parametrize("name,effects,itype,team,level,ttd", CASES, ids=[c[0] for c in CASES])
def test_incident_is_typed_routed_and_graded(name: str, effects: list[Effect], itype: str,
                                             team: str, level: int, ttd: float) -> None:
    # four rooms of equal size: none is "tiny" or carries an extreme share (>= 30 %)
    events = run([Room("room-a", effects=effects)] + [Room(f"room-{k}") for k in "bcd"])
    page = first_page(events, "room-a")
    assert (page.incident_type, page.team, page.level) == (itype, team, level), page.summary
    assert AT - 5 <= page.ts - T0 <= AT + ttd, page.ts - T0
    assert page.runbook and page.summary.startswith("room-a: ")
    assert not [e for e in pages(events) if e.stream != "room-a"], "the other rooms stay quiet"
    resolved = [e for e in events if e.incident_id == page.incident_id and e.status == "resolved"]
    assert resolved and resolved[-1].ts - T0 >= END - 5, "resolved once it is over"


def test_silent_room_is_an_outage_stamped_with_event_time() -> None:
    events = run([Room("room-a", silent=(AT, END)), Room("room-b")])
    page = first_page(events, "room-a")
    assert page.incident_type == "stream_outage" and page.kind == "silent"
    # event time of the watermark that revealed the silence: 25 s + one cadence after it began
    assert AT + 25 <= page.ts - T0 <= AT + 35


def test_tiny_room_is_one_level_less_severe() -> None:
    effects = [Effect("bitrate_kbps", AT, END, 0.1), Effect("fps", AT, END, 0.2)]
    events = run([Room("room-a", viewers=60, effects=effects)] +
                 [Room(f"room-{k}", viewers=60) for k in "bcd"])
    assert first_page(events, "room-a").level == 2


def test_room_with_most_viewers_is_one_level_more_severe() -> None:
    effects = [Effect("entries_total", AT, END, 0.1)]
    events = run([Room("room-a", viewers=20000, effects=effects), Room("room-b", viewers=2000)])
    page = first_page(events, "room-a")
    assert (page.incident_type, page.level) == ("platform_throttle", 1)


def test_shared_payment_outage_is_one_level1_incident_not_a_storm() -> None:
    rooms = [Room(f"room-{k}") for k in "abcd"]
    effects = [Effect(m, AT, END, 0.0) for m in ("orders_total", "gmv_total")]
    for r in rooms:
        r.effects = list(effects)
    events = run(rooms, services={"svc:payment": {"error_ratio": 0.002, "latency_p99_ms": 200}},
                 service_effects=[("svc:payment", Effect("error_ratio", AT, END, 300.0))])
    svc = first_page(events, "svc:payment")
    assert (svc.incident_type, svc.team, svc.level) == ("checkout_broken", "tech", 1)
    assert svc.ts - T0 <= AT + 45
    room_pages_after = [e for e in pages(events) if e.stream != "svc:payment" and e.ts > svc.ts]
    assert not room_pages_after, [e.summary for e in room_pages_after]


NORMAL = [
    ("lottery", [Effect("comments_total", AT, AT + 120, 12.0), Effect("likes_total", AT, AT + 120, 5.0),
                 Effect("viewers", AT, AT + 120, 1.2)]),
    ("flash_sale", [Effect("product_clicks_total", AT, AT + 180, 6.0),
                    Effect("orders_total", AT, AT + 180, 6.0), Effect("gmv_total", AT, AT + 180, 4.0)]),
    ("product_switch", [Effect("product_clicks_total", AT, AT + 90, 0.2),
                        Effect("orders_total", AT, AT + 90, 0.2), Effect("gmv_total", AT, AT + 90, 0.1)]),
]


@pytest.mark.parametrize("name,effects", NORMAL, ids=[n for n, _ in NORMAL])
def test_normal_event_never_pages(name: str, effects: list[Effect]) -> None:
    events = run([Room("room-a", effects=effects), Room("room-b")])
    assert not pages(events), [e.summary for e in pages(events)]
    if name != "product_switch":   # a click lull may be too short to notice at all
        assert any(e.level == 4 and e.stream == "room-a" for e in events), "shown as a notice"


def test_ramp_up_and_goodbye_never_page() -> None:
    ramp = [Effect("viewers", 0, 120, 0.2), Effect("viewers", 120, 240, 0.5)]
    goodbye = [Effect("viewers", AT + 60, AT + 240, 0.3),
               Effect("product_clicks_total", AT + 60, AT + 240, 0.2)]
    room = Room("room-a", effects=ramp + goodbye, minutes=(AT + 240) / 60, end_live=True)
    events = run([room, Room("room-b")])
    assert not pages(events), [e.summary for e in pages(events)]
    opened = {e.incident_id for e in events if e.stream == "room-a" and e.status == "firing"}
    closed = {e.incident_id for e in events if e.stream == "room-a" and e.status == "resolved"}
    assert opened == closed, "goodbye (live = 0) closes whatever was open"


def _run_batch(batch):  # type: ignore[no-untyped-def]
    cfg = load_config(REPO / "config", REPO / "detectors")
    p = Pipeline(cfg.rules, cfg.pipeline_settings())
    return p, p.process(batch)


def test_counter_reset_never_pages() -> None:
    import numpy as np
    b = samples([Room("room-a"), Room("room-b"), Room("room-c"), Room("room-d")])
    # room-a's sales collector restarts 20 minutes in: its counters start again from 0
    at = T0 + AT
    for m in ("orders_total", "gmv_total", "product_clicks_total"):
        sel = np.array([s == "room-a" and mm == m and t >= at
                        for s, mm, t in zip(b.streams, b.metrics, b.ts.tolist())])
        first = b.values[sel][0]
        b.values[sel] -= first
    p, events = _run_batch(b)
    assert p.stats.counter_resets >= 3
    assert not pages(events), [e.summary for e in pages(events)]


def test_duplicates_and_late_samples_change_nothing_but_counts() -> None:
    import numpy as np
    effects = [Effect("bitrate_kbps", AT, END, 0.1), Effect("fps", AT, END, 0.2)]
    rooms = [Room("room-a", effects=effects)] + [Room(f"room-{k}") for k in "bcd"]
    clean = samples(rooms)
    n = len(clean)
    rng = np.random.default_rng(9)
    dup = rng.choice(n, 200, replace=False)               # re-sent right after the original
    late = rng.choice(n, 100, replace=False)              # delivered 40 s after the fact: dropped
    order = list(range(n)) + dup.tolist()
    keys = [float(clean.ts[i]) for i in range(n)] + [float(clean.ts[i]) for i in dup]
    keys = [k + 40.5 if i < n and i in set(late.tolist()) else k for i, k in enumerate(keys)]
    perm = sorted(range(len(order)), key=lambda k: (keys[k], k))
    idx = np.array([order[k] for k in perm])
    from streamwatch.ingest.batch import Batch
    messy = Batch([clean.streams[i] for i in idx], [clean.metrics[i] for i in idx],
                  clean.ts[idx], clean.values[idx], [None] * len(idx), np.arange(len(idx)))
    p_clean, ev_clean = _run_batch(clean)
    p_messy, ev_messy = _run_batch(messy)
    # (a duplicate whose original was delayed arrives first, and the original is then late)
    assert p_messy.stats.duplicates >= 190 and p_messy.stats.late >= 90
    page = first_page(ev_messy, "room-a")
    assert page.incident_type == "stream_outage" and page.level == 1
    assert abs(page.ts - first_page(ev_clean, "room-a").ts) <= 10
    assert {e.stream for e in pages(ev_messy)} == {"room-a"}
