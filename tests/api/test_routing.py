"""The routing tree end to end: config/routing.toml receivers are real local webhook receivers;
an incident reaches the receiver its route names - once per incident and level, plus its end -
and not the others; the signature verifies with the secret from the environment."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from streamwatch.config.load import load_config
from streamwatch.config.routing import RoutingSettings
from tests.api.conftest import (REPO, LiveServer, bearer, live_server, wait_until,  # noqa: F401
                                with_tokens)
from tests.api.test_webhooks import (ADMIN, INGEST, SECRET, VIEWER, Receiver, feed,  # noqa: F401
                                     receiver)


def expected_keys(name: str, events: list[dict[str, Any]]) -> set[str]:
    """One notification per incident when it fires, when its level changes, when it ends."""
    keys, level = set(), None
    for e in events:
        if e["status"] == "resolved":
            keys.add(f"{name}:{e['id']}")
        elif e["level"] != level:
            keys.add(f"{name}:{e['id']}")
            level = e["level"]
    return keys


def test_incidents_reach_the_routed_receiver_once_per_level(
        live_server: Callable[..., LiveServer], receiver: Callable[[str], Receiver],
        monkeypatch: pytest.MonkeyPatch) -> None:
    tech, ops = receiver(SECRET), receiver(SECRET)
    tech.up()
    ops.up()
    monkeypatch.setenv("TECH_PAGER_SECRET", SECRET)
    monkeypatch.setenv("OPS_SECRET", SECRET)
    routing = RoutingSettings.model_validate({
        "receivers": [{"name": "tech-pager", "url": tech.url, "secret_env": "TECH_PAGER_SECRET"},
                      {"name": "ops-room", "url": ops.url, "secret_env": "OPS_SECRET",
                       "format": "alertmanager"}],
        "route": {"receivers": ["ops-room"],
                  "routes": [{"match": {"team": "tech", "stream": "room-*"},
                              "receivers": ["tech-pager"]}]}})
    srv = live_server(auth=with_tokens(admin=ADMIN, viewer=VIEWER, ingest=INGEST),
                      routing=routing, webhooks={"allowed_hosts": ["127.0.0.1"],
                                                 "backoff_base": 0.05, "backoff_max": 0.2,
                                                 "timeout": 0.4})
    events = feed(srv)
    assert all(e["team"] == "tech" for e in events)
    want = expected_keys("tech-pager", events)       # (folding: tests/incidents/test_route.py)
    assert len(want) >= 2
    wait_until(lambda: set(tech.events) == want, what="the routed notifications")
    assert tech.bad_signatures == 0 and ops.raw == []    # the other route heard nothing
    listed = httpx.get(f"{srv.url}/v1/webhooks", headers=bearer(ADMIN)).json()
    routed = {w["id"]: w for w in (listed["items"] if isinstance(listed, dict) else listed)}
    assert routed["tech-pager"]["routed"] is True
    metrics = httpx.get(f"{srv.url}/metrics").text
    assert 'streamwatch_notifications_total{kind="first",receiver="tech-pager"} 1.0' in metrics


def test_the_shipped_routing_file_loads_and_a_bad_one_says_where(tmp_path: Any) -> None:
    cfg = load_config(REPO / "config", REPO / "detectors", env={})
    assert cfg.service.routing is not None
    bad = tmp_path / "config"
    bad.mkdir()
    (bad / "service.toml").write_text("")
    (bad / "routing.toml").write_text(
        '[[receivers]]\nname = "pager"\nurl = "http://127.0.0.1/x"\nsecret_env = "NOPE"\n'
        '[route]\nreceivers = ["pagr"]\n')
    with pytest.raises(Exception) as info:
        load_config(bad, REPO / "detectors", env={})
    text = str(info.value)
    assert "config/routing.toml" in text and "pagr" in text
